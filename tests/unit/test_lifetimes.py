"""Addresses with a lifetime carpd renews (runtime/lifetimes.py, Netlink.renew): the
lifetime follows the master-down interval; the daemon adds a MASTER's addresses with it
and renews them while it holds them (a pre_release hook too), never after a release; and
carpd's real Netlink renews in one batch, under its lock, only what it holds and sees."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import itertools
import socket
import struct
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fakes import ETH0, FakeNetlink, FakePorts, config, install

from carpd.config import ConfigError, load_config
from carpd.core.model import State
from carpd.daemon.runtime.lifetimes import (
    BUDGET,
    LATE,
    Lifetimes,
    auto_period,
    lifetime_of,
    period_of,
)
from carpd.daemon.runtime.runtime import Daemon
from carpd.linux.netlink import (
    FOREVER,
    IFA_CACHEINFO,
    IFA_F_NODAD,
    NLM_F_ACK,
    NLM_F_REPLACE,
    RTM_NEWADDR_TYPE,
    Netlink,
)

VIP = ipaddress.ip_interface("192.0.2.100/24")
VIP6 = ipaddress.ip_interface("2001:db8::100/64")
TABLE = 'vhid = 1\npass = "x"\naddresses = ["192.0.2.100/24", "2001:db8::100/64"]\n'
NLM_F_CREATE = 0x400
# A renewal is due every (patched) 0.05 s: one late by this much is not coming.
RENEWAL_WAIT = 5.0


def carp(tmp_path: Path, table: str) -> Any:
    auth = "" if "vrrp3" in table else 'pass = "x"\n'
    return config(tmp_path, f'vhid = 1\n{auth}addresses = ["192.0.2.100/24"]\n{table}')


def test_the_lifetime_is_the_master_down_interval_rounded_up_plus_the_margin(
    tmp_path: Path,
) -> None:
    cases = [
        ("", 3 + 1),  # 3 x 1 s
        ("advskew = 100\n", 4 + 1),  # 3.39 s
        ("advbase = 2\ndeadratio = 4\n", 8 + 1),
        ('protocol = "vrrp3"\nadvbase = 0.01\n', 1 + 1),  # 30 ms + skew: the kernel's second
        ('protocol = "vrrp3"\nadvbase = 1\npriority = 100\n', 4 + 1),  # 3.61 s
    ]
    for table, expected in cases:
        cfg = carp(tmp_path, table).carp[0]
        assert lifetime_of(cfg, "auto") == expected, table
        assert lifetime_of(cfg, 30) == 30
        assert lifetime_of(cfg, 0) is None  # forever
    # "auto": renewed every second, or three times per lifetime if that is more often,
    # so a live MASTER's address always has at least ceil(master-down) seconds left.
    assert period_of(4, 3.0) == 1.0 and period_of(2, 0.04) == pytest.approx(2 / 3)
    assert period_of(5, 3.39) == 1.0
    # An explicit lifetime: three times per lifetime, leaving ceil(master-down).
    assert period_of(30, 3.0) == 10.0 and period_of(6, 3.39) == 2.0
    assert period_of(3, 3.39) == 1.0  # shorter than the master-down: 3 per lifetime


@pytest.mark.parametrize("value", ["1", "-3", "86401", "2.5", "true", '"never"'])
def test_an_address_lifetime_out_of_range_is_refused_with_file_key_value_and_range(
    tmp_path: Path, value: str
) -> None:
    path = tmp_path / "carpd.toml"
    path.write_text(
        f'[global]\naddress_lifetime = {value}\n[[carp]]\nvhid = 1\ncarpdev = "eth0"\n'
        'pass = "x"\naddresses = ["192.0.2.100"]\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: global.address_lifetime = {value}: allowed range is 2-86400 (whole "
        'seconds), 0 for none, or "auto"'
    )


# -- the daemon on fake ports ---------------------------------------------------------


@dataclass
class Renewals(FakeNetlink):
    """Says when a renewal has been sent."""

    def __post_init__(self) -> None:
        self.renewed = asyncio.Condition()

    async def renew(self, lifetimes: Any, present: Any, *, exact: bool = False) -> Any:
        failed = await super().renew(lifetimes, present)
        async with self.renewed:
            self.renewed.notify_all()
        return failed

    async def next_renewal(self) -> list[tuple[int, str, int | None]]:
        """The batch of the next renewal that renews something."""
        seen = len(self.renewals)
        async with asyncio.timeout(RENEWAL_WAIT), self.renewed:
            await self.renewed.wait_for(lambda: len(self.renewals) > seen)
        return self.renewals[-1][1]


def make(tmp_path: Path, table: str = TABLE, **global_: str) -> tuple[Daemon, Renewals]:
    install()
    netlink = Renewals()
    cfg = config(tmp_path, table)
    if global_:
        text = (tmp_path / "carpd.toml").read_text()
        extra = "".join(f"{k} = {v}\n" for k, v in global_.items())
        (tmp_path / "carpd.toml").write_text(text.replace("[global]\n", f"[global]\n{extra}"))
        cfg = load_config(tmp_path / "carpd.toml")
    return Daemon(cfg, FakePorts(netlink)), netlink


async def master(daemon: Daemon, netlink: FakeNetlink) -> None:
    await daemon.start()
    await daemon.settle()
    daemon.force_state("carp1", State.MASTER)
    await daemon.settle()
    assert netlink.watcher is not None
    await netlink.watcher.heard()


BOTH = [(ETH0.index, "192.0.2.100/24", 4), (ETH0.index, "2001:db8::100/64", 4)]


def test_a_masters_addresses_are_added_with_their_lifetime_and_renewed_each_period(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Lifetimes, "period", lambda self: 0.05)
    daemon, netlink = make(tmp_path)

    async def main() -> list[float]:
        await master(daemon, netlink)
        assert netlink.lifetimes == {
            (ETH0.index, "192.0.2.100/24"): 4,
            (ETH0.index, "2001:db8::100/64"): 4,
        }
        for _ in range(3):
            assert sorted(await netlink.next_renewal()) == BOTH
        await daemon.stop()
        return [t for t, _ in netlink.renewals]

    times = asyncio.run(main())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g >= 0.04 for g in gaps), gaps  # one batch per period, not more


def test_a_release_stops_the_renewals_at_once(tmp_path: Path) -> None:
    daemon, netlink = make(tmp_path)

    async def main() -> None:
        await master(daemon, netlink)
        assert netlink.holding()
        daemon.force_state("carp1", State.BACKUP)
        await daemon.settle()
        # The removal took them out of what is renewed: a renewal now renews nothing.
        assert not netlink.holding()
        before = len(netlink.renewals)
        await daemon.keeper.lifetimes.renew()
        assert len(netlink.renewals) == before
        await daemon.stop()

    asyncio.run(main())


HOOK = """#!{python}
import sys
open({started!r}, "w").close()
open({fifo!r}).read()  # until the test says
"""


def test_the_addresses_are_renewed_while_a_pre_release_hook_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The role on the host is BACKUP while the hook runs, the addresses still up: they
    must not expire before the removal step."""
    import os

    monkeypatch.setattr(Lifetimes, "period", lambda self: 0.05)
    fifo, started = tmp_path / "go", tmp_path / "started"
    os.mkfifo(fifo)
    hook = tmp_path / "pre-release.sh"
    hook.write_text(HOOK.format(python=sys.executable, fifo=str(fifo), started=str(started)))
    hook.chmod(0o755)
    daemon, netlink = make(tmp_path, TABLE + f'pre_release = "{hook}"\n')

    async def main() -> None:
        await master(daemon, netlink)
        netlink.log.clear()
        daemon.force_state("carp1", State.BACKUP)
        daemon.host.flush()
        assert daemon.host.roles.state("carp1") is State.BACKUP
        # Two renewals after the hook started (so one wholly while it ran).
        batch: list[tuple[int, str, int | None]] = []
        while not started.exists():
            batch = await netlink.next_renewal()
        batch = await netlink.next_renewal()
        assert sorted(batch) == BOTH
        assert not any(verb == "remove" for _, verb, _ in netlink.log)
        await asyncio.to_thread(fifo.write_text, "go")  # the hook ends: removal
        await daemon.settle()
        assert [verb for _, verb, _ in netlink.log][-2:] == ["remove", "remove"]
        assert not netlink.holding()
        await daemon.stop()

    asyncio.run(main())


