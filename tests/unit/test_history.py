"""The transition history (with the silence before each) and flap detection."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import pytest
from fakes import FakeNetlink, FakePorts, config, install

from carpd.core.model import Reason, State
from carpd.ctl.main import format_status
from carpd.daemon.observers import history
from carpd.daemon.runtime.runtime import Daemon
from carpd.daemon.seam.events import RoleChanged
from carpd.daemon.seam.view import BRIEF_HISTORY, NodeView, to_json

KEY = ("eth0", 1)


@pytest.fixture
def daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Daemon:
    install()
    text = 'name = "lan"\nvhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n'
    return Daemon(config(tmp_path, text), FakePorts(FakeNetlink()))


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
    asyncio.run(daemon.start())
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
    asyncio.run(daemon.start())
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
    assert flaps[0].startswith(
        f"lan: flapping: {history.FLAP_COUNT + 1} transitions in 60 s that the network caused"
        " (master timed out x3, more frequent advertisement received x2)"
    )
    assert "3.5 s (3 adverts missed)" in flaps[0]
    assert KEY in h.flapping
    t += history.FLAP_WINDOW + 1  # quiet for a whole window, then one more transition
    h.notify(change(State.BACKUP, State.MASTER, Reason.MASTER_TIMED_OUT, t), daemon.view())
    assert KEY not in h.flapping
    assert "lan: no longer flapping" in caplog.messages


NO_VIEW = cast(NodeView, None)  # History reads only the event
B, M, INIT = State.BACKUP, State.MASTER, State.INIT
ALONE = (B, M, Reason.MASTER_TIMED_OUT, None)  # no advert heard since INIT
START: list[Step] = [(INIT, B, Reason.INITIALIZATION_COMPLETE), ALONE]
PEER_START: list[Step] = [(INIT, B, Reason.INITIALIZATION_COMPLETE)]
# From, to, why, and the last advert heard (seconds before; None: none since INIT).
Step = tuple[State, State, Reason] | tuple[State, State, Reason, float | None]


def replay(steps: Sequence[Step], *, every: float = 1.0) -> history.History:
    """The steps, one ``every`` seconds, as the runtime would publish them; an advert
    heard 0.5 s before each unless a step says otherwise."""
    h = history.History()
    for i, step in enumerate(steps):
        at = 7000.0 + i * every
        before = step[3] if len(step) == 4 else 0.5
        heard = None if before is None else at - before
        h.notify(change(step[0], step[1], step[2], at, heard, 1.0), NO_VIEW)
    return h


def test_the_threshold_is_more_than_4_transitions_within_60_s() -> None:
    """docs/operations.md: "More than 4 transitions of one vhid within 60 s"."""
    assert (history.FLAP_COUNT, history.FLAP_WINDOW) == (4, 60.0)
    lossy: list[Step] = [(B, M, Reason.MASTER_TIMED_OUT), (M, B, Reason.MORE_FREQUENT_ADVERT)] * 3
    assert KEY not in replay(PEER_START + lossy[:4]).flapping  # 4: not yet
    assert KEY in replay(PEER_START + lossy[:5]).flapping  # 5 within 4 s
    assert KEY in replay(PEER_START + lossy[:5], every=14.9).flapping  # 5 within 59.6 s
    assert KEY not in replay(PEER_START + lossy, every=15.1).flapping  # never 5 within 60 s


# Each five times in a row, on the node that does it and on its peer (the other side).
OPERATOR = {
    "carpctl down/up (carp, preempt)": START
    + [(M, INIT, Reason.USER_DOWN), (INIT, B, Reason.USER_UP), (B, M, Reason.PREEMPTING)] * 5,
    "the peer of carpctl down/up (carp)": PEER_START
    + [(B, M, Reason.MASTER_BOWED_OUT), (M, B, Reason.MORE_FREQUENT_ADVERT)] * 5,
    "carpctl down/up (vrrp3, preempt)": START
    + [
        (M, INIT, Reason.USER_DOWN),
        (INIT, B, Reason.USER_UP),
        (B, M, Reason.PREEMPTING_LOWER_PRIORITY),
    ]
    * 5,
    "the peer of carpctl down/up (vrrp3)": PEER_START
    + [(B, M, Reason.MASTER_RELEASED), (M, B, Reason.HIGHER_PRIORITY_MASTER)] * 5,
    "carpctl down/up of a lone node": START
    + [(M, INIT, Reason.USER_DOWN), (INIT, B, Reason.USER_UP), ALONE] * 5,
    "maintenance on/off (carp, preempt)": START
    + [(M, B, Reason.LESS_DEMOTED_MASTER), (B, M, Reason.PREEMPTING)] * 5,
    "the peer of maintenance on/off (carp, preempt)": PEER_START
    + [(B, M, Reason.PREEMPTING), (M, B, Reason.MORE_FREQUENT_ADVERT)] * 5,
    "the peer of maintenance on/off (carp, no preempt)": PEER_START
    + [(B, M, Reason.MASTER_MORE_DEMOTED), (M, B, Reason.MORE_FREQUENT_ADVERT)] * 5,
    "maintenance on/off (vrrp3, preempt)": START
    + [(M, B, Reason.HIGHER_PRIORITY_MASTER), (B, M, Reason.PREEMPTING_LOWER_PRIORITY)] * 5,
    "the peer of maintenance on/off (vrrp3, preempt)": PEER_START
    + [(B, M, Reason.PREEMPTING_LOWER_PRIORITY), (M, B, Reason.HIGHER_PRIORITY_MASTER)] * 5,
    "carpctl state backup/master": START
    + [(M, B, Reason.USER_REQUESTED), (B, M, Reason.USER_REQUESTED)] * 5,
    "reloads that restart the vhid (alone)": START
    + [(M, INIT, Reason.CONFIG_CHANGED), (INIT, B, Reason.INITIALIZATION_COMPLETE), ALONE] * 5,
}


@pytest.mark.parametrize("steps", OPERATOR.values(), ids=OPERATOR.keys())
def test_transitions_an_operator_or_a_demotion_caused_are_not_a_flap(steps: list[Step]) -> None:
    assert KEY not in replay(steps).flapping


NETWORK = {
    "the backup of a pair that loses adverts": PEER_START
    + [(B, M, Reason.MASTER_TIMED_OUT), (M, B, Reason.MORE_FREQUENT_ADVERT)] * 3,
    "a vrrp3 backup that loses adverts": PEER_START
    + [(B, M, Reason.MASTER_TIMED_OUT), (M, B, Reason.HIGHER_PRIORITY_MASTER)] * 3,
    "the carpdev's link down and up (preempt)": START
    + [(M, INIT, Reason.CARPDEV_DOWN), (INIT, B, Reason.CARPDEV_UP), (B, M, Reason.PREEMPTING)] * 3,
    "the peer of a carpdev down and up": PEER_START
    + [(B, M, Reason.MASTER_TIMED_OUT), (M, B, Reason.MORE_FREQUENT_ADVERT)] * 3,
    # Only the election that settles an operator's lever is excused, not what follows.
    "losing adverts right after carpctl up": START
    + [(M, INIT, Reason.USER_DOWN), (INIT, B, Reason.USER_UP), ALONE]
    + [(M, B, Reason.MORE_FREQUENT_ADVERT), (B, M, Reason.MASTER_TIMED_OUT)] * 3,
    "a master heard after carpctl up, then lost": START
    + [(M, INIT, Reason.USER_DOWN), (INIT, B, Reason.USER_UP), (B, M, Reason.MASTER_TIMED_OUT, 0.5)]
    + [(M, B, Reason.MORE_FREQUENT_ADVERT), (B, M, Reason.MASTER_TIMED_OUT)] * 2,
}


@pytest.mark.parametrize("steps", NETWORK.values(), ids=NETWORK.keys())
def test_the_same_number_of_transitions_the_network_caused_is_a_flap(steps: list[Step]) -> None:
    assert KEY in replay(steps).flapping


def test_every_reason_is_counted_or_not_on_purpose() -> None:
    """A new Reason must be placed: the network's, or one that does not count."""
    not_counted = {
        Reason.INITIALIZATION_COMPLETE,
        Reason.LESS_DEMOTED_MASTER,
        Reason.MASTER_BOWED_OUT,
        Reason.PREEMPTING,
        Reason.MASTER_MORE_DEMOTED,
        Reason.MASTER_RELEASED,
        Reason.PREEMPTING_LOWER_PRIORITY,
        Reason.USER_DOWN,
        Reason.USER_UP,
        Reason.USER_REQUESTED,
        Reason.SHUTDOWN,
        Reason.CONFIG_CHANGED,
        Reason.VHID_REMOVED,
    }
    assert history.NETWORK_REASONS | not_counted == set(Reason)
    assert not history.NETWORK_REASONS & not_counted


