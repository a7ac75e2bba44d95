"""What a CARP vhid and a VRRP router share: the contract, the timer, the administrative
levers and leaving.

Subclasses provide the protocol: ``_restart`` (INIT -> BACKUP), ``_bow_out`` (the advert
that hands the role over at once: CARP's 255/255, VRRP's priority 0), ``_advertise`` (one
round of adverts), ``_arm_master_down`` (the BACKUP's timers), ``_on_master_down`` (what
their expiry means), ``advert_interval``, ``receive`` and ``params``.
"""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar

from carpd.core.actions import (
    Action,
    AddAddresses,
    Announce,
    RemoveAddresses,
    RunHook,
    StateChanged,
)
from carpd.core.model import Counters, IPAddress, Reason, State

# The BSDs send one more gratuitous ARP two adverts after the first, for layer-3
# switches that missed it.
DELAYED_ANNOUNCE_ADVERTS = 2

P = TypeVar("P")  # the protocol's decoded advert: CarpPacket or VrrpPacket


class RouterSettings(Protocol):
    @property
    def vhid(self) -> int: ...  # the CARP vhid or the VRRP VRID

    @property
    def families(self) -> frozenset[int]: ...

    @property
    def neutral(self) -> bool: ...  # ucarp --neutral: no down hook on the first BACKUP

    @property
    def preempt(self) -> bool: ...


