"""Fake ports (netlink, sockets, link watcher) for the real runtime (carpd.daemon.runtime.runtime),
for unit tests of its ordering and timing on the event loop: ``Daemon(config,
FakePorts())``, then its public start(), settle() and stop(). No root, no namespaces, no
packets leave the process."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from carpd.config import Config, load_config
from carpd.core.model import State
from carpd.daemon.runtime.runtime import Daemon
from carpd.daemon.runtime.setup import Ports
from carpd.linux.linkwatch import AddressEvent, LinkEvent
from carpd.linux.netlink import IPInterface, Link

ETH0 = Link(name="eth0", index=2, mac=bytes.fromhex("020000000001"), up=True)
DUMMY = Link(name="carpd0", index=9, mac=bytes(6), up=True)
OWN = [ipaddress.ip_interface("192.0.2.1/24"), ipaddress.ip_interface("fe80::1/64")]


@dataclass
class FakeNetlink:
    """One carpdev (eth0) with its own addresses; address changes take ``delay`` s."""

    delay: float = 0.0
    log: list[tuple[float, str, str]] = field(default_factory=list)  # (time, verb, address)
    addrs: list[IPInterface] = field(default_factory=lambda: list(OWN))
    # Every change with the device it was on (ETH0.index, or DUMMY.index).
    changes: list[tuple[str, int, str]] = field(default_factory=list)
    # Given by FakePorts: each change is heard as the kernel's RTM_NEWADDR/RTM_DELADDR.
    watcher: FakeLinkWatcher | None = None
    refuse: str | None = None  # every add fails with this, as a vanished device's would
    # Lifetimes (runtime/lifetimes.py): each address's last lifetime given (None: forever),
    # the addresses held (added with one, not removed since), and each renewal's batch.
    lifetimes: dict[tuple[int, str], int | None] = field(default_factory=dict)
    held: set[tuple[int, IPInterface]] = field(default_factory=set)
    renewals: list[tuple[float, list[tuple[int, str, int | None]]]] = field(default_factory=list)

    async def link(self, name: str) -> Link | None:
        return ETH0 if name == ETH0.name else None

    async def addresses(self, index: int) -> list[IPInterface]:
        return list(self.addrs)

    async def _change(self, verb: str, index: int, iface: IPInterface) -> bool:
        await asyncio.sleep(self.delay)
        if verb == "add" and self.refuse is not None:
            raise OSError(19, self.refuse)
        if index == ETH0.index:
            self.log.append((asyncio.get_running_loop().time(), verb, str(iface)))
        self.changes.append((verb, index, str(iface)))
        if self.watcher is not None and self.watcher.has_address(index, iface) != (verb == "add"):
            self.watcher.set_address(iface, verb == "add", index)
        return True

    async def add_address(
        self, index: int, iface: IPInterface, lifetime: int | None = None
    ) -> bool:
        done = await self._change("add", index, iface)
        self.lifetimes[(index, str(iface))] = lifetime
        if lifetime is not None:
            self.held.add((index, iface))
        return done

    async def remove_address(
        self, index: int, iface: IPInterface, *, any_prefix: bool = False
    ) -> bool:
        self.held.discard((index, iface))
        return await self._change("remove", index, iface)

    def holding(self) -> bool:
        return bool(self.held)

    def hold(self, index: int, iface: IPInterface) -> None:
        self.held.add((index, iface))

    async def renew(
        self,
        lifetimes: Any,
        present: Any,
        *,
        exact: bool = False,
    ) -> list[tuple[int, IPInterface, int]]:
        """Netlink.renew's contract: the held addresses still wanted and present."""
        batch = [
            (i, a, lifetimes[(i, a)])
            for i, a in sorted(self.held, key=str)
            if (i, a) in lifetimes and present(i, a)
        ]
        for i, a, life in batch:
            self.lifetimes[(i, str(a))] = life
            if life is None:
                self.held.discard((i, a))
        if batch:
            now = asyncio.get_running_loop().time()
            self.renewals.append((now, [(i, str(a), life) for i, a, life in batch]))
        return []

    async def ensure_dummy(self, name: str) -> Link:
        return dataclasses.replace(DUMMY, name=name)

    async def close(self) -> None:
        pass


