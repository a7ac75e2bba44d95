"""Raw sockets for CARP adverts (IP protocol 112), one per carpdev and address family."""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Callable

from carpd.core.packet import CARP_GROUP_V4, CARP_GROUP_V6, CARP_TTL, IPPROTO_CARP
from carpd.linux import bpf

RECV_BUFSIZE = 2048  # adverts are 56 bytes; anything longer is read whole and refused
MEMO_MAX = 4096  # refused datagrams remembered per socket (a varied flood: no more)
SO_RCVBUFFORCE = 33  # not in the socket module: SO_RCVBUF past net.core.rmem_max


def _bind_to_device(sock: socket.socket, ifname: str) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())


def _size_queue(sock: socket.socket, size: int | None) -> None:
    """A queue for the worst legitimate burst (every vhid's advert at once), past
    net.core.rmem_max where CAP_NET_ADMIN allows."""
    if size is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


class _Filtered:
    """A receiving socket, with a memo of datagrams the caller refused.

    A flood usually repeats one forged datagram (a packet generator replays a frame).
    The caller hands back what it read and refused (``refuse``); a copy of one of those
    is then skipped in recv() for the price of a set lookup and counted in ``repeats``,
    never decoded or verified again, as long as ``skips`` (set by the caller, spent by
    recv) lasts: past it, copies are returned like any datagram, which bounds the work
    of one batch. A genuine advert is never a copy of a refused one
    (its counter, or for VRRP its whole content, verified before), so it is never
    skipped; the caller forgets the memo (``forget``) when what it refuses may change.
    """

    sock: socket.socket
    refused: set[object]  # keys of refused datagrams
    recent: list[object]  # keys of the datagrams recv() returned, since the caller took them
    repeats: int  # copies of refused datagrams skipped
    skips: int  # copies recv() may still skip
    screen: Callable[[bytes], bool] | None  # True: refused (and counted) by the caller

    def _init_memo(self) -> None:
        self.refused = set()
        self.recent = []
        self.repeats = 0
        self.skips = 0
        self.screen = None

    def take_recent(self) -> list[object]:
        out, self.recent = self.recent, []
        return out

    def refuse(self, keys: list[object]) -> None:
        self.refused.update(keys)

    def forget(self) -> None:
        self.refused.clear()

    def fileno(self) -> int:
        return self.sock.fileno()

    def set_filter(self, program: bytes) -> None:
        bpf.attach(self.sock, program)

    def queue_drops(self) -> int:
        return bpf.queue_drops(self.sock)

    def close(self) -> None:
        self.sock.close()


class AdvertSocketV4(_Filtered):
    """Sends adverts with our own IPv4 header (TTL 255, TOS 0x10, DF, as ucarp and
    OpenBSD do) and receives whole datagrams, so the TTL can be checked."""

    family = 4

    def __init__(
        self, ifname: str, ifindex: int, *, join: bool = True, queue: int | None = None
    ) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_CARP)
        try:
            _bind_to_device(s, ifname)
            _size_queue(s, queue)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, CARP_TTL)
            mreqn = struct.pack("4s4si", CARP_GROUP_V4.packed, bytes(4), ifindex)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
            if join:  # a send-only socket (a virtual MAC's) receives nothing
                s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
            s.setblocking(False)
        except BaseException:
            s.close()
            raise
        self.sock = s
        self._to: dict[ipaddress.IPv4Address, tuple[str, int]] = {}
        self._init_memo()

    def send(self, datagram: bytes, dst: ipaddress.IPv4Address = CARP_GROUP_V4) -> None:
        to = self._to.get(dst)
        if to is None:  # the group or a few unicast peers: formatted once each
            to = self._to[dst] = (str(dst), 0)
        self.sock.sendto(datagram, to)

    def recv(self) -> bytes:
        """The next datagram that is not a copy of a refused one (once ``skips`` is
        spent, a copy too)."""
        recv, refused, screen = self.sock.recv, self.refused, self.screen
        data = recv(RECV_BUFSIZE)
        if refused or screen is not None:
            skipped = 0
            try:
                while skipped < self.skips:
                    if data in refused:
                        self.repeats += 1
                    elif screen is None or not screen(data):
                        break
                    elif len(refused) < MEMO_MAX:
                        refused.add(data)  # its copies: a set lookup each, from now on
                    skipped += 1
                    data = recv(RECV_BUFSIZE)  # BlockingIOError: the queue is empty
            finally:
                self.skips -= skipped
        self.recent.append(data)
        return data


