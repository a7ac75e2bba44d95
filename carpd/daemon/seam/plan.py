"""The takeover plan: what a transition does to the host, top to bottom, in one place
(keepalived's ``vrrp_state_become_master`` as data).

The core asks for host actions (add or remove the addresses, announce them, run the
hook); ``works`` pairs each with the transition it serves, from the same drain; ``plan``
turns one into the vhid lane's steps: every effect's ``before`` steps, the host's own
step, every effect's ``after`` steps, the effects in ``registry.effects_for``'s order. The whole
order for a config with every integration is pinned by tests/unit/test_takeover_plan.py
and drawn as a table in docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from carpd.core.actions import (
    Action,
    AddAddresses,
    Announce,
    RemoveAddresses,
    RunHook,
    StateChanged,
)
from carpd.core.model import State
from carpd.daemon.seam.lanes import Effect, HostAction, HostWork, Step
from carpd.daemon.seam.roles import HostRoles, role_after
from carpd.daemon.seam.view import PlannedStep, VhidView

HOST_ACTIONS = (AddAddresses, RemoveAddresses, Announce, RunHook)


def _serves(action: HostAction, change: StateChanged) -> bool:
    """Is ``action`` part of the transition ``change``?"""
    if isinstance(action, RunHook):
        return change.new is action.state
    if isinstance(action, AddAddresses | Announce):
        return change.new is State.MASTER
    return change.new is not State.MASTER  # RemoveAddresses: out of MASTER


def works(drained: Sequence[Action]) -> list[HostWork]:
    """The host actions of one drain, each with its cause. A transition's actions follow
    its StateChanged, except leaving the group (stop, carpdev down), whose removal and
    down hook come before it; an announcement repeated while MASTER has none."""
    out: list[HostWork] = []
    waiting: list[HostAction] = []  # for a StateChanged further on
    last: StateChanged | None = None
    for action in drained:
        if isinstance(action, StateChanged):
            out += [HostWork(a, action if _serves(a, action) else None) for a in waiting]
            waiting, last = [], action
        elif isinstance(action, HOST_ACTIONS):
            host: HostAction = action
            if last is not None and _serves(host, last):
                out.append(HostWork(host, last))
            elif isinstance(host, Announce):
                out.append(HostWork(host, None))
            else:
                waiting.append(host)
    return out + [HostWork(a, None) for a in waiting]


def plan(
    work: HostWork,
    vhid: VhidView,
    effects: Sequence[Effect],
    own: Sequence[Step],
    roles: HostRoles,
) -> list[Step]:
    """One host action's steps in the lane's order. The vhid's role on the host (its one
    owner, ``roles``) changes between the ``before`` steps (its addresses still up) and
    the ``after`` steps, as the action it serves says."""
    steps = [s for e in effects for s in e.before(work, vhid)]
    steps += own
    if (role := role_after(work)) is not None:
        roles.set(vhid.name, role)
    steps += [s for e in effects for s in e.after(work, vhid)]
    return steps


def shown(steps: Sequence[Step]) -> tuple[PlannedStep, ...]:
    return tuple(PlannedStep(s.name, s.blocking, s.deadline, s.chain) for s in steps)
