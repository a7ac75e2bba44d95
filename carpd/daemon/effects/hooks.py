"""The up and down hooks (ucarp's --upscript/--downscript) as an effect: after the
addresses and their announcement, in the background of the vhid's lane, in a chain of
their own (one at a time, in transition order, behind no other integration); each told
the transition it serves (``HostWork.cause``)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence

from carpd.core.actions import RemoveAddresses, RunHook
from carpd.core.model import State
from carpd.daemon.events import ActionRan, Event
from carpd.daemon.lanes import HostWork, Step
from carpd.daemon.view import VhidView
from carpd.linux.hooks import HookCall, run_hook
from carpd.linux.process import Outcome

CHAIN = "hooks"


class Hooks:
    def __init__(self, timeout: float, publish: Callable[[Event], None]) -> None:
        self.timeout = timeout  # global.hook_timeout: run_hook kills the hook after it
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
        run = functools.partial(self._pre_release, call, cfg.pre_release_timeout)
        # The lane's deadline a hair past run_hook's own kill: the kill is the bound.
        return (Step("pre-release hook", run, cfg.pre_release_timeout + 1.0, chain=CHAIN),)

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
        await self._measured(call, self.timeout, "master" if call.kind == "up" else "backup")

    async def _pre_release(self, call: HookCall, timeout: float) -> None:
        outcome = await self._measured(call, timeout, "pre-release")
        if not outcome.ok:  # counted and shown (host_steps); the addresses go anyway
            raise RuntimeError(
                f"pre-release hook {call.path} ended with {outcome.error or outcome.status}"
            )

    async def _measured(self, call: HookCall, timeout: float, phase: str) -> Outcome:
        at = time.time()
        outcome = await run_hook(call, timeout)
        self.publish(ActionRan(call.name, f"{call.kind} hook", phase, call.state, at, outcome))
        return outcome
