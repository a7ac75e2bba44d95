"""Maintenance mode and service-check results as demotion sources (no network)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from carpd.config import ConfigError, GlobalConfig, load_config
from carpd.core.demotion import Demotion
from carpd.daemon.runtime.health import MAINTENANCE, SERVICES, STARTUP, Health


def make(tmp_path: Path, **settings: object) -> tuple[Health, Demotion, list[tuple[bool, int]]]:
    """A Health; each demotion change it announces is recorded with what was true at
    that moment: (maintenance file on disk, the ledger's maintenance demotion)."""
    g = GlobalConfig.model_validate(
        {
            "state_dir": str(tmp_path / "state"),
            "service_checks": str(tmp_path / "checks"),
            **settings,
        }
    )
    ledger = Demotion()
    changes: list[tuple[bool, int]] = []

    def changed() -> None:
        persisted = (tmp_path / "state" / "maintenance").exists()
        changes.append((persisted, ledger.sources.get(MAINTENANCE, 0)))

    return Health(g, ledger, changed), ledger, changes


def check(tmp_path: Path, name: str, body: str) -> None:
    (tmp_path / "checks").mkdir(exist_ok=True)
    path = tmp_path / "checks" / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def test_maintenance_is_persisted_before_it_demotes_and_found_again(tmp_path: Path) -> None:
    health, ledger, changes = make(tmp_path)
    assert health.set_maintenance(True) is None
    assert (tmp_path / "state" / "maintenance").exists()
    # One demotion announced, and the file was already on disk when it was.
    assert ledger.sources[MAINTENANCE] == 240 and changes == [(True, 240)]
    again, ledger2, _ = make(tmp_path)  # a restart
    again.begin()
    assert again.maintenance and ledger2.sources[MAINTENANCE] == 240
    assert health.set_maintenance(False) is None
    assert not (tmp_path / "state" / "maintenance").exists()
    assert MAINTENANCE not in ledger.sources


def test_maintenance_off_always_lifts_the_demotion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    health, ledger, _ = make(tmp_path, maintenance_demotion_factor=1000)
    health.set_maintenance(True)
    assert ledger.sources[MAINTENANCE] == 1000

    def refuse(self: Path, missing_ok: bool = False) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(Path, "unlink", refuse)
    warning = health.set_maintenance(False)
    assert MAINTENANCE not in ledger.sources  # not stuck, whatever the disk says
    assert warning is not None and "would come back after a restart" in warning


def test_startup_demotion_until_the_first_check_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    health, ledger, _ = make(tmp_path, startup_demotion_factor=77)
    check(tmp_path, "web", "exit 1")
    health.begin()
    assert ledger.sources == {STARTUP: 77}
    caplog.set_level(logging.WARNING, logger="carpd")
    asyncio.run(health.check_services())
    assert ledger.sources == {SERVICES: 1 << 20}
    assert "carp demoted by 1048576 due to service disruption (services: web)" in caplog.text
    check(tmp_path, "web", "exit 0")
    asyncio.run(health.check_services())
    assert ledger.sources == {}
    assert "carp promoted by 1048576 due to service recovery" in caplog.text


def test_no_check_directory_means_healthy(tmp_path: Path) -> None:
    health, ledger, _ = make(tmp_path)
    health.begin()
    report = asyncio.run(health.check_services())
    assert report.healthy and not report.directory_exists
    assert ledger.sources == {}


def test_reconfigure_moves_maintenance_and_takes_its_new_factor(tmp_path: Path) -> None:
    health, ledger, _ = make(tmp_path)
    assert health.set_maintenance(True) is None
    new = GlobalConfig.model_validate(
        {
            "state_dir": str(tmp_path / "elsewhere"),
            "service_checks": str(tmp_path / "checks"),
            "maintenance_demotion_factor": 100,
        }
    )
    health.reconfigure(new)
    assert ledger.sources[MAINTENANCE] == 100
    assert (tmp_path / "elsewhere" / "maintenance").exists()
    assert not (tmp_path / "state" / "maintenance").exists()  # a restart finds it once


def test_reconfigure_with_a_service_interval_starts_the_periodic_runs(tmp_path: Path) -> None:
    """Started with service_interval = 0 the checks run once; a reload that sets one makes
    them run every interval from then on."""
    runs = tmp_path / "runs"
    check(tmp_path, "web", f"echo run >> {runs}")
    health, _, _ = make(tmp_path, service_interval=0)
    interval = 0.1
    new = GlobalConfig.model_validate(
        {
            "state_dir": str(tmp_path / "state"),
            "service_checks": str(tmp_path / "checks"),
            "service_interval": interval,
        }
    )

    async def main() -> int:
        health.start_checks()
        while not runs.exists():  # the one run of a configuration without an interval
            await asyncio.sleep(0.01)
        await asyncio.sleep(5 * interval)
        once = len(runs.read_text().splitlines())
        health.reconfigure(new)
        while len(runs.read_text().splitlines()) < once + 3:
            await asyncio.sleep(0.01)
        await health.close()
        return once

    assert asyncio.run(asyncio.wait_for(main(), 30)) == 1


def test_service_checks_repeat_every_5_s_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As keepalived's track_script: without a service_interval the checks still repeat.
    The waits between runs are recorded rather than waited."""
    runs = tmp_path / "runs"
    check(tmp_path, "web", f"echo run >> {runs}")
    health, _, _ = make(tmp_path)
    assert health.settings.service_interval == 5.0
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float) -> None:
        waits.append(delay)
        await real_sleep(0)

    async def main() -> None:
        monkeypatch.setattr(asyncio, "sleep", sleep)
        health.start_checks()
        while not runs.exists() or len(runs.read_text().splitlines()) < 3:
            await real_sleep(0.01)
        await health.close()

    asyncio.run(asyncio.wait_for(main(), 30))
    assert waits[:2] == [5.0, 5.0]


def test_service_interval_0_runs_the_checks_once(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    check(tmp_path, "web", f"echo run >> {runs}")
    health, _, _ = make(tmp_path, service_interval=0)

    async def main() -> None:
        health.start_checks()
        assert health._periodic is not None
        await health._periodic  # it ends by itself after the first run
        await health.close()

    asyncio.run(asyncio.wait_for(main(), 30))
    assert runs.read_text().splitlines() == ["run"]


@pytest.mark.parametrize("value", ["0.05", "-1", "86401", "100000", "inf", "nan", "true", '"5"'])
def test_service_interval_out_of_range_is_refused_naming_file_key_and_range(
    tmp_path: Path, value: str
) -> None:
    path = tmp_path / "carpd.toml"
    path.write_text(
        f"[global]\nservice_interval = {value}\n\n"
        '[[carp]]\nvhid = 1\ncarpdev = "eth0"\npass = "x"\naddresses = ["192.0.2.100"]\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (line,) = str(info.value).splitlines()
    assert line.startswith(f"{path}: global.service_interval = {value}: ")
    if value not in ("inf", "nan", "true", '"5"'):
        assert line.endswith("allowed range is 0.1-86400 seconds, or 0 for no periodic runs")


@pytest.mark.parametrize("value", [0, 0.1, 1, 30, 86400])
def test_service_interval_in_range(value: float) -> None:
    assert GlobalConfig(service_interval=value).service_interval == value


def test_a_check_failing_run_after_run_is_logged_when_it_starts_failing_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Checks repeat every service_interval: a failure logged on every run would fill the
    log (720 lines an hour per check at 5 s); its start and its end are what matter."""
    caplog.set_level(logging.INFO, logger="carpd")
    health, _, _ = make(tmp_path, service_interval=0)
    check(tmp_path, "dns", 'echo "no answer from 192.0.2.53"; exit 1')

    async def runs(n: int) -> None:
        for _ in range(n):
            await health.check_services()

    asyncio.run(runs(3))
    assert [m for m in caplog.messages if m.startswith("service check dns")] == [
        "service check dns failed with exit status 1",
        "service check dns: no answer from 192.0.2.53",
    ]
    caplog.clear()
    check(tmp_path, "dns", "exit 0")
    asyncio.run(runs(2))
    assert [m for m in caplog.messages if m.startswith("service check dns")] == [
        "service check dns passes again"
    ]
