"""Running programs on a role change: an [[action]] or a hook is a ``Program``;
``run_programs`` runs them one after the other and publishes each result (ActionRan);
``pre_release_step`` is the blocking step that runs them before the addresses go. The
effects that run programs (effects/actions.py, effects/hooks.py) share these, so a hook
and an action are run, bounded, logged and published the same way."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from carpd.daemon.seam.events import ActionRan, Event
from carpd.daemon.seam.lanes import Step
from carpd.linux.process import Outcome, run_program

# A pre-release step's lane deadline past the sum of its programs' timeouts: each kill
# is the bound, this is only the lane's backstop.
KILL_MARGIN = 1.0


@dataclass(frozen=True, slots=True)
class Program:
    """A program run for a transition: an [[action]], or a hook."""

    target: str  # ActionRan's: the vhid's name, or "group NAME"
    name: str  # ActionRan's: the [[action]]'s name, or "up hook"
    label: str  # its log lines': "carp1: action m", "carp1: up hook"
    argv: Sequence[str]
    env: Mapping[str, str]  # transition_env's
    timeout: float  # killed with its process group after it


Ran = list[tuple[Program, Outcome]]


async def run_programs(
    programs: Sequence[Program], phase: str, state: str, publish: Callable[[Event], None]
) -> Ran:
    """``programs`` one after the other, each to its end or its timeout, each result
    published (ActionRan, as ``phase`` run for ``state``); their outcomes."""
    ran: Ran = []
    for p in programs:
        at = time.time()
        outcome = await run_program(p.argv, p.env, p.label, p.timeout)
        publish(ActionRan(p.target, p.name, phase, state, at, outcome))
        ran.append((p, outcome))
    return ran


def pre_release_step(
    step: str,
    programs: Sequence[Program],
    state: str,
    chain: str,
    publish: Callable[[Event], None],
    failed: Callable[[Ran], str],
) -> Step:
    """The blocking step that runs ``programs`` before the addresses go, bounded by their
    timeouts; if any fails, the step fails with ``failed``'s words (counted and shown in
    host_steps), and the addresses go anyway."""

    async def run() -> None:
        ran = await run_programs(programs, "pre-release", state, publish)
        bad = [(p, o) for p, o in ran if not o.ok]
        if bad:
            raise RuntimeError(failed(bad))

    deadline = sum(p.timeout for p in programs) + KILL_MARGIN
    return Step(step, run, deadline, chain=chain)
