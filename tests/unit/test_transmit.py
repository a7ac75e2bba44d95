"""The wire lane (runtime/transmit.py) on fake sockets: a VRRP advert's datagrams are built
once and kept, yet follow the priority the moment it changes, and failed sends still
demote the node after three in a row and lift it after three good ones."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fakes import FakePorts, FakeSocket, config, install

from carpd.core.model import State
from carpd.daemon.runtime.runtime import Daemon

TABLE = (
    'vhid = 7\nprotocol = "vrrp3"\npriority = 200\nadvbase = 0.01\naddresses = ["192.0.2.107/24"]\n'
)
IP_HEADER = 20  # the IPv4 header carpd writes itself (IP_HDRINCL)


def priorities(sent: list[tuple[float, str, bytes]]) -> list[int]:
    """The priority of each VRRP advert sent on the IPv4 socket."""
    return [data[IP_HEADER + 2] for _, kind, data in sent if kind == "FakeV4"]


def test_a_kept_vrrp_advert_follows_a_demotion_at_once(tmp_path: Path) -> None:
    sent = install()
    daemon = Daemon(config(tmp_path, TABLE), FakePorts())

    async def main() -> None:
        await daemon.start()
        await daemon.settle()
        daemon.force_state("carp7", State.MASTER)
        vh = daemon.vhosts[("eth0", 7)]
        t = asyncio.get_running_loop().time()
        for k in range(1, 4):  # routine adverts: the kept datagram, the same bytes
            daemon._on_timer(vh, t + k, 0.0)
        before = len(sent)
        vh.machine.set_demotion(50, t + 4)  # a MASTER advertises a new priority at once
        daemon._process(vh)
        daemon._on_timer(vh, t + 5, 0.0)
        assert priorities(sent[before:]) == [150, 150]
        vh.machine.set_demotion(0, t + 6)
        daemon._process(vh)
        daemon._on_timer(vh, t + 7, 0.0)
        await daemon.stop()
        v4 = [data for _, kind, data in sent[:before] if kind == "FakeV4"]
        assert len(v4) >= 4 and len(set(v4)) == 1  # force_state's advert and 3 routine ones
        assert v4[0][IP_HEADER + 2] == 200
        assert priorities(sent[before:])[2:4] == [200, 200]

    asyncio.run(main())


def test_three_failed_adverts_in_a_row_demote_and_three_good_ones_lift_it(
    tmp_path: Path,
) -> None:
    install()
    daemon = Daemon(config(tmp_path, TABLE), FakePorts())
    told: list[list[str]] = []
    daemon.transmitter.senderr = told.append

    async def main() -> None:
        await daemon.start()
        await daemon.settle()
        daemon.force_state("carp7", State.MASTER)
        vh = daemon.vhosts[("eth0", 7)]
        t = asyncio.get_running_loop().time()
        FakeSocket.failing.add("FakeV4")
        for k in range(1, 4):
            assert told == []  # not before the third
            daemon._on_timer(vh, t + k, 0.0)
        assert told == [["carp7"]] and vh.machine.counters.dropped["send_error"] == 3
        FakeSocket.failing.clear()
        for k in range(4, 7):
            assert told == [["carp7"]]
            daemon._on_timer(vh, t + k, 0.0)
        assert told == [["carp7"], []]
        await daemon.stop()

    asyncio.run(main())
