"""The transition history (with the silence before each) and flap detection."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fakes import FakeNetlink, config, install, started

from carpd.core.model import Reason, State
from carpd.ctl.main import format_status
from carpd.daemon import history
from carpd.daemon.events import RoleChanged
from carpd.daemon.runtime import Daemon
from carpd.daemon.view import to_json

KEY = ("eth0", 1)


@pytest.fixture
def daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Daemon:
    install(monkeypatch)
    text = 'name = "lan"\nvhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n'
    return Daemon(config(tmp_path, text), netlink=FakeNetlink())  # type: ignore[arg-type]


def change(
    old: State,
    new: State,
    reason: Reason,
    at: float,
    heard: float | None = None,
    interval: float | None = None,
) -> RoleChanged:
    """A transition at ``at``, the last advert from another node having come at ``heard``."""
    return RoleChanged(KEY, old, new, reason, at, "lan", heard, interval)


def test_a_takeover_records_the_silence_before_it(daemon: Daemon) -> None:
    asyncio.run(started(daemon))
    h = history.History()
    event = change(
        State.BACKUP, State.MASTER, Reason.MASTER_TIMED_OUT, 1004.2, 1000.0, 1 + 100 / 256
    )
    h.notify(event, daemon.view())
    (record,) = h.of(KEY)
    assert record.last_advert == 1000.0
    assert record.gap == pytest.approx(4.2)
    assert record.missed == 3  # 4.2 s of silence from a master advertising every 1.39 s
    assert record.to_json()["adverts_missed"] == 3


def test_flapping_is_logged_once_with_the_gaps_then_its_end(
    daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    asyncio.run(started(daemon))
    h = history.History()
    t = 5000.0
    for i in range(history.FLAP_COUNT + 2):  # adverts lost now and then: back and forth
        t += 5
        up = i % 2 == 0
        old, new = (State.BACKUP, State.MASTER) if up else (State.MASTER, State.BACKUP)
        reason = Reason.MASTER_TIMED_OUT if up else Reason.MORE_FREQUENT_ADVERT
        last = t - 3.5 if up else t - 0.01
        h.notify(change(old, new, reason, t, last, 1.0), daemon.view())
    flaps = [m for m in caplog.messages if "flapping" in m]
    assert len(flaps) == 1
    assert flaps[0].startswith(f"lan: flapping: {history.FLAP_COUNT} transitions in 60 s")
    assert "3.5 s (3 adverts missed)" in flaps[0]
    assert KEY in h.flapping
    t += history.FLAP_WINDOW + 1  # quiet for a whole window, then one more transition
    h.notify(change(State.BACKUP, State.MASTER, Reason.MASTER_TIMED_OUT, t), daemon.view())
    assert KEY not in h.flapping
    assert "lan: no longer flapping" in caplog.messages


def test_the_history_is_in_status_json_and_text(daemon: Daemon) -> None:
    async def main() -> None:
        await started(daemon)
        daemon.force_state("lan", State.MASTER)
        await daemon._settle()

    asyncio.run(main())
    status = to_json(daemon.view())
    (last,) = [r for r in status["vhosts"][0]["history"] if r["to"] == "MASTER"]
    assert (last["from"], last["reason"], last["gap"]) == ("BACKUP", "user requested", None)
    assert status["vhosts"][0]["flapping"] is False
    text = format_status(status)
    assert "BACKUP -> MASTER (user requested; no advert heard before)" in text


def test_the_runtime_hands_the_last_advert_heard_to_the_history(daemon: Daemon) -> None:
    async def main() -> float:
        await started(daemon)
        machine = daemon.vhosts[KEY].machine
        machine.last_heard, machine.heard_interval = daemon.now() - 3.0, 1.0
        daemon.force_state("lan", State.MASTER)
        await daemon._settle()
        return machine.last_heard

    heard = asyncio.run(main())
    (record,) = [r for r in daemon.history.of(KEY) if r.new is State.MASTER]
    assert record.last_advert == pytest.approx(heard + daemon._wall_offset(), abs=0.01)
    assert record.gap == pytest.approx(3.0, abs=0.5)
    assert record.missed in (2, 3)
