"""What a CARP vhid and a VRRP router share: the administrative levers and leaving.

Subclasses provide the protocol: ``_restart`` (INIT -> BACKUP), ``_bow_out`` (the advert
that hands the role over at once: CARP's 255/255, VRRP's priority 0), ``_advertise`` (one
round of adverts), ``_arm_master_down`` (the BACKUP's timers) and ``advert_interval``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from carpd.core.actions import (
    Action,
    AddAddresses,
    Announce,
    RemoveAddresses,
    RunHook,
    State,
    StateChanged,
)
from carpd.core.auth import IPAddress

if TYPE_CHECKING:
    from carpd.core.machine import VhostCounters


# The BSDs send one more gratuitous ARP two adverts after the first, for layer-3
# switches that missed it.
DELAYED_ANNOUNCE_ADVERTS = 2


class RouterSettings(Protocol):
    @property
    def families(self) -> frozenset[int]: ...

    @property
    def neutral(self) -> bool: ...  # ucarp --neutral: no down hook on the first BACKUP


class Router:
    settings: RouterSettings
    state: State
    link_up: bool  # the interface can carry adverts
    enabled: bool  # not taken out with `carpctl down`
    _actions: list[Action]
    _advert_at: float | None
    _master_down_at: dict[int, float]
    _delayed_announce: int
    master: IPAddress | None
    last_transition: float | None
    counters: VhostCounters
    own_sources: dict[int, IPAddress]

    @property
    def families(self) -> frozenset[int]:
        return self.settings.families

    # -- what each protocol provides ----------------------------------------------

    @property
    def advert_interval(self) -> float:
        raise NotImplementedError

    def _restart(self, now: float, reason: str) -> None:
        raise NotImplementedError

    def _bow_out(self) -> None:
        raise NotImplementedError

    def _advertise(self) -> None:
        raise NotImplementedError

    def _arm_master_down(self, now: float) -> None:
        raise NotImplementedError

    # -- transitions ----------------------------------------------------------------

    def _become_master(self, now: float, reason: str) -> None:
        self._set_state(now, State.MASTER, reason)
        self.master = self.own_sources.get(4) or self.own_sources.get(6)
        self._master_down_at.clear()
        self._actions.append(AddAddresses())
        self._actions.append(Announce())
        self._advertise()
        self._actions.append(RunHook(State.MASTER))
        self._advert_at = now + self.advert_interval
        self._delayed_announce = DELAYED_ANNOUNCE_ADVERTS

    def _become_backup(self, now: float, reason: str) -> None:
        old = self.state
        self._set_state(now, State.BACKUP, reason)
        self._advert_at = None
        self._delayed_announce = 0
        self._actions.append(RemoveAddresses())
        if not (old is State.INIT and self.settings.neutral):
            self._actions.append(RunHook(State.BACKUP))
        self._arm_master_down(now)

    def _set_state(self, now: float, new: State, reason: str) -> None:
        old, self.state = self.state, new
        self.last_transition = now
        self.counters.transitions += 1
        self._actions.append(StateChanged(old, new, reason))

    def _note_master(self, family: int, src: IPAddress) -> None:
        # A dual-stack master advertises on both families: show its IPv4 source.
        if family == 4 or 4 not in self.families:
            self.master = src

    def get_timer(self) -> float | None:
        """The next deadline the runtime must call handle_timer at, if any."""
        deadlines = [*self._master_down_at.values()]
        if self._advert_at is not None:
            deadlines.append(self._advert_at)
        return min(deadlines) if deadlines else None

    def drain(self) -> list[Action]:
        """The actions produced since the last drain, in order."""
        actions, self._actions = self._actions, []
        return actions

    def _clear_timers(self) -> None:
        self._advert_at = None
        self._master_down_at.clear()
        self._delayed_announce = 0

    # -- the levers ---------------------------------------------------------------

    def link_changed(self, up: bool, now: float) -> None:
        """The interface lost or regained its link: INIT while down, as on the BSDs."""
        if up == self.link_up:
            return
        self.link_up = up
        if up:
            if self.enabled and self.state is State.INIT:
                self._restart(now, "carpdev up")
        elif self.state is not State.INIT:
            self._leave(now, "carpdev down", bow_out=False)  # nothing can be sent

    def admin_down(self, now: float) -> None:
        """`carpctl down` (like `ifconfig carp0 down`): bow out and stay in INIT."""
        self.enabled = False
        if self.state is not State.INIT:
            self._leave(now, "user requested down", bow_out=True)

    def admin_up(self, now: float) -> None:
        self.enabled = True
        if self.link_up and self.state is State.INIT:
            self._restart(now, "user requested up")

    def force_state(self, state: State, now: float) -> None:
        """carp(4)'s `state master|backup` (not from INIT)."""
        if state is self.state or self.state is State.INIT:
            return
        if state is State.MASTER:
            self._become_master(now, "user requested")
        elif state is State.BACKUP:
            # Bow out first so a peer takes over at once rather than after a timeout.
            self._bow_out()
            self._become_backup(now, "user requested")

    def stop(self, now: float, reason: str = "shutdown") -> None:
        """Leave the group. A MASTER bows out first."""
        if self.state is not State.INIT:
            self._leave(now, reason, bow_out=True)

    def _leave(self, now: float, reason: str, *, bow_out: bool) -> None:
        if self.state is State.MASTER:
            if bow_out:
                self._bow_out()
            self._actions.append(RemoveAddresses())
            self._actions.append(RunHook(State.INIT))
        self._set_state(now, State.INIT, reason)
        self._clear_timers()