def test_flapping_shows_until_a_window_without_a_network_transition() -> None:
    lossy: list[Step] = [(B, M, Reason.MASTER_TIMED_OUT), (M, B, Reason.MORE_FREQUENT_ADVERT)] * 3
    h = replay(PEER_START + lossy)
    last = 7000.0 + len(lossy)  # one transition a second from 7000
    assert h.is_flapping(KEY, last + 1)
    assert h.is_flapping(KEY, last + history.FLAP_WINDOW)
    assert not h.is_flapping(KEY, last + history.FLAP_WINDOW + 1)  # calm, with no transition
    assert not replay(PEER_START + lossy[:4]).is_flapping(KEY, last)


def test_the_history_is_in_status_json_and_text(daemon: Daemon) -> None:
    async def main() -> None:
        await daemon.start()
        daemon.force_state("lan", State.MASTER)
        await daemon.settle()

    asyncio.run(main())
    status = to_json(daemon.view())
    (last,) = [r for r in status["vhosts"][0]["history"] if r["to"] == "MASTER"]
    assert (last["from"], last["reason"], last["gap"]) == ("BACKUP", "user requested", None)
    assert status["vhosts"][0]["flapping"] is False
    text = format_status(status)
    assert "BACKUP -> MASTER (user requested; no advert heard before)" in text


