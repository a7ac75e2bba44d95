"""[[action]] lists: programs run when a vhid or a group changes role (issue 13).

Each target has one queue, in transition order: a vhid's actions run in its host lane,
in a chain of their own that starts once the addresses are up (or gone) and waits for
no hook, conntrackd or followed interface; a group's run in a lane of its own. When
transitions pile up while an action runs, only the newest waiting run of a target
happens (last state wins). An action is killed at its ``timeout``; nothing in a queue
holds the adverts or the addresses, except ``pre-release``, which runs before a
target's addresses go, bounded by its actions' timeouts. Each result is logged and
published (ActionRan).

The up, down and pre_release hooks (effects/hooks.py) are run by the same machinery
(seam/programs.py): a ``Program`` each, ``run_programs`` to run and publish them,
``pre_release_step`` for the blocking step before the addresses go.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from carpd.config.model import ActionConfig, Config
from carpd.core.model import State
from carpd.daemon.seam.events import Event
from carpd.daemon.seam.lanes import HostWork, Step
from carpd.daemon.seam.programs import Program, Ran, pre_release_step, run_programs
from carpd.daemon.seam.roles import Change, HostRoles, RoleFollower
from carpd.daemon.seam.view import VhidView
from carpd.linux.hooks import transition_env


class Actions(RoleFollower):
    def __init__(self, config: Config, publish: Callable[[Event], None], roles: HostRoles) -> None:
        super().__init__(config.carp, config.action, roles)
        self.cfgs = config.action
        self.publish = publish

    @staticmethod
    def tables_of(config: Config) -> Sequence[ActionConfig]:
        return config.action

    def _actions(self, target: str, phase: str) -> list[ActionConfig]:
        return [a for a in self.cfgs if a.target == target and phase in a.on]

    def leaving(self, target: str, work: HostWork, vhid: VhidView) -> Sequence[Step]:
        cfgs = self._actions(target, "pre-release")
        if not cfgs:
            return ()
        change = Change(target, State.MASTER, State.BACKUP)
        programs = self._programs(change, "pre-release", cfgs, work, vhid)
        return (
            pre_release_step(
                "pre-release actions",
                programs,
                change.new.value,
                f"{target} actions",
                self.publish,
                lambda bad: _failed("pre-release", bad),
            ),
        )

    def changed(self, change: Change, work: HostWork, vhid: VhidView) -> Sequence[Step]:
        cfgs = self._actions(change.target, change.phase)
        if not cfgs:
            return ()
        programs = self._programs(change, change.phase, cfgs, work, vhid)
        run = functools.partial(self._run, change, programs)
        chain = f"{change.target} actions"
        return (Step(f"{change.phase} actions", run, blocking=False, coalesce=chain, chain=chain),)

    async def _run(self, change: Change, programs: Sequence[Program]) -> None:
        ran = await run_programs(programs, change.phase, change.new.value, self.publish)
        bad = [(p, o) for p, o in ran if not o.ok]
        if bad:  # counted in host_steps too; the next action still ran
            raise RuntimeError(_failed(change.phase, bad))

    def _programs(
        self,
        change: Change,
        phase: str,
        cfgs: list[ActionConfig],
        work: HostWork,
        vhid: VhidView,
    ) -> list[Program]:
        return [
            Program(
                change.target,
                a.name,
                f"{change.target}: action {a.name}",
                a.argv,
                self._env(change, phase, a, work, vhid),
                a.timeout,
            )
            for a in cfgs
        ]

    def _env(
        self, change: Change, phase: str, a: ActionConfig, work: HostWork, vhid: VhidView
    ) -> dict[str, str]:
        vhids = [self.carp[n] for n in sorted(self.roles.members[change.target]) if n in self.carp]
        last = work.cause  # the transition this run serves
        extra = {"CARP_ACTION": a.name, "CARP_PHASE": phase, "CARP_TARGET": change.target}
        if a.group is not None:
            extra["CARP_GROUP"] = a.group
        return transition_env(
            vhid.cfg.vhid,
            change.new.value,
            vhid.cfg.carpdev,
            [str(addr.ip) for c in vhids for addr in c.addresses],
            change.old.value,
            str(last.reason) if last is not None else None,
            **extra,
        )


def _failed(phase: str, bad: Ran) -> str:
    return f"{phase} actions failed: {', '.join(p.name for p, _ in bad)}"
