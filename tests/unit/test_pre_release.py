"""pre_release: leaving MASTER, a script runs before the addresses are removed, bounded."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from fakes import FakeNetlink, FakePorts, config, install

from carpd.core.model import State
from carpd.daemon.runtime.runtime import Daemon

SCRIPT = """#!{python}
import os, time
time.sleep({sleep})
env = os.environ
with open({log!r}, "a") as f:  # when it ended (the loop's clock), what it was told
    f.write(f"{{time.monotonic()}} {{env['CARP_PREVIOUS_STATE']}} {{env['CARP_STATE']}} "
            f"{{env['CARP_REASON']}}\\n")
"""


def run(tmp_path: Path, sleep: float, timeout: float) -> tuple[FakeNetlink, Daemon, Path]:
    log = tmp_path / "pre-release.log"
    script = tmp_path / "pre-release.sh"
    script.write_text(SCRIPT.format(python=sys.executable, log=str(log), sleep=sleep))
    script.chmod(0o755)
    text = (
        'name = "lan"\nvhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n'
        f'pre_release = "{script}"\npre_release_timeout = {timeout}\n'
    )
    netlink = FakeNetlink()
    daemon = Daemon(config(tmp_path, text), FakePorts(netlink))

    async def main() -> None:
        await daemon.start()
        await daemon.settle()
        daemon.force_state("lan", State.MASTER)
        await daemon.settle()
        netlink.log.clear()
        daemon.force_state("lan", State.BACKUP)
        await daemon.settle()

    asyncio.run(main())
    return netlink, daemon, log


def test_it_runs_before_the_addresses_go_and_is_told_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install()
    netlink, daemon, log = run(tmp_path, sleep=0.3, timeout=5.0)
    (line,) = log.read_text().splitlines()  # not at start-up: it never was MASTER then
    ended, told = line.split(" ", 1)
    assert told == "MASTER BACKUP user requested"
    removed = next(t for t, verb, _ in netlink.log if verb == "remove")
    assert removed >= float(ended)  # the addresses went only after it had ended
    stats = daemon.vhosts[("eth0", 1)].lane.stats["pre-release hook"]
    assert (stats.runs, stats.failed, stats.late) == (1, 0, 0)
    assert stats.last_duration is not None and stats.last_duration >= 0.3


def test_a_hanging_one_is_killed_at_its_timeout_and_the_addresses_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install()
    netlink, daemon, _ = run(tmp_path, sleep=30, timeout=0.5)
    assert [verb for _, verb, _ in netlink.log] == ["remove"]
    stats = daemon.vhosts[("eth0", 1)].lane.stats["pre-release hook"]
    assert stats.failed == 1 and stats.last_duration is not None
    assert 0.5 <= stats.last_duration < 0.5 + 1.0
    script = tmp_path / "pre-release.sh"  # host_steps names the hook and how it ended
    assert stats.last_error == f"pre-release hook {script} ended with killed after 0.5 s"
