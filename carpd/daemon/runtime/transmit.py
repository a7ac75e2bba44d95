"""The wire lane: a vhid's adverts leave the moment the core asks, never queued.

One path for CARP and VRRPv3 (they once drifted apart: VRRP forgot the virtual MAC), and
FreeBSD's senderr demotion: three failed adverts in a row demote the node, three good
ones in a row lift it.
"""

from __future__ import annotations

import ipaddress
import logging
import random
from collections.abc import Callable, Mapping
from typing import Any

from carpd.core.actions import SendAdvert, SendVrrp
from carpd.core.packet import CARP_TOS, VRRP_TOS, build_ipv4
from carpd.daemon.runtime.vhost import Vhost
from carpd.daemon.seam.ratelimit import RateLimiter
from carpd.linux.sockets import AdvertSocketV4

log = logging.getLogger("carpd")

SEND_ERRORS = 3  # consecutive failed adverts before the senderr demotion (FreeBSD, ucarp)

# One datagram handed to the kernel: (family, the socket's send, its arguments).
_Send = tuple[int, Callable[..., None], tuple[Any, ...]]


class Transmitter:
    def __init__(
        self,
        limiter: RateLimiter,
        now: Callable[[], float],
        senderr: Callable[[list[str]], None],
        vhosts: Mapping[Any, Vhost],
    ) -> None:
        self.limiter = limiter
        self.now = now
        # Told the vhids failing to send whenever that set changes from or to empty.
        self.senderr = senderr
        self.vhosts = vhosts  # all of them: the senderr demotion names every failing one

    def send(self, vh: Vhost, action: SendAdvert | SendVrrp) -> None:
        if isinstance(action, SendVrrp):
            # A VRRP advert has no counter: the machine hands the same action every
            # interval until the priority changes, and so the same datagrams go out
            # (10 ms adverts: 100 a second per VRID). They are built once and kept with
            # the action and the socket they were built for; an identity check each.
            ready = vh.wire.get(action.family)
            if ready is None or ready[0] is not action or ready[1] is not self._sock(vh, action):
                ready = vh.wire[action.family] = self._ready(vh, action)
            sends = ready[2]
        else:
            sends = self._carp(vh, action)
        ok = True
        for family, send, args in sends:
            try:
                send(*args)
                vh.machine.counters.adverts_sent += 1
            except OSError as e:
                ok = False
                vh.machine.counters.drop("send_error")
                key = (vh.dev.name, "send", family)
                if self.limiter.allow(key, self.now()) is not None:
                    ip = "ip6" if family == 6 else "ip"
                    log.warning("%s: %s_output failed: %s", vh.cfg.name, ip, e)
        # The senderr bookkeeping: only a failure, or a run of good adverts after one,
        # has anything to do (a plain good advert: one comparison).
        if not ok or vh.send_errors or vh.send_demoted:
            self._count(vh, ok)

    def _ready(self, vh: Vhost, action: SendVrrp) -> tuple[SendVrrp, Any, tuple[_Send, ...]]:
        """The sends of a VRRP advert: one datagram per destination, as its checksum
        covers a pseudo-header with both addresses. Its IPv4 header's ID is 0: the kernel
        fills it in (raw(7)). The addresses and interval are the vhid's config: a change
        there restarts it (a new Vhost)."""
        family, sock = action.family, self._sock(vh, action)
        src = vh.machine.own_sources[family]
        sends: list[_Send] = []
        if sock is not None:  # none (yet): nothing is sent, nor counted
            for dst in vh.destinations(family):
                wire = action.packet.encode(src, dst)
                if family == 4:
                    assert isinstance(src, ipaddress.IPv4Address)
                    assert isinstance(dst, ipaddress.IPv4Address)
                    wire = build_ipv4(src, dst, wire, 0, tos=VRRP_TOS)  # TTL 255
                    sends.append((4, sock.send, (wire, dst)))
                else:
                    sends.append((6, sock.send, (wire, dst, src)))  # the checksum's source
        return (action, sock, tuple(sends))

    def _carp(self, vh: Vhost, action: SendAdvert) -> list[_Send]:
        """The sends of a CARP advert: its payload on every family the vhid uses (a new
        counter and HMAC each time: nothing to keep)."""
        sends: list[_Send] = []
        for family in sorted(vh.families):
            for dst in vh.destinations(family):
                if family == 4:
                    sock4 = self._sock4(vh)
                    if sock4 is None:
                        continue
                    src = vh.machine.own_sources[4]
                    assert isinstance(src, ipaddress.IPv4Address)
                    assert isinstance(dst, ipaddress.IPv4Address)
                    ident = random.getrandbits(16)
                    wire = build_ipv4(src, dst, action.payload, ident, tos=CARP_TOS)  # TTL 255
                    sends.append((4, sock4.send, (wire, dst)))
                elif vh.dev.sock6 is not None:
                    sends.append((6, vh.dev.sock6.send, (action.payload, dst)))
        return sends

    @staticmethod
    def _sock(vh: Vhost, action: SendVrrp) -> Any:
        """The socket a VRRP advert leaves by (_sock4's choice, without a second call)."""
        if action.family == 6:
            return vh.dev.sock6
        vmac = vh.vmac
        return vmac.sock4 if vmac is not None and vmac.up else vh.dev.sock4

    @staticmethod
    def _sock4(vh: Vhost) -> AdvertSocketV4 | None:
        """IPv4 adverts leave from the virtual MAC while it is up, so switches keep learning
        it (and RFC 5798 7.3 wants it for VRRP). IPv6 ones need a link-local source, which
        only the carpdev has."""
        return vh.vmac.sock4 if vh.vmac is not None and vh.vmac.up else vh.dev.sock4

    def _count(self, vh: Vhost, ok: bool) -> None:
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
        self.senderr([v.cfg.name for v in self.vhosts.values() if v.send_demoted])
