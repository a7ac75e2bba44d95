"""The runtime's lanes, on fake netlink and sockets (tests/unit/fakes.py): the wire
(adverts) never waits for the host (addresses, announcements, hooks), and the host lane
keeps its order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fakes import FakeAnnouncer, FakeNetlink, FakeV4, config, install, started

from carpd.core.model import State
from carpd.daemon.runtime import Daemon

SLOW = 2.5  # seconds for one netlink address change: a conntrackd commit can take that
# How late an advert may be on a busy machine: a timer woken late, far from SLOW.
ON_TIME = 0.25


def test_a_new_masters_adverts_keep_their_schedule_while_netlink_is_slow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = install(monkeypatch)
    netlink = FakeNetlink(delay=SLOW)
    cfg = config(tmp_path, 'vhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n')

    async def main() -> float:
        daemon = Daemon(cfg, netlink=netlink)  # type: ignore[arg-type]
        await started(daemon)
        t0 = asyncio.get_running_loop().time()
        daemon.force_state("carp1", State.MASTER)
        await asyncio.sleep(2 * SLOW + 0.5)  # the removal at start, then the add
        return t0

    t0 = asyncio.run(main())
    adverts = [t - t0 for t, kind, _ in sent if kind == FakeV4.__name__]
    # One at once, then one per advbase (1 s), whatever the address change is doing.
    assert len(adverts) >= 4, adverts
    for i, at in enumerate(adverts[:4]):
        assert i <= at < i + ON_TIME, f"advert {i} at {at:.3f} s: {adverts}"
    # The host lane kept its order: BACKUP's removal at start, then the address, then the
    # announcement about it.
    assert [verb for _, verb, _ in netlink.log] == ["remove", "add"]
    added = netlink.log[1][0]
    garps = [t for t, kind, _ in sent if kind == FakeAnnouncer.__name__]
    assert garps and garps[0] >= added