def test_with_address_lifetime_0_the_addresses_are_forever_and_never_renewed(
    tmp_path: Path,
) -> None:
    daemon, netlink = make(tmp_path, address_lifetime="0")

    async def main() -> None:
        await master(daemon, netlink)
        assert set(netlink.lifetimes.values()) == {None}
        assert not netlink.holding()
        await daemon.stop()

    asyncio.run(main())


def test_an_expired_address_is_put_back_with_its_lifetime(tmp_path: Path) -> None:
    """A MASTER whose loop stalled past the lifetime: the kernel removed the address
    (heard as an RTM_DELADDR); the keeper puts it back, with a lifetime again."""
    daemon, netlink = make(tmp_path)

    async def main() -> None:
        await master(daemon, netlink)
        netlink.lifetimes.clear()
        assert netlink.watcher is not None
        netlink.watcher.set_address(VIP, False)
        await netlink.watcher.heard()
        await daemon.settle()
        await daemon.stop()

    asyncio.run(main())
    assert netlink.lifetimes[(ETH0.index, "192.0.2.100/24")] == 4
    assert daemon.keeper.report().vhids["carp1"].restored == 1


# -- carpd's Netlink, with a stand-in for the kernel ------------------------------------


class Msg(dict[str, Any]):
    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key, default)


