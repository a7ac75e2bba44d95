"""The per-vhid CARP state machine (spec section 4), driven by the caller's clock.

Inputs: start / receive / handle_timer / stop, each with ``now`` in seconds on any
monotonic clock. Outputs: actions queued for the caller, taken with ``drain()``.
``get_timer()`` is the next absolute deadline at which ``handle_timer`` must be called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from carpd.core.actions import Announce, SendAdvert
from carpd.core.auth import Authenticator
from carpd.core.demotion import demote_byte, demoted_advskew
from carpd.core.errors import Duplicate, NotAPeer, OwnAdvert, Replayed
from carpd.core.model import IPAddress, Reason, State
from carpd.core.packet import BOW_OUT_ADVBASE, BOW_OUT_ADVSKEW, CarpPacket
from carpd.core.router import DELAYED_ANNOUNCE_ADVERTS, Router
from carpd.core.timing import DEFAULT_DEADRATIO, advert_interval, master_down_interval

Tiebreak = Literal["ucarp", "bsd"]


@dataclass(frozen=True, slots=True)
class VhostSettings:
    vhid: int
    advbase: int = 1
    advskew: int = 0
    preempt: bool = False
    # "ucarp": equal adverts are won by the source address that is lower as a
    # little-endian integer, exactly as ucarp decides, so a mixed cluster always keeps
    # one master. "bsd": a master steps down on any equal advert (OpenBSD, FreeBSD).
    tiebreak: Tiebreak = "ucarp"
    deadratio: int = DEFAULT_DEADRATIO
    families: frozenset[int] = frozenset({4})
    # ucarp --neutral: no down hook on the first INIT -> BACKUP.
    neutral: bool = False
    # Unicast peers (FreeBSD 14 `peer`): only their adverts are accepted.
    peers: frozenset[IPAddress] = frozenset()
    # Refuse, per source, any advert whose counter does not increase.
    replay_protection: bool = False


def _le_order(addr: IPAddress) -> int:
    # ucarp compares raw s_addr values in host order: on little-endian hosts the last
    # octet is the most significant.
    return int.from_bytes(addr.packed, "little")


class VirtualHost(Router[CarpPacket]):
    """One redundancy group (vhid) on one carpdev."""

    settings: VhostSettings

    def __init__(
        self,
        settings: VhostSettings,
        auth: Authenticator,
        *,
        counter_start: int,
        own_sources: dict[int, IPAddress],
    ) -> None:
        super().__init__(settings, own_sources=own_sources)
        self.settings = settings
        self._auth = auth
        self._counter = counter_start & 0xFFFFFFFFFFFFFFFF
        self._last_accepted: dict[IPAddress, CarpPacket] = {}  # replay_protection
        self._reassert_after = float("-inf")

    def params(self) -> dict[str, Any]:
        return {
            "protocol": "carp",
            "authentication": "HMAC-SHA1",
            "advbase": self.settings.advbase,
            "advskew": self.settings.advskew,
            "advskew_sent": self.advskew,
            "demote": self.demote,
            "replay_protection": self.settings.replay_protection,
        }

    # -- timing -------------------------------------------------------------------

    @property
    def advskew(self) -> int:
        """The advskew we advertise and compare with: demotion added, capped at 240."""
        return demoted_advskew(self.settings.advskew, self.demotion)

    @property
    def demote(self) -> int:
        """The OpenBSD demote byte we send and compare with."""
        return demote_byte(self.demotion)

    @property
    def advert_interval(self) -> float:
        return advert_interval(self.settings.advbase, self.advskew)

    @property
    def master_down_interval(self) -> float:
        s = self.settings
        return master_down_interval(s.advbase, s.advskew, s.deadratio)

    # -- inputs -------------------------------------------------------------------

    def start(self, now: float) -> None:
        if self.state is State.INIT and self.link_up and self.enabled:
            self._become_backup(now, Reason.INITIALIZATION_COMPLETE)

    def set_demotion(self, total: int, now: float) -> None:
        """A new demotion total. A MASTER advertises it at once, as the BSDs do."""
        if total == self.demotion:
            return
        self.demotion = total
        if self.state is State.MASTER:
            self._send_advert()
            self._advert_at = now + self.advert_interval

    def _restart(self, now: float, reason: Reason) -> None:
        self._become_backup(now, reason)

    def _bow_out(self) -> None:
        self._send_advert(bow_out=True)  # the "infinite" advert, 255/255

    def _on_master_down(self, now: float, fired: list[int]) -> None:
        self._become_master(now, Reason.MASTER_TIMED_OUT)

    def receive(self, pkt: CarpPacket, family: int, src: IPAddress, now: float) -> None:
        """A decoded advert for our vhid. Raises NotAPeer / BadHMAC / OwnAdvert / Replayed;
        then nothing changed."""
        s = self.settings
        if s.peers and src not in s.peers:
            raise NotAPeer(f"advert from {src}, which is not a configured peer")
        self._auth.verify(pkt.counter_bytes, pkt.hmac)
        if src in self.own_sources.values():
            raise OwnAdvert(f"our own advert from {src} came back")
        if s.replay_protection:
            # Only after the HMAC: a forged counter must not poison the record.
            last = self._last_accepted.get(src)
            if last is not None and pkt.counter <= last.counter:
                if pkt == last:
                    raise Duplicate(f"counter {pkt.counter:#x} from {src}, already heard")
                raise Replayed(f"counter {pkt.counter:#x} from {src} not above {last.counter:#x}")
            self._last_accepted[src] = pkt
        self._heard(now, pkt.advbase + pkt.advskew / 256)
        if self.state is State.MASTER:
            self._master_receives(pkt, family, src, now)
        elif self.state is State.BACKUP:
            self._backup_receives(pkt, family, src, now)

    # -- election (spec 4.3 and 4.4) ----------------------------------------------

    def _ours(self) -> tuple[int, int]:
        return (self.settings.advbase, self.advskew)

    def _master_receives(self, pkt: CarpPacket, family: int, src: IPAddress, now: float) -> None:
        if pkt.is_bow_out:
            return
        theirs = (pkt.advbase, pkt.advskew)
        ours = self._ours()
        reason = None
        tie = pkt.demote == self.demote and theirs == ours
        if pkt.demote < self.demote:
            reason = Reason.LESS_DEMOTED_MASTER
        elif pkt.demote > self.demote:
            reason = None
        elif theirs < ours:
            reason = Reason.MORE_FREQUENT_ADVERT
        elif tie and self._loses_tie(family, src):
            reason = Reason.PREFERRED_MASTER_TIE
        if reason is not None:
            # One last advert first, as ucarp does: if the other master has not heard us
            # (a healed partition), this is what tells it to announce itself afresh.
            # Not on a BSD tie: the other master yields to an equal advert too, so the
            # last advert would always take it down as well and leave no master for a
            # master-down interval (then a race). The BSDs step down silently.
            if not (tie and self.settings.tiebreak == "bsd"):
                self._send_advert()
            self._become_backup(now, reason)
            self._note_master(family, src)
        elif now >= self._reassert_after:
            # Another master that should yield (a healed split brain): tell it now rather
            # than at our next advert, and announce again, twice, so neighbours that
            # followed it come back (keepalived #166, #1528). At most once per advert
            # interval: a peer that keeps coming back (mismatched advbase and demotion)
            # must not turn this into a storm of adverts.
            self._reassert_after = now + self.advert_interval
            self._send_advert()
            self._actions.append(Announce())
            self._delayed_announce = DELAYED_ANNOUNCE_ADVERTS

    def _loses_tie(self, family: int, src: IPAddress) -> bool:
        if self.settings.tiebreak == "bsd":
            return True
        own = self.own_sources.get(family)
        return own is None or _le_order(src) < _le_order(own)

    def _backup_receives(self, pkt: CarpPacket, family: int, src: IPAddress, now: float) -> None:
        self._note_master(family, src)
        theirs = (pkt.advbase, pkt.advskew)
        ours = self._ours()
        s = self.settings
        if pkt.is_bow_out:
            self._become_master(now, Reason.MASTER_BOWED_OUT)
        elif s.preempt and ours < theirs and pkt.demote >= self.demote:
            self._become_master(now, Reason.PREEMPTING)
        elif pkt.demote > self.demote:
            self._become_master(now, Reason.MASTER_MORE_DEMOTED)
        elif pkt.demote < self.demote:
            # It outranks us whatever the timers say, so taking it for dead because it
            # advertises no faster than our master-down interval (rule 3, or our timer
            # running out first) would be undone by its next advert: a flip per
            # interval, as on OpenBSD. Give it as many of its own intervals instead.
            if family in self.settings.families:
                self._master_down_at[family] = now + self._outranked_timeout(pkt)
        elif (s.deadratio * s.advbase, self.advskew) < theirs:
            self._become_master(now, Reason.MASTER_WILL_TIME_OUT)
        elif family in self.settings.families:
            self._master_down_at[family] = now + self.master_down_interval

    def _outranked_timeout(self, pkt: CarpPacket) -> float:
        theirs = advert_interval(pkt.advbase, pkt.advskew)
        if self.master_down_interval > theirs:
            return self.master_down_interval  # the usual case: nothing changes
        return self.settings.deadratio * theirs

    # -- transitions --------------------------------------------------------------

    def _advertise(self) -> None:
        self._send_advert()

    def _arm_master_down(self, now: float) -> None:
        deadline = now + self.master_down_interval
        self._master_down_at = dict.fromkeys(self.settings.families, deadline)

    def _send_advert(self, *, bow_out: bool = False) -> None:
        self._counter = (self._counter + 1) & 0xFFFFFFFFFFFFFFFF
        counter = self._counter.to_bytes(8, "big")
        pkt = CarpPacket(
            vhid=self.settings.vhid,
            advbase=BOW_OUT_ADVBASE if bow_out else self.settings.advbase,
            advskew=BOW_OUT_ADVSKEW if bow_out else self.advskew,
            counter=self._counter,
            hmac=self._auth.sign(counter),
            demote=self.demote,
        )
        self._actions.append(SendAdvert(pkt.encode()))