class Router(Generic[P]):
    """The contract the runtime and the control commands rely on, whatever the protocol:
    start / receive / handle_timer / set_demotion / link_changed / admin_up / admin_down /
    force_state / stop in, ``drain()`` and ``get_timer()`` out, and ``params()`` for
    status."""

    settings: RouterSettings

    def __init__(self, settings: RouterSettings, *, own_sources: dict[int, IPAddress]) -> None:
        self.settings = settings
        # Our advert source per family: the carpdev's IPv4 address, its IPv6 link-local.
        self.own_sources = dict(own_sources)
        self.state = State.INIT
        self.master: IPAddress | None = None
        self.last_transition: float | None = None
        self.last_reason: Reason | None = None
        # The last valid advert from another node: when, and the interval it announced
        # (for the transition history: how long the silence before a takeover was).
        self.last_heard: float | None = None
        self.heard_interval: float | None = None
        self.counters = Counters()
        self.demotion = 0  # total demotion (spec 5), from the node's ledger
        self.link_up = True  # the carpdev can carry adverts
        self.enabled = True  # not taken out with `carpctl down`
        self._actions: list[Action] = []
        self._advert_at: float | None = None
        self._master_down_at: dict[int, float] = {}
        self._delayed_announce = 0

    @property
    def families(self) -> frozenset[int]:
        return self.settings.families

    # -- what each protocol provides ----------------------------------------------

    def start(self, now: float) -> None:
        raise NotImplementedError

    def receive(self, pkt: P, family: int, src: IPAddress, now: float) -> None:
        """A decoded advert for this vhid. Raises a PacketError (then nothing changed)."""
        raise NotImplementedError

    def handle_timer(self, now: float, held: float = 0.0) -> None:
        """A deadline from get_timer() has come: a MASTER advertises, a BACKUP whose
        master-down timer (of any family) ran out takes over. ``held``: how long the
        runtime held the deadline back on purpose, to share a wakeup with other vhids;
        the advert schedule moves with it, so that they stay together."""
        if self.state is State.MASTER and self._advert_at is not None and now >= self._advert_at:
            self._advertise()
            if self._delayed_announce:
                self._delayed_announce -= 1
                if not self._delayed_announce:
                    self._actions.append(Announce())
            # Schedule from the deadline, not from now, so that lateness does not add up
            # to fewer adverts (only a deliberate hold moves the schedule).
            self._advert_at += held + self.advert_interval
            if self._advert_at <= now:
                self._advert_at = now + self.advert_interval
        elif self.state is State.BACKUP:
            fired = sorted(f for f, t in self._master_down_at.items() if t <= now)
            if fired:
                self._on_master_down(now, fired)

    def set_demotion(self, total: int, now: float) -> None:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """The protocol's own settings and what it advertises, for status."""
        raise NotImplementedError

    @property
    def advert_interval(self) -> float:
        raise NotImplementedError

    def _restart(self, now: float, reason: Reason) -> None:
        raise NotImplementedError

    def _bow_out(self) -> None:
        raise NotImplementedError

    def _advertise(self) -> None:
        raise NotImplementedError

    def _arm_master_down(self, now: float) -> None:
        raise NotImplementedError

    def _on_master_down(self, now: float, fired: list[int]) -> None:
        """The master-down timers of ``fired`` (families, sorted) ran out as BACKUP."""
        raise NotImplementedError

    # -- transitions ----------------------------------------------------------------

    def _become_master(self, now: float, reason: Reason) -> None:
        self._set_state(now, State.MASTER, reason)
        self.master = self.own_sources.get(4) or self.own_sources.get(6)
        self._master_down_at.clear()
        self._actions.append(AddAddresses())
        self._actions.append(Announce())
        self._advertise()
        self._actions.append(RunHook(State.MASTER))
        self._advert_at = now + self.advert_interval
        self._delayed_announce = DELAYED_ANNOUNCE_ADVERTS

    def _become_backup(self, now: float, reason: Reason) -> None:
        old = self.state
        self._set_state(now, State.BACKUP, reason)
        self.master = None  # not ourselves any more: unknown until an advert names it
        self._advert_at = None
        self._delayed_announce = 0
        self._actions.append(RemoveAddresses())
        if not (old is State.INIT and self.settings.neutral):
            self._actions.append(RunHook(State.BACKUP))
        self._arm_master_down(now)

    def _set_state(self, now: float, new: State, reason: Reason) -> None:
        old, self.state = self.state, new
        self.last_transition, self.last_reason = now, reason
        self.counters.transitions += 1
        self._actions.append(StateChanged(old, new, reason))

    def _heard(self, now: float, interval: float) -> None:
        self.counters.adverts_received += 1
        self.last_heard, self.heard_interval = now, interval

    def _note_master(self, family: int, src: IPAddress) -> None:
        # A dual-stack master advertises on both families: show its IPv4 source.
        if family == 4 or 4 not in self.families:
            self.master = src

    def get_timer(self) -> float | None:
        """The next deadline the runtime must call handle_timer at, if any."""
        if not self._master_down_at:  # a MASTER (after every advert): no list to build
            return self._advert_at
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
                self._restart(now, Reason.CARPDEV_UP)
        elif self.state is not State.INIT:
            self._leave(now, Reason.CARPDEV_DOWN, bow_out=False)  # nothing can be sent

    def admin_down(self, now: float) -> None:
        """`carpctl down` (like `ifconfig carp0 down`): bow out and stay in INIT."""
        self.enabled = False
        if self.state is not State.INIT:
            self._leave(now, Reason.USER_DOWN, bow_out=True)

    def admin_up(self, now: float) -> None:
        self.enabled = True
        if self.link_up and self.state is State.INIT:
            self._restart(now, Reason.USER_UP)

    def force_state(self, state: State, now: float) -> None:
        """carp(4)'s `state master|backup` (not from INIT)."""
        if state is self.state or self.state is State.INIT:
            return
        if state is State.MASTER:
            self._become_master(now, Reason.USER_REQUESTED)
        elif state is State.BACKUP:
            # Bow out first so a peer takes over at once rather than after a timeout.
            self._bow_out()
            self._become_backup(now, Reason.USER_REQUESTED)

    def stop(self, now: float, reason: Reason = Reason.SHUTDOWN) -> None:
        """Leave the group. A MASTER bows out first."""
        if self.state is not State.INIT:
            self._leave(now, reason, bow_out=True)

    def _leave(self, now: float, reason: Reason, *, bow_out: bool) -> None:
        if self.state is State.MASTER:
            if bow_out:
                self._bow_out()
            self._actions.append(RemoveAddresses())
            self._actions.append(RunHook(State.INIT))
        self._set_state(now, State.INIT, reason)
        self._clear_timers()