class FakeIPRoute:
    """pyroute2's side: address requests, recorded; ``gate`` holds a removal."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.there: set[str] = set()
        self.gate: asyncio.Event | None = None

    async def addr(self, cmd: str, **kw: Any) -> None:
        from carpd.linux.rtnl import NetlinkError

        self.requests.append((cmd, kw))
        if cmd == "del" and self.gate is not None:
            await self.gate.wait()
        address = str(kw.get("address", kw.get("local")))
        if cmd == "del" and address not in self.there:
            raise NetlinkError(errno.EADDRNOTAVAIL)
        if cmd == "add" and address in self.there:
            raise NetlinkError(errno.EEXIST)
        (self.there.discard if cmd == "del" else self.there.add)(address)

    async def get_addr(self, index: int) -> AsyncIterator[Msg]:
        async def dump() -> AsyncIterator[Msg]:
            for a in sorted(self.there):
                yield Msg(IFA_ADDRESS=a, prefixlen=24 if "." in a else 64)

        return dump()

    def close(self) -> None:
        pass


def parse(data: bytes) -> list[dict[str, Any]]:
    """The RTM_NEWADDR requests of one datagram."""
    out, at = [], 0
    while at < len(data):
        size, kind, flags, seq, _ = struct.unpack_from("=IHHII", data, at)
        fam, plen, ifa_flags, _, index = struct.unpack_from("=BBBBi", data, at + 16)
        attrs, a = {}, at + 24
        while a < at + size:
            alen, atype = struct.unpack_from("=HH", data, a)
            attrs[atype] = data[a + 4 : a + alen]
            a += (alen + 3) & ~3
        life = struct.unpack("=IIII", attrs[IFA_CACHEINFO])[:2]
        out.append(dict(kind=kind, flags=flags, seq=seq, family=fam, prefixlen=plen,
                        ifa_flags=ifa_flags, index=index, life=life,
                        address=ipaddress.ip_address(attrs[1])))  # fmt: skip
        at += size
    return out


class Kernel:
    """The raw socket's far end: answers each request with an ack (``refuse``: an error)."""

    def __init__(self, netlink: Netlink) -> None:
        ours, self.end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        ours.setblocking(False)
        self.end.setblocking(False)
        netlink._raw = ours
        self.batches: list[list[dict[str, Any]]] = []
        self.refuse: dict[str, int] = {}

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = parse(await loop.sock_recv(self.end, 1 << 16))
            self.batches.append(batch)
            reply = b""
            for r in batch:
                code = self.refuse.get(str(r["address"]), 0)
                reply += struct.pack("=IHHIIi", 36, 2, 0, r["seq"], 0, -code) + bytes(16)
            await loop.sock_sendall(self.end, reply)


def netlink_with_kernel() -> tuple[Netlink, FakeIPRoute, Kernel]:
    nl = Netlink()
    ipr = FakeIPRoute()
    nl._ipr = ipr
    return nl, ipr, Kernel(nl)