class FakeSocket:
    """Records what is sent, and when (loop time); never readable."""

    sent: ClassVar[list[tuple[float, str, bytes]]] = []
    failing: ClassVar[set[str]] = set()  # class names whose sends raise, as a dead NIC's
    opened: ClassVar[list[FakeSocket]] = []  # every one, closed or not

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._r, self._w = os.pipe()
        self.closed = False
        FakeSocket.opened.append(self)

    def fileno(self) -> int:
        return self._r

    def send(self, data: bytes, *args: Any) -> None:
        if type(self).__name__ in FakeSocket.failing:
            raise OSError(101, "Network is unreachable")
        FakeSocket.sent.append((asyncio.get_running_loop().time(), type(self).__name__, data))

    send_arp = send_na = send

    def set_filter(self, program: bytes) -> None:
        pass

    def queue_drops(self) -> int:
        return 0

    def forget(self) -> None:  # the memo of refused datagrams: never filled here
        pass

    def close(self) -> None:
        for fd in (self._r, self._w):
            os.close(fd)
        self.closed = True


class FakeV4(FakeSocket):
    pass


class FakeV6(FakeSocket):
    pass


class FakeAnnouncer(FakeSocket):
    pass


class FakeLinkWatcher:
    """The links as a test sets them (eth0 up at first); the host's are never read."""

    def __init__(self) -> None:
        self.links = {ETH0.name: ETH0.up}
        self.addresses: set[tuple[int, IPInterface]] = set()
        self._events: asyncio.Queue[LinkEvent | AddressEvent | None] = asyncio.Queue()
        self.starts = 0  # subscriptions opened: one for the whole daemon

    def set(self, name: str, up: bool) -> None:
        """A link goes up or down: the daemon hears it as an rtnetlink event."""
        self.links[name] = up
        self._events.put_nowait(LinkEvent(name, ETH0.index, up))

    def set_address(self, iface: IPInterface, present: bool, index: int = ETH0.index) -> None:
        """An address is added or removed (by carpd or another program): heard as an
        RTM_NEWADDR or RTM_DELADDR."""
        (self.addresses.add if present else self.addresses.discard)((index, iface))
        self._events.put_nowait(AddressEvent(index, iface, present))

    def has_address(self, index: int, iface: IPInterface) -> bool:
        return (index, iface) in self.addresses

    async def heard(self) -> None:
        """Until the daemon's link service has handed on every event set so far."""
        await self._events.join()

    async def start(self) -> None:
        self.starts += 1

    def is_up(self, name: str) -> bool | None:
        return self.links.get(name)

    async def events(self) -> AsyncIterator[LinkEvent | AddressEvent]:
        while (event := await self._events.get()) is not None:
            yield event
            self._events.task_done()

    async def close(self) -> None:
        self._events.put_nowait(None)


@dataclass(frozen=True)
class FakePorts(Ports):
    """The daemon's ports with no kernel behind them: a FakeNetlink unless given one;
    ``watcher`` is the link watcher the daemon gets."""

    netlink: Any = field(default_factory=FakeNetlink)
    socket4: Any = FakeV4
    socket6: Any = FakeV6
    announcer: Any = FakeAnnouncer
    watcher: FakeLinkWatcher = field(default_factory=FakeLinkWatcher)

    def __post_init__(self) -> None:
        object.__setattr__(self, "link_watcher", lambda: self.watcher)
        if isinstance(self.netlink, FakeNetlink) and self.netlink.watcher is None:
            self.netlink.watcher = self.watcher


def install() -> list[tuple[float, str, bytes]]:
    """A fresh record of the fake sockets' sends (and none failing); the list."""
    FakeSocket.sent, FakeSocket.failing, FakeSocket.opened = [], set(), []
    return FakeSocket.sent


def config(tmp_path: Any, table: str) -> Config:
    """One vhid on eth0; no service checks, so no start-up demotion to wait out."""
    path = tmp_path / "carpd.toml"
    path.write_text(
        f'[global]\nstate_dir = "{tmp_path}/state"\nservice_checks = "{tmp_path}/checks"\n'
        "startup_demotion_factor = 0\nservice_interval = 0\n"
        f'\n[[carp]]\ncarpdev = "eth0"\n{table}'
    )
    return load_config(path)


def takeover(daemon: Daemon, wait: float, *, settle: bool = True) -> float:
    """Start (BACKUP, its host steps done), force carp1 to MASTER, then run ``wait``
    seconds and, unless told not to, until every host step is done. Returns the loop
    time of the takeover."""

    async def main() -> float:
        await daemon.start()
        await daemon.settle()
        t0 = asyncio.get_running_loop().time()
        daemon.force_state("carp1", State.MASTER)
        await asyncio.sleep(wait)
        if settle:
            await daemon.settle()
        return t0

    return asyncio.run(main())


def added_at(netlink: FakeNetlink) -> float:
    """When netlink added the first address."""
    return next(t for t, verb, _ in netlink.log if verb == "add")
