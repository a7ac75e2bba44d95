"""A MASTER announces again (runtime/reassert.py), on fake ports: every garp_refresh,
when its link comes up, and one advert interval after a resume; never while BACKUP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fakes import FakeNetlink, FakePorts, FakeSocket, config, install

from carpd.config import load_config
from carpd.core.model import State
from carpd.daemon.runtime import reassert
from carpd.daemon.runtime.runtime import Daemon

TABLE = 'vhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n'


def announced() -> int:
    return sum(kind == "FakeAnnouncer" for _, kind, _ in FakeSocket.sent)


def run(daemon: Daemon, ports: FakePorts, during: object, master: bool = True) -> list[int]:
    """Start, take over (or not), then ``during(daemon, ports)`` (a coroutine function);
    the announcements counted after the start and after ``during``."""

    async def main() -> list[int]:
        await daemon.start()
        await daemon.settle()
        if master:
            daemon.force_state("carp1", State.MASTER)
            await daemon.settle()
        counts = [announced()]
        await during(daemon, ports)  # type: ignore[operator]
        await daemon.settle()
        counts.append(announced())
        await daemon.stop()
        return counts

    return asyncio.run(main())


def make(tmp_path: Path, table: str = TABLE) -> tuple[Daemon, FakePorts]:
    install()
    ports = FakePorts(FakeNetlink())
    return Daemon(config(tmp_path, table), ports), ports


def test_a_master_refreshes_every_garp_refresh_and_a_backup_never(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reassert, "TICK", 0.02)

    async def wait(daemon: Daemon, ports: FakePorts) -> None:
        await asyncio.sleep(0.55)

    daemon, ports = make(tmp_path, TABLE + "garp_refresh = 0.1\n")
    before, after = run(daemon, ports, wait)
    assert after - before >= 2  # about five: every 0.1 s

    daemon, ports = make(tmp_path, TABLE + "garp_refresh = 0.1\n")
    before, after = run(daemon, ports, wait, master=False)
    assert after == before == 0

    daemon, ports = make(tmp_path)  # off by default
    before, after = run(daemon, ports, wait)
    assert after == before


def test_the_global_garp_refresh_is_each_vhids_default(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    install()
    cfg = config(tmp_path, TABLE)
    assert cfg.carp[0].garp_refresh == 0
    text = (
        (tmp_path / "carpd.toml").read_text().replace("[global]\n", "[global]\ngarp_refresh = 5\n")
    )
    path.write_text(text)
    assert load_config(path).carp[0].garp_refresh == 5
    path.write_text(text.replace(TABLE, TABLE + "garp_refresh = 0\n"))
    assert load_config(path).carp[0].garp_refresh == 0


def test_a_link_up_under_a_master_announces_again(tmp_path: Path) -> None:
    async def flap(daemon: Daemon, ports: FakePorts) -> None:
        ports.watcher.set("eth0", up=True)  # carrier back (a switch port's flap)
        await ports.watcher.heard()

    daemon, ports = make(tmp_path)
    before, after = run(daemon, ports, flap)
    assert after - before == 1

    daemon, ports = make(tmp_path)
    assert run(daemon, ports, flap, master=False) == [0, 0]


def test_a_resume_announces_one_advert_interval_later_if_still_master(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host was suspended for 30 s (CLOCK_BOOTTIME ran ahead): nothing at once, one
    announcement an advert interval (1 s) later."""
    monkeypatch.setattr(reassert, "TICK", 0.02)
    suspended = [0.0]
    monkeypatch.setattr(reassert, "_suspended", lambda: suspended[0])
    seen: list[int] = []

    async def resume(daemon: Daemon, ports: FakePorts) -> None:
        suspended[0] = 30.0
        await asyncio.sleep(0.3)
        await daemon.settle()
        seen.append(announced())
        await asyncio.sleep(1.0)

    daemon, ports = make(tmp_path)
    before, after = run(daemon, ports, resume)
    assert seen == [before]
    assert after - before == 1
    assert daemon.keeper.reassert.resumes == 1