def test_netlink_adds_with_the_lifetime_and_gives_one_already_there_the_lifetime() -> None:
    async def main() -> None:
        nl, ipr, _ = netlink_with_kernel()
        assert await nl.add_address(2, VIP, 4)
        assert ipr.requests[-1] == (
            "add",
            dict(index=2, flags=0, address="192.0.2.100", prefixlen=24,
                 valid_lft=4, preferred_lft=4),
        )  # fmt: skip
        # Left by a carpd killed before: EEXIST, then replaced with the lifetime.
        assert not await nl.add_address(2, VIP, 4)
        assert [cmd for cmd, _ in ipr.requests[-2:]] == ["add", "replace"]
        assert ipr.requests[-1][1]["valid_lft"] == 4
        assert nl.holding()
        await nl.add_address(2, VIP6)  # no lifetime: forever, as before, not held
        assert "valid_lft" not in ipr.requests[-1][1]

    asyncio.run(main())


def test_netlink_renews_what_it_holds_in_one_batch_of_replace_requests() -> None:
    async def main() -> None:
        nl, _, kernel = netlink_with_kernel()
        server = asyncio.create_task(kernel.serve())
        await nl.add_address(2, VIP, 4)
        await nl.add_address(2, VIP6, 4)
        failed = await nl.renew({(2, VIP): 4, (2, VIP6): 5}, lambda i, a: True)
        assert failed == []
        (batch,) = kernel.batches  # one sendmsg
        assert {str(r["address"]): r["life"] for r in batch} == {
            "192.0.2.100": (4, 4),  # preferred = valid: never deprecated
            "2001:db8::100": (5, 5),
        }
        for r in batch:
            assert r["kind"] == RTM_NEWADDR_TYPE and r["index"] == 2
            assert r["flags"] & (NLM_F_REPLACE | NLM_F_ACK) == NLM_F_REPLACE | NLM_F_ACK
            assert not r["flags"] & NLM_F_CREATE
        v6 = next(r for r in batch if r["family"] == socket.AF_INET6)
        assert (v6["prefixlen"], v6["ifa_flags"]) == (64, IFA_F_NODAD)
        # Refused: named with its errno, the others renewed all the same.
        kernel.refuse["2001:db8::100"] = errno.ENODEV
        failed = await nl.renew({(2, VIP): 4, (2, VIP6): 4}, lambda i, a: True)
        assert failed == [(2, VIP6, errno.ENODEV)]
        # None: forever from now on, and no longer renewed.
        await nl.renew({(2, VIP): None, (2, VIP6): 4}, lambda i, a: True)
        assert kernel.batches[-1][0]["life"] == (FOREVER, FOREVER) or any(
            r["life"] == (FOREVER, FOREVER) for r in kernel.batches[-1]
        )
        await nl.renew({(2, VIP): 4, (2, VIP6): 4}, lambda i, a: True)
        assert [str(r["address"]) for r in kernel.batches[-1]] == ["2001:db8::100"]
        server.cancel()

    asyncio.run(main())


def test_netlink_never_renews_what_a_removal_queued_before_it_took_away() -> None:
    """The removal holds the lock (its request in flight) when the renewal is called:
    the renewal runs after it, and finds the address no longer held."""

    async def main() -> None:
        nl, ipr, kernel = netlink_with_kernel()
        server = asyncio.create_task(kernel.serve())
        await nl.add_address(2, VIP, 4)
        await nl.add_address(2, VIP6, 4)
        ipr.gate = asyncio.Event()
        removal = asyncio.create_task(nl.remove_address(2, VIP, any_prefix=True))
        await asyncio.sleep(0)  # the removal has the lock, its request is in flight
        renewal = asyncio.create_task(nl.renew({(2, VIP): 4, (2, VIP6): 4}, lambda i, a: True))
        await asyncio.sleep(0)
        ipr.gate.set()
        await removal
        await renewal
        assert [str(r["address"]) for b in kernel.batches for r in b] == ["2001:db8::100"]
        server.cancel()

    asyncio.run(main())


def test_netlink_renews_only_what_the_link_watch_sees_or_late_what_the_kernel_has() -> None:
    """Another program removed the IPv4 address: a replace would re-create it (the kernel
    ignores the missing NLM_F_CREATE), behind the keeper's back."""

    async def main() -> None:
        nl, ipr, kernel = netlink_with_kernel()
        server = asyncio.create_task(kernel.serve())
        await nl.add_address(2, VIP, 4)
        await nl.add_address(2, VIP6, 4)
        ipr.there.discard("192.0.2.100")  # gone, the link watch knows
        await nl.renew({(2, VIP): 4, (2, VIP6): 4}, lambda i, a: a == VIP6)
        assert [str(r["address"]) for r in kernel.batches[-1]] == ["2001:db8::100"]
        # Late (expired, not heard yet): the kernel's own dump decides.
        await nl.renew({(2, VIP): 4, (2, VIP6): 4}, lambda i, a: True, exact=True)
        assert [str(r["address"]) for r in kernel.batches[-1]] == ["2001:db8::100"]
        server.cancel()

    asyncio.run(main())


