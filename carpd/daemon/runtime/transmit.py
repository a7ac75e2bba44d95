"""The wire lane: a vhid's adverts leave the moment the core asks, never queued.

One path for CARP and VRRPv3 (they once drifted apart: VRRP forgot the virtual MAC), and
FreeBSD's senderr demotion: three failed adverts in a row demote the node, three good
ones in a row lift it.
"""

from __future__ import annotations

import ipaddress
import logging
import random
from collections.abc import Callable, Iterable

from carpd.core.actions import SendAdvert, SendVrrp
from carpd.core.model import IPAddress
from carpd.core.packet import CARP_TOS, VRRP_TOS, build_ipv4
from carpd.daemon.runtime.vhost import Vhost
from carpd.daemon.seam.ratelimit import RateLimiter
from carpd.linux.sockets import AdvertSocketV4

log = logging.getLogger("carpd")

SEND_ERRORS = 3  # consecutive failed adverts before the senderr demotion (FreeBSD, ucarp)


class Transmitter:
    def __init__(
        self,
        limiter: RateLimiter,
        now: Callable[[], float],
        senderr: Callable[[list[str]], None],
    ) -> None:
        self.limiter = limiter
        self.now = now
        # Told the vhids failing to send whenever that set changes from or to empty.
        self.senderr = senderr

    def send(self, vh: Vhost, action: SendAdvert | SendVrrp, vhosts: Iterable[Vhost]) -> None:
        ok = True
        families = sorted(vh.families) if isinstance(action, SendAdvert) else [action.family]
        for family in families:
            for dst in vh.destinations(family):
                try:
                    if self._one(vh, action, family, dst):
                        vh.machine.counters.adverts_sent += 1
                except OSError as e:
                    ok = False
                    vh.machine.counters.drop("send_error")
                    key = (vh.dev.name, "send", family)
                    if self.limiter.allow(key, self.now()) is not None:
                        ip = "ip6" if family == 6 else "ip"
                        log.warning("%s: %s_output failed: %s", vh.cfg.name, ip, e)
        self._count(vh, ok, vhosts)

    def _one(self, vh: Vhost, action: SendAdvert | SendVrrp, family: int, dst: IPAddress) -> bool:
        """Hand one advert to the kernel; False if there is no socket for it."""
        src = vh.machine.own_sources[family]
        if isinstance(action, SendVrrp):
            # VRRP's checksum covers a pseudo-header, so each destination gets its own.
            # A VRRP advert has no counter: the same datagram goes out every interval
            # until the priority or our address changes, so it is built once (10 ms
            # adverts). Its IPv4 header's ID is 0: the kernel fills it in (raw(7)). The
            # addresses and interval are the vhid's config: a change there restarts it.
            key = (family, action.packet.priority, int(dst), int(src))
            wire = vh.vrrp_encoded.get(key)
            if wire is None:
                if len(vh.vrrp_encoded) >= 8:  # a changed priority: old ones go
                    vh.vrrp_encoded.clear()
                wire = action.packet.encode(src, dst)
                if family == 4:
                    assert isinstance(src, ipaddress.IPv4Address)
                    assert isinstance(dst, ipaddress.IPv4Address)
                    wire = build_ipv4(src, dst, wire, 0, tos=VRRP_TOS)  # TTL 255
                vh.vrrp_encoded[key] = wire
            payload = wire
        elif family == 4:
            assert isinstance(src, ipaddress.IPv4Address)
            assert isinstance(dst, ipaddress.IPv4Address)
            ident = random.getrandbits(16)
            payload = build_ipv4(src, dst, action.payload, ident, tos=CARP_TOS)  # TTL 255
        else:
            payload = action.payload
        if family == 4:
            sock4 = self._sock4(vh)
            if sock4 is None:
                return False
            assert isinstance(dst, ipaddress.IPv4Address)
            sock4.send(payload, dst)
            return True
        sock6 = vh.dev.sock6
        if sock6 is None:
            return False
        assert isinstance(dst, ipaddress.IPv6Address)
        assert isinstance(src, ipaddress.IPv6Address)
        if isinstance(action, SendVrrp):
            sock6.send(payload, dst, src)
        else:
            sock6.send(payload, dst)
        return True

    @staticmethod
    def _sock4(vh: Vhost) -> AdvertSocketV4 | None:
        """IPv4 adverts leave from the virtual MAC while it is up, so switches keep learning
        it (and RFC 5798 7.3 wants it for VRRP). IPv6 ones need a link-local source, which
        only the carpdev has."""
        return vh.vmac.sock4 if vh.vmac is not None and vh.vmac.up else vh.dev.sock4

    def _count(self, vh: Vhost, ok: bool, vhosts: Iterable[Vhost]) -> None:
        if ok:
            vh.send_errors, vh.send_oks = 0, vh.send_oks + 1
        else:
            vh.send_errors, vh.send_oks = vh.send_errors + 1, 0
        if not vh.send_demoted and vh.send_errors >= SEND_ERRORS:
            vh.send_demoted = True
        elif vh.send_demoted and vh.send_oks >= SEND_ERRORS:
            vh.send_demoted = False
        else:
            return
        self.senderr([v.cfg.name for v in vhosts if v.send_demoted])
