"""The role of a vhid, and of a target (a vhid, or an interface group), as the host
lanes carry it out: HostRoles is the one owner of each vhid's role on the host; the
effects that follow roles ([[action]] lists, [[follow]] interfaces) derive their
targets' roles from it, and conntrackd's effect asks it which vhids are MASTER.

A group is MASTER while every vhid in it is MASTER (the DHCP problem's external NIC
belongs to the firewall that holds all of its addresses), INIT while every vhid is INIT,
and BACKUP otherwise. The roles are followed from the host actions themselves (addresses
added: MASTER; removed: into the state of the transition the removal serves), so they
change in the order the lanes see them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from carpd.config.model import CarpConfig, Config, Follows
from carpd.core.actions import AddAddresses, RemoveAddresses, RunHook
from carpd.core.model import State
from carpd.daemon.seam.lanes import HostWork, Lane, Step
from carpd.daemon.seam.view import VhidView


@dataclass(frozen=True, slots=True)
class Change:
    target: str  # "carp1", or "group carp"
    old: State
    new: State

    @property
    def phase(self) -> str:
        return "master" if self.new is State.MASTER else "backup"


def members(carp: Iterable[CarpConfig], tables: Iterable[Follows]) -> dict[str, frozenset[str]]:
    """Each target the tables follow, and the names of the vhids in it."""
    carp = list(carp)
    found = {}
    for t in tables:
        if t.vhid is not None:
            found[t.target] = frozenset({t.vhid})
        else:
            found[t.target] = frozenset(c.name for c in carp if t.group in c.all_groups)
    return found


class HostRoles:
    """Each vhid's role on the host: set by the takeover plan (seam/plan.py) between the
    effects' ``before`` and ``after`` steps of each host action, from the transition the
    action serves (``role_after``), never from the core's state, which may be newer.
    Shared by every effect and kept across reloads, so a new follower knows its roles."""

    def __init__(self) -> None:
        self._vhid: dict[str, State] = {}

    def state(self, vhid: str) -> State:
        return self._vhid.get(vhid, State.INIT)

    def set(self, vhid: str, state: State) -> None:
        self._vhid[vhid] = state

    def masters(self) -> frozenset[str]:
        return frozenset(v for v, s in self._vhid.items() if s is State.MASTER)


class Roles:
    def __init__(self, members: Mapping[str, frozenset[str]], host: HostRoles) -> None:
        """``host``: the vhids' roles; a reload that makes a new Roles reads them, so it
        does not take a MASTER target for a new one."""
        self.members = members  # target -> the names of its vhids
        self.host = host
        self._target = {t: self._aggregate(m) for t, m in members.items()}

    def state(self, target: str) -> State:
        return self._target[target]

    def leaving(self, vhid: str) -> list[str]:
        """The MASTER targets that ``vhid`` leaving MASTER would take out of MASTER."""
        if self.host.state(vhid) is not State.MASTER:
            return []
        return [t for t, m in self.members.items() if vhid in m and self._target[t] is State.MASTER]

    def changed(self, vhid: str) -> list[Change]:
        """``vhid``'s role on the host has been set: the targets whose role this changed."""
        changes = []
        for target, members in self.members.items():
            if vhid not in members:
                continue
            new, old = self._aggregate(members), self._target[target]
            if new is not old:
                self._target[target] = new
                changes.append(Change(target, old, new))
        return changes

    def _aggregate(self, members: frozenset[str]) -> State:
        states = {self.host.state(m) for m in members}
        return next(iter(states)) if len(states) == 1 else State.BACKUP


def role_after(work: HostWork) -> State | None:
    """The role a host action leaves the vhid in on the host, if it changes one: the
    transition it serves says which (a stop's removal goes to INIT), never the vhid's
    state when the steps are planned, which may already be newer."""
    action, cause = work.action, work.cause
    if isinstance(action, AddAddresses):
        return State.MASTER
    if isinstance(action, RemoveAddresses):
        return State.INIT if cause is not None and cause.new is State.INIT else State.BACKUP
    if isinstance(action, RunHook) and action.state is State.INIT:
        return State.INIT
    return None


def runs_on(change: Change) -> bool:
    """A target acts on every edge into or out of MASTER, and once at start (INIT to
    BACKUP), as keepalived runs notify_backup; not when a BACKUP stops."""
    return State.MASTER in (change.old, change.new) or change.new is State.BACKUP


class RoleFollower:
    """The Effect side of following roles: a vhid target's steps go to its own host
    lane, a group's to a lane of the group's. Subclasses say what a change runs."""

    def __init__(
        self, carp: Sequence[CarpConfig], tables: Iterable[Follows], host: HostRoles
    ) -> None:
        self.carp = {c.name: c for c in carp}
        self.tables = tuple(tables)
        self.roles = Roles(members(carp, self.tables), host)
        self._lanes: dict[str, Lane] = {}

    @staticmethod
    def tables_of(config: Config) -> Sequence[Follows]:
        raise NotImplementedError

    def same(self, config: Config) -> bool:
        """Would a reload to ``config`` make this follower the same?"""
        carp = {c.name: c for c in config.carp}
        return tuple(self.tables_of(config)) == self.tables and carp == self.carp

    def leaving(self, target: str, work: HostWork, vhid: VhidView) -> Sequence[Step]:
        """Blocking steps before ``target`` leaves MASTER (its addresses still up)."""
        return ()

    def changed(self, change: Change, work: HostWork, vhid: VhidView) -> Sequence[Step]:
        raise NotImplementedError

    def before(self, work: HostWork, vhid: VhidView) -> Sequence[Step]:
        if not isinstance(work.action, RemoveAddresses):
            return ()
        return [s for t in self.roles.leaving(vhid.name) for s in self.leaving(t, work, vhid)]

    def after(self, work: HostWork, vhid: VhidView) -> Sequence[Step]:
        if role_after(work) is None:
            return ()
        steps: list[Step] = []
        for change in self.roles.changed(vhid.name):
            if not runs_on(change):
                continue
            new = self.changed(change, work, vhid)
            if change.target in self.carp:
                # The vhid's own lane, in the target's own chain: started once the
                # addresses are up (or gone), behind no hook and no other integration.
                steps += new
            elif new:
                self._lane(change.target).submit(new)
        return steps

    def _lane(self, target: str) -> Lane:
        lane = self._lanes.get(target)
        if lane is None:
            lane = self._lanes[target] = Lane(target, asyncio.get_running_loop())
        return lane

    async def close(self) -> None:
        """A group's queued steps finish (each bounded)."""
        await asyncio.gather(*(lane.settle() for lane in self._lanes.values()))