@pytest.mark.parametrize(("setting", "period"), [('"auto"', 1.0), ("30", 10.0), ("0", 1.0)])
def test_one_batch_per_shortest_period_among_the_vhids(
    tmp_path: Path, setting: str, period: float
) -> None:
    """An explicit lifetime renews less often (fewer RTM_NEWADDR for every listener)."""
    two = TABLE + '\n[[carp]]\ncarpdev = "eth0"\nvhid = 2\npass = "x"\nadvbase = 2\n'
    two += 'addresses = ["192.0.2.102/24"]\n'
    daemon, _ = make(tmp_path, two, address_lifetime=setting)

    async def main() -> float:
        await daemon.start()
        found = daemon.keeper.lifetimes.period()
        await daemon.stop()
        return found

    assert asyncio.run(main()) == period


def test_a_reload_that_sets_a_lifetime_gives_the_masters_addresses_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Added forever under address_lifetime = 0; a reload to "auto": renewed from the next
    batch on (and back to 0: forever again, no longer renewed)."""
    monkeypatch.setattr(Lifetimes, "period", lambda self: 0.05)
    daemon, netlink = make(tmp_path, address_lifetime="0")

    async def main() -> None:
        await master(daemon, netlink)
        assert set(netlink.lifetimes.values()) == {None} and not netlink.holding()
        path = tmp_path / "carpd.toml"
        path.write_text(
            path.read_text().replace("address_lifetime = 0", 'address_lifetime = "auto"')
        )
        await daemon.reload(load_config(path))
        assert sorted(await netlink.next_renewal()) == BOTH
        path.write_text(
            path.read_text().replace('address_lifetime = "auto"', "address_lifetime = 0")
        )
        await daemon.reload(load_config(path))
        batch = await netlink.next_renewal()
        assert {life for _, _, life in batch} == {None}
        assert not netlink.holding()
        await daemon.stop()

    asyncio.run(main())


def test_auto_renews_at_most_budget_addresses_a_second(tmp_path: Path) -> None:
    """A few addresses every second; 255 vhids' 510 so that 20 a second are renewed, the
    lifetime growing by the period (the rounded master-down interval is always left)."""
    assert auto_period(2) == auto_period(BUDGET) == 1.0
    assert auto_period(510) == 510 / BUDGET == 25.5
    cfg = carp(tmp_path, "").carp[0]
    assert lifetime_of(cfg, "auto", 2) == 3 + 1
    assert lifetime_of(cfg, "auto", 510) == 3 + 26


def test_a_punctual_renewal_trusts_the_link_watch_and_only_a_late_one_asks_the_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10 ms VRRP adverts: lifetime 2 s, renewed every second. A renewal on time must not
    dump and parse every address (it did each second: as dear as the renewal); one a
    stalled loop made late (within LATE of the lifetime) must, as the kernel may have
    expired an address the link watch has not heard of yet."""
    monkeypatch.setattr(Lifetimes, "period", lambda self: 3600.0)  # renewed here only
    table = 'vhid = 1\nprotocol = "vrrp3"\nadvbase = 0.01\naddresses = ["192.0.2.100/24"]\n'
    daemon, netlink = make(tmp_path, table)
    asked: list[bool] = []

    async def renew(lifetimes: Any, present: Any, *, exact: bool = False) -> Any:
        asked.append(exact)
        return []

    monkeypatch.setattr(netlink, "renew", renew)

    async def main() -> None:
        await master(daemon, netlink)
        lifetimes = daemon.keeper.lifetimes
        assert lifetimes.of(daemon.vhosts[("eth0", 1)]) == 2
        now = asyncio.get_running_loop().time()
        lifetimes._last = now - 1.05  # a period and a little (the loop's own lateness)
        await lifetimes.renew()
        lifetimes._last = now - (2 - LATE)  # stalled: within LATE of the lifetime
        await lifetimes.renew()
        await daemon.stop()

    asyncio.run(main())
    assert asked == [False, True]
