"""[route]: the addresses as host routes on a dummy device while MASTER, for BGP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fakes import DUMMY, ETH0, FakeNetlink, FakePorts, config, install

from carpd.core.model import State
from carpd.daemon.runtime.runtime import Daemon

TEXT = (
    'name = "lan"\nvhid = 1\npass = "x"\naddresses = ["192.0.2.100/24", "2001:db8::100/64"]\n'
    "\n[route]\nenabled = true\n"
)


def test_the_addresses_are_announced_while_master_and_withdrawn_before_they_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install()
    netlink = FakeNetlink()
    daemon = Daemon(config(tmp_path, TEXT), FakePorts(netlink))

    async def main() -> None:
        await daemon.start()
        await daemon.settle()
        netlink.changes.clear()  # start-up: BACKUP, nothing of ours on the dummy
        daemon.force_state("lan", State.MASTER)
        await daemon.settle()
        daemon.force_state("lan", State.BACKUP)
        await daemon.settle()

    asyncio.run(main())
    vips = ["192.0.2.100/24", "2001:db8::100/64"]
    hosts = ["192.0.2.100/32", "2001:db8::100/128"]
    assert netlink.changes == [
        *(("add", ETH0.index, a) for a in vips),  # the addresses first...
        *(("add", DUMMY.index, h) for h in hosts),  # ...then the routes
        *(("remove", DUMMY.index, h) for h in hosts),  # the routes withdrawn first...
        *(("remove", ETH0.index, a) for a in vips),  # ...then the addresses
    ]


def test_a_bad_route_table_is_refused(tmp_path: Path) -> None:
    from carpd.config import ConfigError

    with pytest.raises(ConfigError) as e:
        config(tmp_path, TEXT.replace("enabled = true", 'enabled = true\ndevice = "a/b"'))
    assert "route.device" in str(e.value)