class AdvertSocketV6(_Filtered):
    """IPv6 raw sockets hand us only the payload: the hop limit and destination come
    from ancillary data. No IPV6_CHECKSUM: CARP's checksum has no pseudo-header."""

    family = 6
    _ANC = socket.CMSG_SPACE(4) + socket.CMSG_SPACE(20)

    def __init__(
        self, ifname: str, ifindex: int, *, join: bool = True, queue: int | None = None
    ) -> None:
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_CARP)
        try:
            _bind_to_device(s, ifname)
            _size_queue(s, queue)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, CARP_TTL)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, CARP_TTL)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            if join:
                mreq = struct.pack("16si", CARP_GROUP_V6.packed, ifindex)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
            s.setblocking(False)
        except BaseException:
            s.close()
            raise
        self.sock = s
        self.ifindex = ifindex
        self._init_memo()

    def send(
        self,
        payload: bytes,
        dst: ipaddress.IPv6Address = CARP_GROUP_V6,
        src: ipaddress.IPv6Address | None = None,
    ) -> None:
        if src is None:
            self.sock.sendto(payload, (str(dst), 0, 0, self.ifindex))
            return
        # A fixed source: VRRP's checksum was computed over it.
        pktinfo = struct.pack("16sI", src.packed, self.ifindex)
        anc = [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, pktinfo)]
        self.sock.sendmsg([payload], anc, 0, (str(dst), 0, 0, self.ifindex))

    def recv(self) -> tuple[bytes, ipaddress.IPv6Address, ipaddress.IPv6Address, int]:
        """(payload, source, destination, hop limit)."""
        recvmsg, refused = self.sock.recvmsg, self.refused
        data, anc, _flags, addr = recvmsg(RECV_BUFSIZE, self._ANC)
        key = (data, addr[0], *anc)
        if refused:
            skipped = 0
            try:
                while key in refused and skipped < self.skips:
                    skipped += 1
                    self.repeats += 1
                    data, anc, _flags, addr = recvmsg(RECV_BUFSIZE, self._ANC)
                    key = (data, addr[0], *anc)
            finally:
                self.skips -= skipped
        self.recent.append(key)
        hoplimit = -1
        dst = CARP_GROUP_V6
        for level, kind, value in anc:
            if level != socket.IPPROTO_IPV6:
                continue
            if kind == socket.IPV6_HOPLIMIT and len(value) >= 4:
                (hoplimit,) = struct.unpack("=i", value[:4])
            elif kind == socket.IPV6_PKTINFO and len(value) >= 16:
                dst = ipaddress.IPv6Address(value[:16])
        src = ipaddress.IPv6Address(addr[0].split("%", 1)[0])
        return data, src, dst, hoplimit


class Announcer:
    """Gratuitous ARP (AF_PACKET) and unsolicited NA (ICMPv6 raw) on one interface."""

    def __init__(self, ifname: str, ifindex: int) -> None:
        self.ifname = ifname
        self.ifindex = ifindex
        self._packet: socket.socket | None = None
        self._icmp6: socket.socket | None = None

    def send_arp(self, frame: bytes) -> None:
        if self._packet is None:
            self._packet = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            self._packet.bind((self.ifname, 0))
        self._packet.send(frame)

    def send_na(self, body: bytes) -> None:
        if self._icmp6 is None:
            s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.ifindex)
            self._icmp6 = s
        self._icmp6.sendto(body, ("ff02::1", 0, 0, self.ifindex))

    def close(self) -> None:
        for s in (self._packet, self._icmp6):
            if s is not None:
                s.close()
