"""Link state and addresses from rtnetlink events (the RTMGRP_LINK and IFADDR multicast
groups), no polling.

A link is *up* (usable for CARP) when it is administratively up (``IFF_UP``) and
operational (``IFF_RUNNING``). The kernel sets ``IFF_RUNNING`` exactly when the RFC 2863
operstate is UP or UNKNOWN, so:

- a veth whose peer is down keeps ``IFF_UP`` but loses ``IFF_RUNNING`` and
  ``IFF_LOWER_UP`` (operstate DOWN when the peer is in another namespace,
  LOWERLAYERDOWN when it is in the same one): down;
- carrier alone (``IFF_LOWER_UP``) is not enough: right after an admin up the kernel
  reports it with operstate still DOWN (until its linkwatch work has run, which then
  sends a second RTM_NEWLINK with IFF_RUNNING), and DORMANT links (802.1X, unassociated
  wireless) have carrier but are not usable: down;
- operstate UNKNOWN (loopback, bridges, tun and other drivers that never report an
  operstate) keeps ``IFF_RUNNING``: up, where "operstate == UP" would wrongly say down.

Usage::

    async with LinkWatcher() as watcher:      # or: await watcher.start() ... close()
        up = watcher.is_up("eth0")            # True / False / None (no such interface)
        async for event in watcher.events():  # LinkEvent(name, index, up, exists)
            ...

``start()`` subscribes to the group *before* dumping the links, so nothing falls between
the initial state (``is_up``) and the event stream: ``is_up`` answers from the state the
stream has reached, and ``events()`` yields every later change. An event is yielded only
when the (exists, up) pair of an interface changes: repeated RTM_NEWLINK with the same
state are dropped; a new interface yields its state; RTM_DELLINK yields ``up=False,
exists=False`` (also when it was already down); a rename yields the old name as deleted
and the new one as new. Bridge-port notifications (family AF_BRIDGE, among them an
RTM_DELLINK when a port merely leaves its bridge) are ignored.

If the socket's receive buffer overflows (ENOBUFS: events were lost; pyroute2's socket
is unusable from then on), the watcher opens a new socket (with at least the default
buffer), dumps the links again and yields the differences, so the stream stays right.

``events()`` is meant for one consumer at a time, which should keep reading (pyroute2
queues what arrives meanwhile without bound); it ends when ``close()`` is called.
Everything happens in the current network namespace (the socket is opened there).

The same subscription carries the addresses: ``AddressEvent(index, address, present)``
whenever an address is added to or removed from an interface (an ``ip addr flush``, a
network manager, an expired lifetime), and ``has_address`` answers from the state the
stream has reached. A lifetime renewal (another RTM_NEWADDR for the same address) is
not an event. After an overflow, the addresses are dumped again too.

Inside the daemon that one consumer is a ``LinkService``: one subscription and one dump
for everyone (the carpdevs, conntrackd's sync link, ifstated's interfaces, the keeper of
a MASTER's addresses), which hands each event to those watching it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from socket import AF_UNSPEC
from typing import Any

from carpd.linux.rtnl import (
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_LINK,
    AsyncIPRoute,
)

log = logging.getLogger("carpd")

IFF_UP = 0x1
IFF_RUNNING = 0x40
DEFAULT_RCVBUF = 1 << 20  # what pyroute2 asks for; the kernel caps it at net.core.rmem_max


@dataclass(frozen=True, slots=True)
class LinkEvent:
    name: str
    index: int
    up: bool
    exists: bool = True


IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclass(frozen=True, slots=True)
class AddressEvent:
    index: int  # the interface's
    address: IPInterface
    present: bool  # added (True) or removed


Address = tuple[int, IPInterface]  # (interface index, address/prefix)


# Each ifaddrmsg's (index, address, prefix) as parsed before: a renewal of an address's
# lifetime comes back as an RTM_NEWADDR for it every period (16 VIPs: 16 a second), and
# ipaddress parses one in 8 us (IPv6: twice that) before the set look-up drops it. Bounded:
# a host's addresses come and go.
_parsed: dict[tuple[int, str, int], Address] = {}
_PARSED_MAX = 4096


def address_of(msg: Any) -> Address | None:
    """An ifaddrmsg's (index, address/prefix); None for a family carpd does not hold."""
    # IPv4's own address is IFA_LOCAL (IFA_ADDRESS is the peer on a point-to-point link).
    addr = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
    if not addr:
        return None
    key = (msg["index"], addr, msg["prefixlen"])
    found = _parsed.get(key)
    if found is None:
        try:
            found = (key[0], ipaddress.ip_interface(f"{addr}/{key[2]}"))
        except ValueError:
            return None
        if len(_parsed) >= _PARSED_MAX:
            _parsed.clear()
        _parsed[key] = found
    return found