def test_the_runtime_hands_the_last_advert_heard_to_the_history(daemon: Daemon) -> None:
    async def main() -> float:
        await daemon.start()
        machine = daemon.vhosts[KEY].machine
        machine.last_heard, machine.heard_interval = daemon.now() - 3.0, 1.0
        daemon.force_state("lan", State.MASTER)
        await daemon.settle()
        return machine.last_heard

    heard = asyncio.run(main())
    (record,) = [r for r in daemon.history.of(KEY) if r.new is State.MASTER]
    assert record.last_advert == pytest.approx(heard + time.time() - daemon.now(), abs=0.01)
    assert record.gap == pytest.approx(3.0, abs=0.5)
    assert record.missed in (2, 3)


def test_the_brief_status_for_carpctls_text_prints_the_same_and_carries_less(
    daemon: Daemon,
) -> None:
    """carpctl's text asks for the brief form (an operator loops it over 255 vhids): the
    same text as from the full status, without the counters, plan and older history."""

    async def main() -> None:
        await daemon.start()
        for _ in range(3):
            daemon.force_state("lan", State.MASTER)
            await daemon.settle()
            daemon.force_state("lan", State.BACKUP)
            await daemon.settle()

    asyncio.run(main())
    view = daemon.view()
    full, brief = to_json(view), to_json(view, text=True)
    (vh_full,), (vh_brief,) = full["vhosts"], brief["vhosts"]
    assert len(vh_full["history"]) > BRIEF_HISTORY
    assert vh_brief["history"] == vh_full["history"][-BRIEF_HISTORY:]
    assert vh_full["plan"] and vh_full["host_steps"] and "counters" in vh_full
    assert "plan" not in vh_brief and "counters" not in vh_brief
    assert vh_brief["host_steps"] == []  # every step ran in time, without an error
    assert format_status(brief, now=1.0) == format_status(full, now=1.0)
    assert len(json.dumps(vh_brief)) < len(json.dumps(vh_full)) / 2
