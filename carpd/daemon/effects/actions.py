"""[[action]] lists: programs run when a vhid or a group changes role (issue 13).

Each target has one queue, in transition order: a vhid's actions run in its host lane,
in a chain of their own that starts once the addresses are up (or gone) and waits for
no hook, conntrackd or followed interface; a group's run in a lane of its own. When
transitions pile up while an action runs, only the newest waiting run of a target
happens (last state wins). An action is killed at its ``timeout``; nothing in a queue
holds the adverts or the addresses, except ``pre-release``, which runs before a
target's addresses go, bounded by its actions' timeouts. Each result is logged and
published (ActionRan).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence

from carpd.config.model import ActionConfig, Config
from carpd.core.model import State
from carpd.daemon.effects.roles import Change, RoleFollower
from carpd.daemon.events import ActionRan, Event
from carpd.daemon.lanes import HostWork, Step
from carpd.daemon.view import VhidView
from carpd.linux.hooks import transition_env
from carpd.linux.process import run_program

# A pre-release step's lane deadline past the sum of its actions' timeouts: each kill
# is the bound, this is only the lane's backstop.
KILL_MARGIN = 1.0


class Actions(RoleFollower):
    def __init__(
        self, config: Config, publish: Callable[[Event], None], now: Mapping[str, State]
    ) -> None:
        super().__init__(config.carp, config.action, now)
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
        run = functools.partial(self._run, change, "pre-release", cfgs, work, vhid)
        deadline = sum(a.timeout for a in cfgs) + KILL_MARGIN
        return (Step("pre-release actions", run, deadline, chain=f"{target} actions"),)

    def changed(self, change: Change, work: HostWork, vhid: VhidView) -> Sequence[Step]:
        cfgs = self._actions(change.target, change.phase)
        if not cfgs:
            return ()
        run = functools.partial(self._run, change, change.phase, cfgs, work, vhid)
        chain = f"{change.target} actions"
        return (Step(f"{change.phase} actions", run, blocking=False, coalesce=chain, chain=chain),)

    async def _run(
        self,
        change: Change,
        phase: str,
        cfgs: list[ActionConfig],
        work: HostWork,
        vhid: VhidView,
    ) -> None:
        """The phase's actions one after the other, each to its end or its timeout."""
        failed = []
        for a in cfgs:
            at = time.time()
            outcome = await run_program(
                a.argv,
                self._env(change, phase, a, work, vhid),
                f"{change.target}: action {a.name}",
                a.timeout,
            )
            self.publish(ActionRan(change.target, a.name, phase, change.new.value, at, outcome))
            if not outcome.ok:
                failed.append(a.name)
        if failed:  # counted in host_steps too; the next action still ran
            raise RuntimeError(f"{phase} actions failed: {', '.join(failed)}")

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
