"""Interfaces and addresses through rtnetlink (pyroute2's asyncio API, from carpd.linux.rtnl,
the only module that imports pyroute2 in the daemon)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ipaddress
import socket
import struct
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

from carpd.linux.linkwatch import usable
from carpd.linux.rtnl import NLM_F_REQUEST, RTM_GETADDR, AsyncIPRoute, NetlinkError, ifaddrmsg

IFA_F_NODAD = 0x02
IFA_ADDRESS, IFA_LOCAL, IFA_CACHEINFO, IFA_FLAGS = 1, 2, 6, 8
RTM_NEWADDR_TYPE = 20
NLMSG_ERROR = 2
NLM_F_ACK, NLM_F_REPLACE = 0x4, 0x100
FOREVER = 0xFFFFFFFF  # INFINITY_LIFE_TIME: the lifetime of an address added without one
RENEW_CHUNK = 64  # requests per sendmsg: their acks fit the default receive buffer
RENEW_DEADLINE = 5.0  # the kernel acks a batch as it reads it: this is a broken socket
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _route_key(msg: Any) -> dict[str, Any]:
    """What identifies a dumped route to a "del" request."""
    key: dict[str, Any] = {
        "dst_len": msg["dst_len"],
        "table": msg.get("RTA_TABLE") or msg["table"],
        "oif": msg.get("RTA_OIF"),
    }
    if msg.get("RTA_DST"):
        key["dst"] = msg.get("RTA_DST")
    if msg.get("RTA_GATEWAY"):
        key["gateway"] = msg.get("RTA_GATEWAY")
    if msg.get("RTA_PRIORITY") is not None:
        key["priority"] = msg.get("RTA_PRIORITY")
    return key


def _attr(kind: int, data: bytes) -> bytes:
    size = 4 + len(data)
    return struct.pack("=HH", size, kind) + data + bytes(-size % 4)


def lifetime_request(seq: int, index: int, iface: IPInterface, lifetime: int | None) -> bytes:
    """An RTM_NEWADDR with NLM_F_REPLACE (not NLM_F_CREATE: the kernel creates a missing
    address all the same, so the caller must only ask for one it holds) that gives the
    address on link ``index`` the lifetime (valid = preferred: an IPv6 address is never
    deprecated); None: forever, as an address added without one."""
    v4 = iface.version == 4
    flags = 0 if v4 else IFA_F_NODAD
    ip = iface.ip.packed
    life = FOREVER if lifetime is None else lifetime
    attrs = (_attr(IFA_LOCAL, ip) if v4 else b"") + _attr(IFA_ADDRESS, ip)
    attrs += _attr(IFA_CACHEINFO, struct.pack("=IIII", life, life, 0, 0))
    attrs += _attr(IFA_FLAGS, struct.pack("=I", flags))
    family = socket.AF_INET if v4 else socket.AF_INET6
    body = struct.pack("=BBBBi", family, iface.network.prefixlen, flags, 0, index) + attrs
    kind, request = RTM_NEWADDR_TYPE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE
    return struct.pack("=IHHII", 16 + len(body), kind, request, seq, 0) + body


def acks(data: bytes) -> list[tuple[int, int]]:
    """The (sequence number, errno) of each NLMSG_ERROR in one netlink datagram."""
    out, at = [], 0
    while at + 16 <= len(data):
        size, kind, _, seq, _ = struct.unpack_from("=IHHII", data, at)
        if kind == NLMSG_ERROR and size >= 20:
            out.append((seq, -struct.unpack_from("=i", data, at + 16)[0]))
        at += max(16, (size + 3) & ~3)
    return out


@dataclass(frozen=True, slots=True)
class Link:
    name: str
    index: int
    mac: bytes
    up: bool


P = ParamSpec("P")
R = TypeVar("R")


def serialized(
    method: Callable[Concatenate[Netlink, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[Netlink, P], Coroutine[Any, Any, R]]:
    @functools.wraps(method)
    async def wrapper(self: Netlink, /, *args: P.args, **kwargs: P.kwargs) -> R:
        async with self._lock:
            return await method(self, *args, **kwargs)

    return wrapper


# What RTM_GETLINK by name answers for a name no link has: no such device, or a name too
# long to be one (ERANGE).
_NO_SUCH_LINK = (errno.ENODEV, errno.ERANGE)


class Netlink:
    """One rtnetlink socket, one request at a time: the kernel refuses a second dump on
    a socket while one is running (EBUSY), and reloads overlap with address changes."""

    def __init__(self) -> None:
        self._ipr: AsyncIPRoute | None = None
        self._lock = asyncio.Lock()
        # The addresses carpd added with a lifetime and has not removed since: the only
        # ones ``renew`` may touch (under the lock, so never one a removal just took).
        self._held: set[tuple[int, IPInterface]] = set()
        self._raw: socket.socket | None = None  # renewals: many requests per sendmsg
        self._seq = 0

    async def _api(self) -> AsyncIPRoute:
        if self._ipr is None:
            self._ipr = AsyncIPRoute()
            await self._ipr.setup_endpoint()
        return self._ipr

    async def close(self) -> None:
        self._held.clear()
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None
        if self._raw is not None:
            self._raw.close()
            self._raw = None

    def holding(self) -> bool:
        """Does carpd hold an address with a lifetime (one ``renew`` keeps)?"""
        return bool(self._held)

    def hold(self, index: int, iface: IPInterface) -> None:
        """Renew an address carpd added without a lifetime from now on."""
        self._held.add((index, iface))

    @serialized
    async def link(self, name: str) -> Link | None:
        return await self._link(name)

    async def _link(self, name: str) -> Link | None:
        ipr = await self._api()
        # One RTM_GETLINK by name: the kernel looks it up (pyroute2's link_lookup dumps
        # every link and parses each, then a second request gets the one: at start-up
        # that was twice the time, once per vhid).
        try:
            msgs = await ipr.link("get", ifname=name)
        except NetlinkError as e:
            if e.code in _NO_SUCH_LINK:
                return None
            raise
        if not msgs:
            return None
        msg = msgs[0]
        mac = bytes.fromhex((msg.get("IFLA_ADDRESS") or "00:00:00:00:00:00").replace(":", ""))
        return Link(name, msg["index"], mac, usable(msg["flags"]))

    @serialized
    async def addresses(self, index: int) -> list[IPInterface]:
        return await self._addresses(index)

    async def _addresses(self, index: int) -> list[IPInterface]:
        ipr = await self._api()
        out: list[IPInterface] = []
        async for msg in await ipr.get_addr(index=index):
            addr = msg.get("IFA_ADDRESS")
            if addr:
                out.append(ipaddress.ip_interface(f"{addr}/{msg['prefixlen']}"))
        return out

    @serialized
    async def add_address(
        self, index: int, iface: IPInterface, lifetime: int | None = None
    ) -> bool:
        """Add; False if it was already there. ``lifetime``: seconds (valid and preferred)
        until the kernel removes it by itself unless ``renew`` renews it; an address that
        was there already gets it too. None: forever."""
        ipr = await self._api()
        # No duplicate address detection: the address moves between hosts on purpose.
        flags = IFA_F_NODAD if iface.version == 6 else 0
        spec: dict[str, Any] = {"address": str(iface.ip), "prefixlen": iface.network.prefixlen}
        if lifetime is not None:
            spec |= {"valid_lft": lifetime, "preferred_lft": lifetime}
        added = True
        try:
            await ipr.addr("add", index=index, flags=flags, **spec)
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise
            added = False
            if lifetime is not None:  # left by a carpd killed before: ours from now on
                await ipr.addr("replace", index=index, flags=flags, **spec)
        if lifetime is not None:
            self._held.add((index, iface))
        return added

    @serialized
    async def remove_address(
        self, index: int, iface: IPInterface, *, any_prefix: bool = False
    ) -> bool:
        """Remove; False if it was not there. ``any_prefix``: every entry of the address on
        the link, whatever its prefix (a ucarp up-script's ``$2/24`` beside carpd's /32)."""
        self._held -= {h for h in self._held if h[0] == index and h[1].ip == iface.ip}
        ipr = await self._api()
        if not any_prefix:
            return await self._delete(ipr, index, iface.ip, iface.network.prefixlen)
        if iface.version == 4:
            # IPv4 keeps an entry per prefix. A request without IFA_ADDRESS is matched on
            # IFA_LOCAL alone, whatever the prefix (inet_rtm_deladdr): one entry per
            # request, until none is left (at most one per prefix length).
            removed = 0
            while removed <= 32 and await self._delete(ipr, index, iface.ip, None):
                removed += 1
            return removed > 0
        # IPv6 keeps one entry per address and link, and deletes it only with its length.
        prefixlen = await self._prefixlen(ipr, index, iface.ip)
        return prefixlen is not None and await self._delete(ipr, index, iface.ip, prefixlen)

    @serialized
    async def renew(
        self,
        lifetimes: Mapping[tuple[int, IPInterface], int | None],
        present: Callable[[int, IPInterface], bool],
        *,
        exact: bool = False,
    ) -> list[tuple[int, IPInterface, int]]:
        """Renew the lifetime of every address carpd holds (added with one, not removed
        since) that ``present`` (the link watch) says is there, to ``lifetimes``' value
        (None: forever, and no longer held); one sendmsg per RENEW_CHUNK requests. Under
        the lock: a removal queued before this call has already run, and nothing removes
        an address while it runs. ``exact``: ask the kernel which are there instead (one
        dump per link), when some may have expired since the link watch last heard (a
        late renewal). Returns those the kernel refused, with the errno."""
        todo = [(i, a, lifetimes[(i, a)]) for i, a in self._held if (i, a) in lifetimes]
        if exact:
            there: set[tuple[int, IPInterface]] = set()
            for index in {i for i, _, _ in todo}:
                there |= {(index, a) for a in await self._addresses(index)}
            todo = [(i, a, life) for i, a, life in todo if (i, a) in there]
        else:
            todo = [(i, a, life) for i, a, life in todo if present(i, a)]
        if not todo:
            return []
        sock = self._raw_socket()
        loop = asyncio.get_running_loop()
        failed: list[tuple[int, IPInterface, int]] = []
        async with asyncio.timeout(RENEW_DEADLINE):  # the kernel acks each at once
            for start in range(0, len(todo), RENEW_CHUNK):
                chunk = dict(enumerate(todo[start : start + RENEW_CHUNK], self._seq + 1))
                self._seq += len(chunk)
                batch = b"".join(lifetime_request(n, *r) for n, r in chunk.items())
                await loop.sock_sendall(sock, batch)
                while chunk:
                    for seq, code in acks(await loop.sock_recv(sock, 65536)):
                        done = chunk.pop(seq, None)
                        if done is not None and code:
                            failed.append((done[0], done[1], code))
        for index, iface, life in todo:
            if life is None:
                self._held.discard((index, iface))
        return failed

    def _raw_socket(self) -> socket.socket:
        if self._raw is None:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            sock.setblocking(False)
            sock.bind((0, 0))
            self._raw = sock
        return self._raw

    @staticmethod
    async def _delete(ipr: AsyncIPRoute, index: int, ip: IPAddress, prefixlen: int | None) -> bool:
        """One RTM_DELADDR; ``prefixlen`` None: IPv4's first entry of ``ip``, any prefix."""
        spec: dict[str, Any] = {"address": str(ip), "prefixlen": prefixlen}
        if prefixlen is None:
            spec = {"local": str(ip), "family": socket.AF_INET}  # no IFA_ADDRESS
        try:
            await ipr.addr("del", index=index, **spec)
        except NetlinkError as e:
            if e.code in (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ENODEV):
                return False
            raise
        return True

    @staticmethod
    async def _prefixlen(ipr: AsyncIPRoute, index: int, ip: IPAddress) -> int | None:
        """The prefix length of IPv6 ``ip`` on link ``index`` (one RTM_GETADDR, no dump)."""
        msg = ifaddrmsg()
        msg["family"], msg["index"] = socket.AF_INET6, index
        msg["attrs"] = [("IFA_ADDRESS", str(ip))]
        try:
            replies = [m async for m in await ipr.nlm_request(msg, RTM_GETADDR, NLM_F_REQUEST)]
        except NetlinkError as e:
            if e.code in (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ENODEV):
                return None
            raise
        # A link that no longer exists makes the kernel look on every link: ours only.
        return next((int(m["prefixlen"]) for m in replies if m["index"] == index), None)

    @serialized
    async def create_macvlan(self, name: str, parent: int, mac: bytes) -> Link:
        """A macvlan on ``parent`` with the virtual MAC, left down (the BSD carp
        interface's Linux twin). An old one of that name (kill -9) is replaced."""
        ipr = await self._api()
        old = await ipr.link_lookup(ifname=name)
        if old:
            await ipr.link("del", index=old[0])
        await ipr.link(
            "add",
            ifname=name,
            kind="macvlan",
            link=parent,
            # Not private: a private macvlan takes every multicast frame whose source is
            # its own MAC for itself, so while two nodes are MASTER of a vhid (both with
            # the MAC up) neither carpdev hears the other's adverts, and the split brain
            # never heals. In bridge mode such frames reach the carpdev too.
            macvlan_mode="bridge",
            address=":".join(f"{b:02x}" for b in mac),
        )
        link = await self._link(name)
        assert link is not None
        return link

    @serialized
    async def ensure_dummy(self, name: str) -> Link:
        """A dummy device of that name, up (made if missing; an existing one is kept, with
        whatever addresses a BGP daemon's config expects on it)."""
        ipr = await self._api()
        if not await ipr.link_lookup(ifname=name):
            await ipr.link("add", ifname=name, kind="dummy")
        link = await self._link(name)
        assert link is not None
        await ipr.link("set", index=link.index, state="up")
        return link

    @serialized
    async def set_up(self, index: int, up: bool) -> None:
        ipr = await self._api()
        await ipr.link("set", index=index, state="up" if up else "down")

    @serialized
    async def set_mac(self, index: int, mac: str) -> None:
        ipr = await self._api()
        await ipr.link("set", index=index, address=mac.lower())

    @serialized
    async def flush(self, index: int) -> int:
        """Remove the interface's IPv4 addresses and every route through it (a DHCP
        lease's, on a [[follow]] interface going down); how many were removed."""
        ipr = await self._api()
        routes = [m async for m in await ipr.get_routes(family=2, oif=index)]
        routes = [r for r in routes if r.get("RTA_OIF") == index and r["type"] == 1]
        for r in routes:  # unicast, in any table
            with contextlib.suppress(NetlinkError):
                await ipr.route("del", **_route_key(r))
        addrs = [m async for m in await ipr.get_addr(family=2, index=index)]
        for a in addrs:
            with contextlib.suppress(NetlinkError):
                await ipr.addr(
                    "del", index=index, address=a.get("IFA_ADDRESS"), prefixlen=a["prefixlen"]
                )
        return len(routes) + len(addrs)

    @serialized
    async def has_default_route(self, gateway: IPAddress) -> bool:
        """Is there a default route through ``gateway`` (the main table)?"""
        ipr = await self._api()
        family = socket.AF_INET if gateway.version == 4 else socket.AF_INET6
        async for r in await ipr.get_routes(family=family):
            if r["dst_len"] == 0 and r.get("RTA_GATEWAY") == str(gateway):
                return True
        return False

    @serialized
    async def default_route(self, gateway: IPAddress, present: bool) -> None:
        """Make (replace) or remove the default route through ``gateway``."""
        ipr = await self._api()
        dst = "0.0.0.0/0" if gateway.version == 4 else "::/0"
        try:
            await ipr.route("replace" if present else "del", dst=dst, gateway=str(gateway))
        except NetlinkError as e:
            if present or e.code not in (errno.ESRCH, errno.ENOENT):
                raise

    @serialized
    async def delete_link(self, index: int) -> None:
        ipr = await self._api()
        try:
            await ipr.link("del", index=index)
        except NetlinkError as e:
            if e.code != errno.ENODEV:
                raise