def usable(flags: int) -> bool:
    """The "up" of this module, from an ifinfomsg's flags."""
    return bool(flags & IFF_UP) and bool(flags & IFF_RUNNING)


async def _open(rcvbuf: int) -> AsyncIPRoute:
    ipr = AsyncIPRoute(rcvbuf=rcvbuf)
    try:
        # Bind before any request: a netlink socket autobinds on its first send.
        await ipr.bind(groups=RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)
    except BaseException:
        ipr.close()
        raise
    return ipr


async def _dump(ipr: AsyncIPRoute) -> dict[int, tuple[str, bool]]:
    return {
        msg["index"]: (msg.get("ifname"), usable(msg["flags"]))
        async for msg in await ipr.link("dump")
    }


async def _dump_addresses(ipr: AsyncIPRoute) -> set[Address]:
    return {a async for msg in await ipr.get_addr() if (a := address_of(msg)) is not None}


async def link_is_up(name: str) -> bool | None:
    """One query, no watcher: is the interface up (see the module)? None if there is none."""
    ipr = AsyncIPRoute()
    try:
        await ipr.setup_endpoint()
        for _, (ifname, up) in (await _dump(ipr)).items():
            if ifname == name:
                return up
        return None
    finally:
        ipr.close()


class LinkWatcher:
    """Link up/down events of the current network namespace (see the module docstring)."""

    def __init__(self, rcvbuf: int = DEFAULT_RCVBUF) -> None:
        self._rcvbuf = rcvbuf
        self._ipr: AsyncIPRoute | None = None
        self._closed = False
        self._links: dict[int, tuple[str, bool]] = {}
        self._addresses: set[Address] = set()
        self.overflows = 0  # how many times events were lost and the state dumped again

    async def start(self) -> None:
        if self._ipr is not None or self._closed:
            return
        ipr = await _open(self._rcvbuf)
        try:
            self._links = await _dump(ipr)
            self._addresses = await _dump_addresses(ipr)
        except BaseException:
            ipr.close()
            raise
        self._ipr = ipr

    async def close(self) -> None:
        self._closed = True
        if self._ipr is not None:
            # A pending get() then fails with ECONNRESET, which events() takes as the end.
            self._ipr.close()
            self._ipr = None

    async def __aenter__(self) -> LinkWatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def is_up(self, name: str) -> bool | None:
        """The state the event stream has reached; None if there is no such interface."""
        for ifname, up in self._links.values():
            if ifname == name:
                return up
        return None

    def index(self, name: str) -> int | None:
        for index, (ifname, _) in self._links.items():
            if ifname == name:
                return index
        return None

    def has_address(self, index: int, address: IPInterface) -> bool:
        return (index, address) in self._addresses

    async def events(self) -> AsyncIterator[LinkEvent | AddressEvent]:
        """Every change of an interface's (exists, up), and every address added or
        removed, from start() on; ends on close()."""
        while not self._closed:
            ipr = self._ipr
            if ipr is None:
                raise RuntimeError("LinkWatcher.events() before start()")
            try:
                # One get() yields the messages of one datagram, then stops.
                async with contextlib.aclosing(ipr.get()) as msgs:
                    async for msg in msgs:
                        for event in self._apply(msg):
                            yield event
            except Exception as e:
                if self._closed:
                    return
                if not (isinstance(e, OSError) and e.errno == errno.ENOBUFS):
                    raise
                # pyroute2's socket is unusable after an error: start over with a new one.
                self.overflows += 1
                # A smaller buffer than the default (a test's) is not asked for again.
                self._rcvbuf = max(self._rcvbuf, DEFAULT_RCVBUF)
                log.warning("link events lost (receive buffer overflow): reading links again")
                for event in await self._resync():
                    yield event

    def _apply(self, msg: Any) -> list[LinkEvent | AddressEvent]:
        kind = msg["header"]["type"]
        if kind in (RTM_NEWADDR, RTM_DELADDR):
            found = address_of(msg)
            return [] if found is None else self._address(found, kind == RTM_NEWADDR)
        if msg.get("family") != AF_UNSPEC or kind not in (RTM_NEWLINK, RTM_DELLINK):
            return []
        index = msg["index"]
        if kind == RTM_DELLINK:
            return self._forget(index)
        return self._update(index, msg.get("ifname"), usable(msg["flags"]))

    def _address(self, found: Address, present: bool) -> list[LinkEvent | AddressEvent]:
        if (found in self._addresses) == present:
            return []  # a lifetime renewal, or a removal of what was never seen
        if present:
            self._addresses.add(found)
        else:
            self._addresses.discard(found)
        return [AddressEvent(found[0], found[1], present)]

    def _update(self, index: int, name: str, up: bool) -> list[LinkEvent | AddressEvent]:
        old = self._links.get(index)
        if old == (name, up):
            return []
        # A rename: the old name is gone, the new one is new.
        events = self._forget(index) if old is not None and old[0] != name else []
        self._links[index] = (name, up)
        events.append(LinkEvent(name, index, up))
        return events

    def _forget(self, index: int) -> list[LinkEvent | AddressEvent]:
        old = self._links.pop(index, None)
        return [] if old is None else [LinkEvent(old[0], index, False, exists=False)]

    async def _resync(self) -> list[LinkEvent | AddressEvent]:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None
        ipr = await _open(self._rcvbuf)
        try:
            now = await _dump(ipr)
            addresses = await _dump_addresses(ipr)
        except BaseException:
            ipr.close()
            raise
        if self._closed:
            ipr.close()
            return []
        self._ipr = ipr
        events: list[LinkEvent | AddressEvent] = []
        for index in [i for i in self._links if i not in now]:
            events += self._forget(index)
        for index, (name, up) in now.items():
            events += self._update(index, name, up)
        for gone in self._addresses - addresses:
            events += self._address(gone, False)
        for new in addresses - self._addresses:
            events += self._address(new, True)
        return events


