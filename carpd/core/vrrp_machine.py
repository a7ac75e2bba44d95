"""The per-VRID VRRPv3 state machine (RFC 5798 section 6.4), driven by the caller's clock.

It has the public surface of ``carpd.core.machine.VirtualHost``, so the runtime drives
both the same way: inputs ``start`` / ``receive`` / ``handle_timer`` / ``stop`` and the
administrative levers, each with ``now`` in seconds on any monotonic clock; outputs are
actions taken with ``drain()``; ``get_timer()`` is the next absolute deadline.

One router runs a VRID on every family it has addresses in, with one state, like a
dual-stack CARP vhid. Each family keeps its own Master_Adver_Interval and
Master_Down_Timer (adverts of one family say nothing about the other), and the router
becomes MASTER when any of them fires. As MASTER it sends one advert per family, each
carrying only that family's addresses.

Timers, with Master_Adver_Interval (learned from the master's adverts) in centiseconds
and Priority the effective (demoted) priority:

    Skew_Time            = ((256 - Priority) * Master_Adver_Interval) / 256
    Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from carpd.core.actions import SendVrrp
from carpd.core.errors import OwnAdvert, UnknownVhid
from carpd.core.model import IPAddress, Reason, State
from carpd.core.router import Router
from carpd.core.vrrp import VRRP_MAX_INTERVAL, VRRP_PRIORITY_RELEASE, VrrpPacket

VRRP_PRIORITY_MIN = 1
VRRP_PRIORITY_MAX = 254  # 255 is the address owner, which carpd never is
DEFAULT_PRIORITY = 100
DEFAULT_INTERVAL_CS = 100
MASTER_DOWN_ADVERTS = 3  # Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time


@dataclass(frozen=True, slots=True)
class VrrpSettings:
    vrid: int
    priority: int = DEFAULT_PRIORITY
    interval_cs: int = DEFAULT_INTERVAL_CS  # Advertisement_Interval, centiseconds
    preempt: bool = True  # Preempt_Mode (RFC default True)
    # Accept_Mode: take packets addressed to the virtual addresses while MASTER. Only
    # the runtime uses it; the election does not.
    accept: bool = False
    families: frozenset[int] = frozenset({4})
    # No down hook on the first INIT -> BACKUP (as ucarp --neutral).
    neutral: bool = False
    # The VRID's addresses, both families; the advert for family F carries the F ones.
    addresses: tuple[IPAddress, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.vrid <= 255:
            raise ValueError(f"vrid {self.vrid} is not in 1-255")
        if not VRRP_PRIORITY_MIN <= self.priority <= VRRP_PRIORITY_MAX:
            raise ValueError(
                f"priority {self.priority} is not in {VRRP_PRIORITY_MIN}-{VRRP_PRIORITY_MAX}"
            )
        if not 1 <= self.interval_cs <= VRRP_MAX_INTERVAL:
            raise ValueError(f"interval {self.interval_cs} cs is not in 1-{VRRP_MAX_INTERVAL}")
        if not self.families or not self.families <= {4, 6}:
            raise ValueError(f"families {sorted(self.families)} must be a non-empty subset of 4, 6")
        have = {a.version for a in self.addresses}
        if have != self.families:
            raise ValueError(
                f"families {sorted(self.families)} do not match the families of the "
                f"addresses {sorted(have)}: every family needs at least one address"
            )
        for family in self.families:
            if len(self.addresses_of(family)) > 255:
                raise ValueError(f"more than 255 IPv{family} addresses")

    @property
    def vhid(self) -> int:
        """The VRID, under the name the CARP settings use."""
        return self.vrid

    def addresses_of(self, family: int) -> tuple[IPAddress, ...]:
        return tuple(a for a in self.addresses if a.version == family)


def effective_priority(priority: int, demotion: int) -> int:
    """The configured priority lowered by the demotion total, never below 1."""
    if demotion <= 0:
        return priority
    return max(VRRP_PRIORITY_MIN, priority - demotion)


def skew_time(priority: int, master_adver_cs: int) -> float:
    """RFC 5798 6.1 Skew_Time, in seconds."""
    return (256 - priority) * master_adver_cs / 256 / 100


def master_down_interval(priority: int, master_adver_cs: int) -> float:
    """RFC 5798 6.1 Master_Down_Interval, in seconds."""
    return (MASTER_DOWN_ADVERTS * master_adver_cs + (256 - priority) * master_adver_cs / 256) / 100


class VrrpRouter(Router[VrrpPacket]):
    """One virtual router (VRID) on one interface."""

    settings: VrrpSettings

    def __init__(self, settings: VrrpSettings, *, own_sources: dict[int, IPAddress]) -> None:
        super().__init__(settings, own_sources=own_sources)
        self.settings = settings
        # Adverts whose address list differs from ours: RFC 5798 7.1 "MAY log"; we count
        # them and still process the advert, as keepalived does.
        self.mismatched_addresses = 0
        self._armed_at: dict[int, float] = {}  # when each Master_Down_Timer was (re)started
        self._down_reason: dict[int, Reason] = {}
        self._master_adver_cs: dict[int, int] = dict.fromkeys(
            settings.families, settings.interval_cs
        )
        self._families = tuple(sorted(settings.families))
        self._adverts: dict[tuple[int, int], SendVrrp] = {}  # (family, priority): advert
        # The last round of adverts (one per family) and the demotion it was made for:
        # the routine advert is that tuple again (10 ms adverts), no look-up per family.
        self._round: tuple[SendVrrp, ...] = ()
        self._round_demotion: int | None = None

    def params(self) -> dict[str, Any]:
        return {
            "protocol": "vrrp3",
            "authentication": "none (VRRPv3 has no authentication)",
            "advbase": self.settings.interval_cs / 100,
            "priority": self.settings.priority,
            "priority_sent": self.priority,
            "accept": self.settings.accept,
        }

    # -- timing -------------------------------------------------------------------

    @property
    def priority(self) -> int:
        """The priority we advertise and compare with: demotion subtracted, at least 1."""
        return effective_priority(self.settings.priority, self.demotion)

    @property
    def advskew(self) -> int:
        """CARP only; VRRP has priority instead."""
        return 0

    @property
    def demote(self) -> int:
        """CARP only: VRRP has no demote byte (demotion lowers the priority instead)."""
        return 0

    @property
    def advert_interval(self) -> float:
        """Advertisement_Interval in seconds: how often we advertise as MASTER."""
        return self.settings.interval_cs / 100

    def master_adver_interval(self, family: int) -> float:
        """Master_Adver_Interval for ``family`` in seconds (learned from the master)."""
        return self._master_adver_cs.get(family, self.settings.interval_cs) / 100

    def skew_time(self, family: int) -> float:
        return skew_time(
            self.priority, self._master_adver_cs.get(family, self.settings.interval_cs)
        )

    def master_down_interval_for(self, family: int) -> float:
        return master_down_interval(
            self.priority, self._master_adver_cs.get(family, self.settings.interval_cs)
        )

    @property
    def master_down_interval(self) -> float:
        """Master_Down_Interval in seconds, for the lowest family (IPv4 if it runs)."""
        return self.master_down_interval_for(min(self.settings.families))

    # -- inputs -------------------------------------------------------------------

    def start(self, now: float) -> None:
        """RFC 5798 6.4.1 Startup. Our priority is never 255, so always BACKUP first."""
        if self.state is State.INIT and self.link_up and self.enabled:
            self._initialize(now, Reason.INITIALIZATION_COMPLETE)

    def _initialize(self, now: float, reason: Reason) -> None:
        """Master_Adver_Interval = Advertisement_Interval, then BACKUP (6.4.1)."""
        self._master_adver_cs = dict.fromkeys(self.settings.families, self.settings.interval_cs)
        self._become_backup(now, reason)

    def set_demotion(self, total: int, now: float) -> None:
        """A new demotion total. A MASTER advertises a changed priority at once."""
        if total == self.demotion:
            return
        before = self.priority
        self.demotion = total
        if self.state is State.MASTER and self.priority != before:
            self._send_adverts()
            self._advert_at = now + self.advert_interval
        elif self.state is State.BACKUP and self.priority != before:
            # Skew_Time depends on the priority: a running Master_Down_Timer follows it
            # (a start-up demotion lifted a moment later must not delay the takeover).
            for family, reason in self._down_reason.items():
                if family in self._master_down_at and reason in (
                    Reason.MASTER_TIMED_OUT,
                    Reason.PREEMPTING_LOWER_PRIORITY,
                ):
                    start = self._armed_at.get(family, now)
                    self._master_down_at[family] = start + self.master_down_interval_for(family)

    def _restart(self, now: float, reason: Reason) -> None:
        self._initialize(now, reason)

    def _bow_out(self) -> None:
        self._send_adverts(priority=VRRP_PRIORITY_RELEASE)  # RFC 5798 Shutdown

    def _clear_timers(self) -> None:
        super()._clear_timers()
        self._down_reason.clear()

    def _on_master_down(self, now: float, fired: list[int]) -> None:
        # The family that fired first says why: timed out, or released (priority 0).
        self._become_master(now, self._down_reason.get(fired[0], Reason.MASTER_TIMED_OUT))

    def receive(self, pkt: VrrpPacket, family: int, src: IPAddress, now: float) -> None:
        """A decoded advert. Raises UnknownVhid (another VRID, or a family this VRID does
        not run) or OwnAdvert; then nothing changed."""
        if pkt.vrid != self.settings.vrid or family not in self.settings.families:
            raise UnknownVhid(pkt.vrid)
        if src in self.own_sources.values():
            raise OwnAdvert(f"our own advert from {src} came back")
        self._heard(now, pkt.interval_cs / 100)
        if sorted(pkt.addresses) != sorted(self.settings.addresses_of(family)):
            self.mismatched_addresses += 1
        if self.state is State.MASTER:
            self._master_receives(pkt, family, src, now)
        elif self.state is State.BACKUP:
            self._backup_receives(pkt, family, src, now)

    # -- RFC 5798 6.4.2 and 6.4.3 -------------------------------------------------

    def _backup_receives(self, pkt: VrrpPacket, family: int, src: IPAddress, now: float) -> None:
        if pkt.priority == VRRP_PRIORITY_RELEASE:
            # The master is leaving: take over after Skew_Time unless a better backup
            # advertises first.
            self._master_down_at[family] = now + self.skew_time(family)
            self._down_reason[family] = Reason.MASTER_RELEASED
        elif not self.settings.preempt or pkt.priority >= self.priority:
            self._note_master(family, src)
            self._master_adver_cs[family] = pkt.interval_cs
            self._master_down_at[family] = now + self.master_down_interval_for(family)
            self._armed_at[family] = now
            self._down_reason[family] = Reason.MASTER_TIMED_OUT
        elif self._down_reason.get(family) is Reason.MASTER_TIMED_OUT:
            # Preempting a lower-priority master: discard the advert and let the
            # Master_Down_Timer run out, and say so when it does (not a silent master).
            self._down_reason[family] = Reason.PREEMPTING_LOWER_PRIORITY

    def _master_receives(self, pkt: VrrpPacket, family: int, src: IPAddress, now: float) -> None:
        if pkt.priority == VRRP_PRIORITY_RELEASE:
            # Someone released the VRID: confirm at once that we are MASTER.
            self._send_adverts()
            self._advert_at = now + self.advert_interval
            return
        reason = None
        if pkt.priority > self.priority:
            reason = Reason.HIGHER_PRIORITY_MASTER
        elif pkt.priority == self.priority and self._loses_tie(family, src):
            reason = Reason.GREATER_ADDRESS_MASTER
        if reason is not None:
            self._master_adver_cs[family] = pkt.interval_cs
            self._become_backup(now, reason)
            self._note_master(family, src)
        # else: discard.

    def _loses_tie(self, family: int, src: IPAddress) -> bool:
        """Equal priority: the greater primary address (unsigned, network order) wins."""
        own = self.own_sources.get(family)
        return own is None or int(src) > int(own)

    # -- transitions --------------------------------------------------------------

    def _become_master(self, now: float, reason: Reason) -> None:
        self._down_reason.clear()
        super()._become_master(now, reason)

    def _advertise(self) -> None:
        if self.demotion == self._round_demotion:  # the routine advert, 100 a second
            self._actions.extend(self._round)
        else:
            self._send_adverts()

    def _arm_master_down(self, now: float) -> None:
        self._master_down_at = {
            f: now + self.master_down_interval_for(f) for f in self.settings.families
        }
        self._armed_at = dict.fromkeys(self.settings.families, now)
        self._down_reason = dict.fromkeys(self.settings.families, Reason.MASTER_TIMED_OUT)

    def _send_adverts(self, *, priority: int | None = None) -> None:
        """One advert per family, each with that family's addresses."""
        prio = self.priority if priority is None else priority
        round_: list[SendVrrp] = []
        for family in self._families:
            # The same advert every interval until the priority changes (10 ms adverts).
            action = self._adverts.get((family, prio))
            if action is None:
                if len(self._adverts) >= 8:  # priorities of the past
                    self._adverts.clear()
                s = self.settings
                pkt = VrrpPacket(
                    vrid=s.vrid,
                    priority=prio,
                    interval_cs=s.interval_cs,
                    addresses=s.addresses_of(family),
                )
                action = self._adverts[family, prio] = SendVrrp(family, pkt)
            round_.append(action)
        self._actions.extend(round_)
        if priority is None:
            self._round, self._round_demotion = tuple(round_), self.demotion
