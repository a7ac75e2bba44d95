"""The receive path: datagrams off a carpdev's sockets, through the core's classify()
(what is fuzzed is what runs), to the vhid's machine. Whatever is refused is counted
(on the vhid it claimed, else on the carpdev) and logged, rate-limited."""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable

from carpd.core.errors import PacketError
from carpd.core.model import IPAddress
from carpd.core.packet import CarpPacket
from carpd.core.receive import Datagram, VhidClash, classify, ipv4_datagram, ipv6_datagram
from carpd.core.vrrp import VRRP_VERSION, VrrpPacket
from carpd.daemon.runtime.vhost import Carpdev, Vhost
from carpd.daemon.seam.diagnosis import Diagnosis, Level
from carpd.daemon.seam.ratelimit import RateLimiter
from carpd.linux.sockets import AdvertSocketV4, AdvertSocketV6

log = logging.getLogger("carpd")

# What a refused advert usually means, for the log and for status (once per 10 min).
HINTS = {
    "bad_hmac": "adverts from {src} for vhid {vhid} fail the HMAC check: the peer has a "
    "different password, or a different address list (every address of a vhid is hashed)",
    "own_advert": "our own adverts come back to us from the network: a switch or virtual "
    "switch is reflecting multicast (e.g. NIC teaming on ESXi)",
    "not_a_peer": "adverts for vhid {vhid} from {src}, which is not in peers",
}

# Refusals that say nothing is wrong, logged at debug only: a vhid this node does not
# run, and a frame delivered twice.
QUIET = frozenset({"unknown_vhid", "duplicate"})

# The receive path's view of a vhid (Vhost.member).
MEMBER = operator.attrgetter("member")


class Receiver:
    def __init__(
        self, limiter: RateLimiter, now: Callable[[], float], process: Callable[[Vhost], None]
    ) -> None:
        self.limiter = limiter
        self.now = now
        self.process = process  # the vhid's machine may have something to do

    def read(
        self, dev: Carpdev, sock: AdvertSocketV4 | AdvertSocketV6, limit: int
    ) -> tuple[int, list[IPAddress]]:
        """Up to ``limit`` datagrams off ``sock`` (fewer: its queue is empty), and the
        sources whose adverts verified among them (the intake reads their next ones apart:
        it asks, and this module never calls back up)."""
        verified: list[IPAddress] = []
        if isinstance(sock, AdvertSocketV4):
            return self._read_v4(dev, sock, limit, verified), verified
        return self._read_v6(dev, sock, limit, verified), verified

    def _read_v4(
        self, dev: Carpdev, sock: AdvertSocketV4, limit: int, verified: list[IPAddress]
    ) -> int:
        for n in range(limit):
            try:
                data = sock.recv()
            except (BlockingIOError, InterruptedError):
                return n
            except OSError as e:  # e.g. ENETDOWN while the carpdev goes away
                self._recv_error(dev, e)
                return n
            try:
                dg = ipv4_datagram(data)
            except PacketError as e:
                self._dropped(dev, e, "?")
                continue
            if self._datagram(dev, dg):
                verified.append(dg.src)
        return limit

    def _read_v6(
        self, dev: Carpdev, sock: AdvertSocketV6, limit: int, verified: list[IPAddress]
    ) -> int:
        for n in range(limit):
            try:
                data, src, dst, hoplimit = sock.recv()
            except (BlockingIOError, InterruptedError):
                return n
            except OSError as e:
                self._recv_error(dev, e)
                return n
            dg = ipv6_datagram(data, src, dst, hoplimit)
            if self._datagram(dev, dg):
                verified.append(dg.src)
        return limit

    def _datagram(self, dev: Carpdev, dg: Datagram) -> bool:
        """The core's receive path (classify): version, vhid, protocol, TTL rule."""
        vhosts = dev.by_family[dg.family]
        try:
            vh, pkt = classify(dg, vhosts, MEMBER)
        except VhidClash as e:
            other = "a VRRP router" if e.version == VRRP_VERSION else "a CARP node"
            text = f"vhid {e.vhid} is also used by {other} at {dg.src}"
            self.diagnose(vhosts[e.vhid], "vhid-clash", text)
            self._dropped(dev, e, dg.src)
            return False
        except PacketError as e:
            self._dropped(dev, e, dg.src)
            return False
        return self._receive(vh, pkt, dg.family, dg.src)

    def _receive(
        self, vh: Vhost, pkt: CarpPacket | VrrpPacket, family: int, src: IPAddress
    ) -> bool:
        """Whether the advert verified (and so was handed to the vhid's machine)."""
        try:
            vh.machine.receive(pkt, family, src, self.now())
        except PacketError as e:
            # Counted on the vhid it claimed to be for, not again on the carpdev. Nothing
            # changed, so there is nothing to process.
            vh.machine.counters.drop(e.reason)
            self.refused(vh, e, src)
            return False
        self.process(vh)
        return True

    def refused(self, vh: Vhost, err: PacketError, src: IPAddress) -> None:
        """A refusal's log line (rate-limited) and hint; the counting is the caller's
        (also the intake's, whose screen refuses forged adverts before decoding them).
        Under a flood of the same forgery the hint is formatted once, not per packet."""
        self._log_drop(vh.dev, err, src)
        hint = HINTS.get(err.reason)
        if hint is not None:
            if vh.hinted.get(err.reason) != src:
                vh.hinted[err.reason] = src
                self.diagnose(vh, err.reason, hint.format(src=src, vhid=vh.cfg.vhid))
            else:
                self.diagnose(vh, err.reason, vh.diagnostics[err.reason].text)

    def diagnose(
        self, vh: Vhost, kind: str, text: str, level: Level = "warning", heard: int | None = None
    ) -> None:
        """A known misconfiguration (or, at ``info``, a fact worth knowing): kept for
        status with when it was first and last seen, logged once per 10 min."""
        now = self.now()
        old = vh.diagnostics.get(kind)
        if (
            old is not None
            and old.text == text
            and old.active(now, vh.machine.counters.adverts_received)
        ):
            old.last = now
        else:
            vh.diagnostics[kind] = Diagnosis(kind, level, text, now, now, heard)
        if self.limiter.allow((vh.cfg.name, "diagnosis", kind), now, 600.0) is not None:
            log.log(
                logging.INFO if level == "info" else logging.WARNING, "%s: %s", vh.cfg.name, text
            )

    def _recv_error(self, dev: Carpdev, err: OSError) -> None:
        if self.limiter.allow((dev.name, "recv"), self.now()) is not None:
            log.warning("carp: receive failed on %s: %s", dev.name, err)

    def _dropped(self, dev: Carpdev, err: PacketError, src: object) -> None:
        dev.dropped[err.reason] = dev.dropped.get(err.reason, 0) + 1
        self._log_drop(dev, err, src)

    def _log_drop(self, dev: Carpdev, err: PacketError, src: object) -> None:
        hidden = self.limiter.allow((dev.name, err.reason, src), self.now())  # no str() per packet
        if hidden is None:
            return
        more = f" ({hidden} more suppressed)" if hidden else ""
        level = logging.DEBUG if err.reason in QUIET else logging.WARNING
        log.log(level, "carp: %s from %s on %s: %s%s", err.reason, src, dev.name, err, more)