class LinkService:
    """One watcher's events, handed to every subscriber of the interface they are about.

    ``watch(names, callback)`` (``None``: every interface) calls ``callback`` in the
    order the events arrive, from the one task reading them: a callback must not block
    (one that awaits queues the event for a task of its own). Subscribe, then read
    ``is_up``: with no await between them, nothing falls in between."""

    def __init__(self, watcher: LinkWatcher) -> None:
        self._watcher = watcher
        self._subs: list[tuple[frozenset[str] | None, Callable[[LinkEvent], None]]] = []
        self._address_subs: list[Callable[[AddressEvent], None]] = []
        self._started: asyncio.Future[None] | None = None
        self._pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe and dump, once: a second caller waits for the first one's."""
        if self._started is None:
            self._started = asyncio.ensure_future(self._start())
        await asyncio.shield(self._started)

    async def _start(self) -> None:
        await self._watcher.start()
        self._pump = asyncio.get_running_loop().create_task(self._run())
        self._pump.add_done_callback(_failed)

    def watch(
        self, names: Collection[str] | None, callback: Callable[[LinkEvent], None]
    ) -> Callable[[], None]:
        """Hear the changes of ``names``' links; the function returned unsubscribes."""
        sub = (None if names is None else frozenset(names), callback)
        self._subs.append(sub)
        return lambda: self._subs.remove(sub) if sub in self._subs else None

    def watch_addresses(self, callback: Callable[[AddressEvent], None]) -> Callable[[], None]:
        """Hear every address added or removed; the function returned unsubscribes."""
        self._address_subs.append(callback)
        return lambda: (
            self._address_subs.remove(callback) if callback in self._address_subs else None
        )

    def is_up(self, name: str) -> bool | None:
        return self._watcher.is_up(name)

    def has_address(self, index: int, address: IPInterface) -> bool:
        return self._watcher.has_address(index, address)

    async def _run(self) -> None:
        async for event in self._watcher.events():
            if isinstance(event, AddressEvent):
                subs: list[Callable[[Any], None]] = list(self._address_subs)
            else:
                subs = [cb for names, cb in self._subs if names is None or event.name in names]
            for callback in subs:
                try:
                    callback(event)
                except Exception:  # one subscriber's bug must not deafen the others
                    log.exception("link event %s", event)

    async def close(self) -> None:
        if self._started is not None and not self._started.done():
            self._started.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._started
        await self._watcher.close()  # events() ends, and so does the task reading them
        if self._pump is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump


def _failed(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("link watch stopped: %s", task.exception())
