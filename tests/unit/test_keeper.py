"""A MASTER keeps what it owns (runtime/keeper.py), on fake ports: the fake netlink's
own changes are heard by the fake link watch as the kernel's address events, and a test
plays another program removing or adding an address."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

from fakes import ETH0, FakeNetlink, FakePorts, FakeSocket, config, install

from carpd.core.demotion import ADDRESSES
from carpd.core.model import State
from carpd.daemon.runtime.runtime import Daemon
from carpd.daemon.seam.events import AddressesRestored, Event
from carpd.daemon.seam.view import to_json

VIP = ipaddress.ip_interface("192.0.2.100/24")
VIP6 = ipaddress.ip_interface("2001:db8::100/64")
TABLE = 'vhid = 1\npass = "x"\naddresses = ["192.0.2.100/24", "2001:db8::100/64"]\n'


def make(tmp_path: Path) -> tuple[Daemon, FakePorts, list[Event]]:
    install()
    ports = FakePorts(FakeNetlink())
    daemon = Daemon(config(tmp_path, TABLE), ports)
    events: list[Event] = []

    class Record:
        def notify(self, event: Event, view: object) -> None:
            events.append(event)

    daemon.publisher.subscribers.append(Record())
    return daemon, ports, events


async def master(daemon: Daemon, ports: FakePorts) -> None:
    await daemon.start()
    await daemon.settle()
    daemon.force_state("carp1", State.MASTER)
    await daemon.settle()
    await ports.watcher.heard()


async def heard_and_kept(daemon: Daemon, ports: FakePorts) -> None:
    """Until the daemon heard the address events and its keep steps are done."""
    await ports.watcher.heard()
    await daemon.settle()
    await ports.watcher.heard()  # what the keep step itself changed


def steps(daemon: Daemon, name: str) -> int:
    view = next(v for v in daemon.view().vhids if v.name == "carp1")
    return next((s.runs for s in view.host_steps if s.name == name), 0)


def test_carpds_own_adds_and_removes_are_not_put_right(tmp_path: Path) -> None:
    """A takeover adds, a release removes: each heard as an address event, none of
    them a reason for a keep step."""
    daemon, ports, _ = make(tmp_path)

    async def main() -> None:
        await master(daemon, ports)
        assert ports.watcher.has_address(ETH0.index, VIP)
        daemon.force_state("carp1", State.BACKUP)
        await heard_and_kept(daemon, ports)
        assert not ports.watcher.has_address(ETH0.index, VIP)
        await daemon.stop()

    asyncio.run(main())
    assert steps(daemon, "keep addresses") == 0
    assert daemon.keeper.report().to_json() == {"vhids": {}, "demoted": None}


def test_an_address_removed_from_a_master_is_put_back_and_announced(tmp_path: Path) -> None:
    daemon, ports, events = make(tmp_path)
    netlink = ports.netlink

    async def main() -> None:
        await master(daemon, ports)
        sent = len(FakeSocket.sent)
        before = len(netlink.changes)
        # `ip addr flush`: both go at once; one keep step puts both back.
        ports.watcher.set_address(VIP, False)
        ports.watcher.set_address(VIP6, False)
        await heard_and_kept(daemon, ports)
        assert netlink.changes[before:] == [
            ("add", ETH0.index, str(VIP)),
            ("add", ETH0.index, str(VIP6)),
        ]
        announced = FakeSocket.sent[sent:]
        assert [kind for _, kind, _ in announced].count("FakeAnnouncer") == 2  # ARP and NA
        await daemon.stop()

    asyncio.run(main())
    assert steps(daemon, "keep addresses") == 1
    kept = daemon.keeper.report()
    assert kept.vhids["carp1"].restored == 2
    assert kept.vhids["carp1"].last == (
        "192.0.2.100/24, 2001:db8::100/64 removed from eth0 by another program: put back"
    )
    assert AddressesRestored(("eth0", 1), (str(VIP), str(VIP6)), True, None) in events
    status = to_json(daemon.view())
    assert status["addresses"]["vhids"]["carp1"]["restored"] == 2


def test_an_address_added_on_a_backup_is_taken_away(tmp_path: Path) -> None:
    daemon, ports, events = make(tmp_path)
    netlink = ports.netlink

    async def main() -> None:
        await daemon.start()
        await daemon.settle()
        before = len(netlink.changes)
        ports.watcher.set_address(VIP, True)  # `ip addr add` by hand, on a BACKUP
        await heard_and_kept(daemon, ports)
        assert netlink.changes[before:] == [("remove", ETH0.index, str(VIP))]
        await daemon.stop()

    asyncio.run(main())
    assert daemon.keeper.report().vhids["carp1"].removed == 1
    assert AddressesRestored(("eth0", 1), (str(VIP),), False, None) in events


def test_a_master_that_cannot_put_its_addresses_back_demotes_itself(tmp_path: Path) -> None:
    """Refused: the node is demoted as if its carpdev were down (so the peer takes
    over), and the demotion goes once the addresses are back."""
    daemon, ports, _ = make(tmp_path)
    netlink = ports.netlink
    factor = daemon.config.global_.ifdown_demotion_factor
    seen: list[int] = []

    async def main() -> None:
        await master(daemon, ports)
        netlink.refuse = "No such device"
        ports.watcher.set_address(VIP, False)
        await heard_and_kept(daemon, ports)
        seen.append(daemon.ledger.sources.get(ADDRESSES, 0))
        assert daemon.keeper.report().demoted is not None
        netlink.refuse = None
        ports.watcher.set_address(VIP6, False)  # the next removal: both go back now
        await heard_and_kept(daemon, ports)
        seen.append(daemon.ledger.sources.get(ADDRESSES, 0))
        await daemon.stop()

    asyncio.run(main())
    assert seen == [factor, 0]
    kept = daemon.keeper.report().vhids["carp1"]
    assert (kept.failed, kept.restored) == (1, 2)


def test_an_address_of_another_prefix_or_interface_is_not_the_vhids(tmp_path: Path) -> None:
    daemon, ports, _ = make(tmp_path)

    async def main() -> None:
        await master(daemon, ports)
        ports.watcher.set_address(ipaddress.ip_interface("192.0.2.100/32"), True)
        ports.watcher.set_address(VIP, False, index=ETH0.index + 40)
        await heard_and_kept(daemon, ports)
        await daemon.stop()

    asyncio.run(main())
    assert steps(daemon, "keep addresses") == 0
