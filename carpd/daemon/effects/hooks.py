"""The up and down hooks (ucarp's --upscript/--downscript) as an effect: after the
addresses and their announcement, in the background of the vhid's lane, in a chain of
their own (one at a time, in transition order, behind no other integration); each told
the transition it serves (``HostWork.cause``). They run as [[action]]s run
(effects/actions: one Program each, run_programs, pre_release_step); what stays their
own is when (the core's RunHook, ``neutral``), ucarp's argv, their chain and names."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from carpd.core.actions import RemoveAddresses, RunHook
from carpd.core.model import State
from carpd.daemon.seam.events import Event
from carpd.daemon.seam.lanes import HostWork, Step
from carpd.daemon.seam.programs import Program, Ran, pre_release_step, run_programs
from carpd.daemon.seam.view import VhidView
from carpd.linux.hooks import HookCall

CHAIN = "hooks"


def program(call: HookCall, timeout: float) -> Program:
    """A hook as the program run for it: published as "<kind> hook" of its vhid."""
    name = f"{call.kind} hook"
    return Program(call.name, name, call.label, call.argv(), call.env(), timeout)


class Hooks:
    def __init__(self, timeout: float, publish: Callable[[Event], None]) -> None:
        self.timeout = timeout  # global.hook_timeout: the hook is killed after it
        self.publish = publish  # each hook's result, as an [[action]]'s

    def before(self, work: HostWork, vhid: VhidView) -> Sequence[Step]:
        """pre_release: leaving MASTER, before the addresses go (bounded)."""
        cfg, left = vhid.cfg, work.cause
        if (
            not isinstance(work.action, RemoveAddresses)
            or cfg.pre_release is None
            or left is None
            or left.old is not State.MASTER
        ):
            return ()
        call = HookCall(
            name=cfg.name,
            kind="pre-release",
            path=str(cfg.pre_release),
            interface=cfg.carpdev,
            addresses=[str(a.ip) for a in cfg.addresses],
            xparam=cfg.xparam,
            vhid=cfg.vhid,
            state=str(left.new),
            previous=left.old.value,
            reason=str(left.reason),
        )
        hook = program(call, cfg.pre_release_timeout)
        step = pre_release_step(
            "pre-release hook", (hook,), call.state, CHAIN, self.publish, _failed
        )
        return (step,)

    async def close(self) -> None:
        pass  # a running hook is awaited by its lane's settle

    def after(self, work: HostWork, vhid: VhidView) -> Sequence[Step]:
        action, change = work.action, work.cause
        if not isinstance(action, RunHook):
            return ()
        cfg = vhid.cfg
        path = cfg.up if action.kind == "up" else cfg.down
        if not path:
            return ()
        call = HookCall(
            name=cfg.name,
            kind=action.kind,
            path=str(path),
            interface=cfg.carpdev,
            addresses=[str(a.ip) for a in cfg.addresses],
            xparam=cfg.xparam,
            vhid=cfg.vhid,
            state=str(action.state),
            previous=change.old.value if change else None,
            reason=str(change.reason) if change else None,
        )
        run = functools.partial(self._run, call)
        # Up and down hooks share a key: a pile-up of transitions runs only the latest.
        step = Step(f"{action.kind} hook", run, blocking=False, coalesce="role hook", chain=CHAIN)
        return (step,)

    async def _run(self, call: HookCall) -> None:
        # Its failure is logged and published, not a failed lane step.
        phase = "master" if call.kind == "up" else "backup"
        await run_programs((program(call, self.timeout),), phase, call.state, self.publish)


def _failed(bad: Ran) -> str:
    (hook, outcome), *_ = bad
    return f"pre-release hook {hook.argv[0]} ended with {outcome.error or outcome.status}"
