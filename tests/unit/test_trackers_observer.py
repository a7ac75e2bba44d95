"""carpd.daemon.observers.trackers: each tracker's targets probed in tasks of their own,
a change of state turned into one scoped_demotion call and one TrackChanged event, its
report for status and /metrics, and reconfigure/close. Real probes (kind file, on
tmp_path), a fake Demoter that records its calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast

import pytest

from carpd.config import Config, load_config
from carpd.daemon.observers import eventstream
from carpd.daemon.observers.trackers import STEP, Trackers, reason
from carpd.daemon.seam.events import Event, TrackChanged
from carpd.daemon.seam.integration import Sample
from carpd.daemon.seam.view import NodeView
from carpd.linux.probes import Prober, Result

INTERVAL = 0.1
TIMEOUT = 0.1
MARGIN = 2.0  # the event loop's turns on a loaded 2-core machine
# A file's change is seen within two beats (rise = fall = 1), then at once acted on.
REACTION = 2 * INTERVAL + TIMEOUT + MARGIN

CARP = """
[[carp]]
name = "web"
vhid = 7
carpdev = "eth0"
pass = "hunter2"
addresses = ["192.0.2.100"]
groups = ["uplinks"]
"""


class FakeDemoter:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...], tuple[str, ...], int, str]] = []

    def state_sync_demotion(self, amount: int, why: str) -> None:
        raise AssertionError("trackers never move state sync's demotion")

    def scoped_demotion(
        self, reason: str, vhids: tuple[str, ...], groups: tuple[str, ...], amount: int, why: str
    ) -> None:
        self.calls.append((reason, vhids, groups, amount, why))


def track(name: str, path: Path, extra: str = "") -> str:
    return (
        f'\n[[track]]\nname = "{name}"\nkind = "file"\ntargets = "{path}"\n'
        f"interval = {INTERVAL}\ntimeout = {TIMEOUT}\nrise = 1\nfall = 1\nweight = 50\n{extra}"
    )


def configure(tmp_path: Path, *tracks: str) -> Config:
    path = tmp_path / "carpd.toml"
    path.write_text(CARP + "".join(tracks))
    return load_config(path)


async def until(what: str, condition: Callable[[], bool], within: float = REACTION) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, f"not within {within:g} s: {what}"
        await asyncio.sleep(0.01)


@pytest.fixture
def probes_done(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The targets probed so far, in order (the real probes, counted)."""
    done: list[str] = []
    real = Prober.probe

    async def counted(self: Prober, target: str) -> Result:
        result = await real(self, target)
        done.append(target)
        return result

    monkeypatch.setattr(Prober, "probe", counted)
    return done


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(main())


def test_a_file_flipping_down_and_back_demotes_once_and_lifts_once(
    tmp_path: Path, probes_done: list[str]
) -> None:
    flag = tmp_path / "maint"
    flag.write_text("0\n")
    demoter, events = FakeDemoter(), cast(list[Event], [])
    trackers = Trackers(demoter, events.append)

    async def main() -> None:
        await trackers.reconfigure(configure(tmp_path, track("maint", flag)))
        try:
            await until("first verdict", lambda: len(events) == 1)
            # Its first verdict, up: nothing to lift, no call.
            assert events == [TrackChanged("maint", True, "track maint: up (value 0)", 0)]
            assert demoter.calls == []

            flag.write_text("1\n")
            await until("demoted", lambda: len(demoter.calls) == 1)
            assert demoter.calls == [("track maint", (), (), 50, "track maint: down (value 1)")]
            assert events[1:] == [TrackChanged("maint", False, "track maint: down (value 1)", 50)]

            flag.write_text("0\n")
            await until("lifted", lambda: len(demoter.calls) == 2)
            assert demoter.calls[1] == ("track maint", (), (), 0, "track maint: up (value 0)")
            assert events[2:] == [TrackChanged("maint", True, "track maint: up (value 0)", 0)]

            # Steady from here: more probes, no more calls or events.
            seen = len(probes_done)
            await until("three more probes", lambda: len(probes_done) >= seen + 3)
            assert len(demoter.calls) == 2 and len(events) == 3
        finally:
            await trackers.close()

    run(main)
    assert reason("maint") == "track maint"


def test_the_report_while_down(tmp_path: Path) -> None:
    flag = tmp_path / "maint"
    flag.write_text("3\n")
    demoter, events = FakeDemoter(), cast(list[Event], [])
    trackers = Trackers(demoter, events.append)
    assert trackers.report() is None  # no tracker: no report

    async def main() -> None:
        await trackers.reconfigure(configure(tmp_path, track("maint", flag)))
        try:
            # Before its first probe: starting, and not counted as down.
            report = trackers.report()
            assert report is not None
            assert report.lines() == ["track maint (file): starting: not probed yet"]
            assert [(s.name, s.value) for s in report.samples()] == [
                ("carpd_track_up", 1),
                ("carpd_track_demotion", 0),
                ("carpd_track_target_up", 1),
            ]

            await until("demoted", lambda: len(demoter.calls) == 1)
            report = trackers.report()
            assert report is not None
            data = report.to_json()
            since = data["trackers"][0].pop("since")
            assert isinstance(since, float) and since > 0
            assert data == {
                "trackers": [
                    {
                        "name": "maint",
                        "kind": "file",
                        "up": False,
                        "demotion": 50,
                        "weight": 50,
                        "applies_to": "node",
                        "why": "track maint: down (value 3)",
                        "targets": [
                            {"target": str(flag), "up": False, "last_ok": False,
                             "detail": "value 3"},
                        ],
                    }
                ]
            }  # fmt: skip
            assert report.lines() == [
                "track maint (file): DOWN, demoting node by 50: track maint: down (value 3)"
            ]
            samples = list(report.samples())
            assert all(isinstance(s, Sample) and s.kind == "gauge" for s in samples)
            assert [(s.name, s.value, s.labels) for s in samples] == [
                ("carpd_track_up", 0, (("track", "maint"), ("kind", "file"))),
                ("carpd_track_demotion", 50, (("track", "maint"), ("kind", "file"))),
                ("carpd_track_target_up", 0, (("track", "maint"), ("target", str(flag)))),
            ]
        finally:
            await trackers.close()

    run(main)


def test_a_tracker_with_vhids_and_groups_passes_them_through(tmp_path: Path) -> None:
    flag = tmp_path / "maint"
    flag.write_text("1\n")
    demoter, events = FakeDemoter(), cast(list[Event], [])
    trackers = Trackers(demoter, events.append)
    extra = 'vhids = ["web"]\ngroups = ["uplinks"]\n'

    async def main() -> None:
        await trackers.reconfigure(configure(tmp_path, track("scoped", flag, extra)))
        try:
            await until("demoted", lambda: len(demoter.calls) == 1)
            assert demoter.calls == [
                ("track scoped", ("web",), ("uplinks",), 50, "track scoped: down (value 1)")
            ]
            report = trackers.report()
            assert report is not None
            assert report.lines() == [
                "track scoped (file): DOWN, demoting web, group uplinks by 50: "
                "track scoped: down (value 1)"
            ]
            flag.write_text("0\n")
            await until("lifted", lambda: len(demoter.calls) == 2)
            assert demoter.calls[1][:4] == ("track scoped", ("web",), ("uplinks",), 0)
        finally:
            await trackers.close()

    run(main)


def test_a_tracker_of_several_targets_goes_down_below_its_quorum(tmp_path: Path) -> None:
    flags = [tmp_path / f"f{i}" for i in range(3)]
    for f in flags:
        f.write_text("0\n")
    demoter, events = FakeDemoter(), cast(list[Event], [])
    trackers = Trackers(demoter, events.append)
    table = (
        f'\n[[track]]\nname = "q"\nkind = "file"\ntargets = {[str(f) for f in flags]!r}\n'
        f"interval = {INTERVAL}\ntimeout = {TIMEOUT}\nrise = 1\nfall = 1\nweight = 50\n"
        "quorum = 2\n"
    ).replace("'", '"')

    async def main() -> None:
        await trackers.reconfigure(configure(tmp_path, table))
        try:
            await until("first verdict", lambda: len(events) == 1)
            flags[0].write_text("1\n")
            # One of three lost: still two up, the quorum. Seen once it is probed down.
            running = trackers.running["q"]
            await until("f0 down", lambda: running.state.states[str(flags[0])].up is False)
            assert demoter.calls == [] and len(events) == 1
            flags[1].write_text("1\n")
            await until("demoted", lambda: len(demoter.calls) == 1)
            assert demoter.calls == [("track q", (), (), 50, "track q: 2 of 3 targets lost")]
        finally:
            await trackers.close()

    run(main)


def test_reconfigure_keeps_unchanged_restarts_changed_and_stops_removed(
    tmp_path: Path,
) -> None:
    flags = {name: tmp_path / name for name in ("kept", "changed", "removed")}
    for f in flags.values():
        f.write_text("1\n")
    demoter, events = FakeDemoter(), cast(list[Event], [])
    trackers = Trackers(demoter, events.append)

    async def main() -> None:
        before = configure(tmp_path, *(track(n, f) for n, f in flags.items()))
        await trackers.reconfigure(before)
        try:
            await until("all three demoted", lambda: len(demoter.calls) == 3)
            assert {c[0] for c in demoter.calls} == {"track kept", "track changed", "track removed"}
            kept, changed, removed = (trackers.running[n] for n in flags)
            kept_since = kept.since
            demoter.calls.clear()

            after = configure(
                tmp_path,
                track("kept", flags["kept"]),
                track("changed", flags["changed"]).replace("weight = 50", "weight = 60"),
            )
            await trackers.reconfigure(after)
            # The removed and the changed lift their demotion before reconfigure returns.
            assert sorted(demoter.calls) == [
                ("track changed", (), (), 0, "track changed: changed"),
                ("track removed", (), (), 0, "track removed: removed"),
            ]
            assert set(trackers.running) == {"kept", "changed"}
            assert all(t.done() for t in removed.tasks + changed.tasks)
            # The unchanged one is the same, with its state, its tasks still running.
            assert trackers.running["kept"] is kept
            assert (kept.state.up, kept.state.demotion, kept.since) == (False, 50, kept_since)
            assert not any(t.done() for t in kept.tasks)
            # The changed one starts afresh, and demotes again by its new weight.
            fresh = trackers.running["changed"]
            assert fresh is not changed and fresh.cfg.weight == 60
            await until("changed demoted again", lambda: len(demoter.calls) == 3)
            assert demoter.calls[2] == (
                "track changed",
                (),
                (),
                60,
                "track changed: down (value 1)",
            )
            assert not any(c[0] == "track kept" for c in demoter.calls)

            # Removing the last ones: both lift.
            demoter.calls.clear()
            await trackers.reconfigure(configure(tmp_path))
            assert sorted(c[0] for c in demoter.calls) == ["track changed", "track kept"]
            assert all(c[3] == 0 for c in demoter.calls)
            assert trackers.running == {} and trackers.report() is None
        finally:
            await trackers.close()

    run(main)


def test_reconfigure_stops_an_up_tracker_without_a_call(tmp_path: Path) -> None:
    flag = tmp_path / "ok"
    flag.write_text("0\n")
    demoter, events = FakeDemoter(), cast(list[Event], [])
    trackers = Trackers(demoter, events.append)

    async def main() -> None:
        await trackers.reconfigure(configure(tmp_path, track("ok", flag)))
        try:
            await until("first verdict", lambda: len(events) == 1)
            tasks = trackers.running["ok"].tasks
            await trackers.reconfigure(configure(tmp_path))
            assert demoter.calls == []  # nothing to lift
            assert all(t.cancelled() for t in tasks)
        finally:
            await trackers.close()

    run(main)


def test_close_cancels_every_task(tmp_path: Path) -> None:
    flags = [tmp_path / "a", tmp_path / "b"]
    for f in flags:
        f.write_text("0\n")
    demoter, events = FakeDemoter(), cast(list[Event], [])
    trackers = Trackers(demoter, events.append)

    async def main() -> None:
        await trackers.reconfigure(configure(tmp_path, track("a", flags[0]), track("b", flags[1])))
        await until("both probed", lambda: len(events) == 2)
        tasks = [t for r in trackers.running.values() for t in r.tasks]
        assert len(tasks) == 2 and not any(t.done() for t in tasks)
        await trackers.close()
        assert all(t.cancelled() for t in tasks)
        assert trackers.running == {} and trackers.report() is None

    run(main)


def test_a_track_event_in_carpctl_events_json() -> None:
    # The view is read only for events that name vhids; a track event names none.
    event = TrackChanged("uplink", False, "track uplink: 2 of 3 targets lost", 50)
    data = eventstream.to_json(event, cast(NodeView, None))
    at = data.pop("at")
    assert isinstance(at, str) and at[:2] == "20"
    assert data == {
        "event": "track",
        "track": "uplink",
        "up": False,
        "why": "track uplink: 2 of 3 targets lost",
        "demotion": 50,
    }


def test_targets_probe_one_after_another_not_in_the_same_moment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Probes started in one moment run in one turn of the loop, and an advert due then
    waits for all of them: each target gets its own moment, STEP after the previous."""
    files = [tmp_path / f"f{i}" for i in range(5)]
    for f in files:
        f.write_text("0\n")
    started: list[tuple[float, str]] = []

    async def stamped(self: Prober, target: str) -> Result:
        started.append((asyncio.get_running_loop().time(), target))
        return True, "stamped"

    monkeypatch.setattr(Prober, "probe", stamped)
    trackers = Trackers(FakeDemoter(), lambda e: None)
    targets = ", ".join(f'"{f}"' for f in files)
    extra = f'\n[[track]]\nname = "all"\nkind = "file"\ntargets = [{targets}]\ninterval = 1\n'

    begun = []

    async def main() -> None:
        config = configure(tmp_path, extra)
        begun.append(asyncio.get_running_loop().time())
        await trackers.reconfigure(config)
        try:
            await until("every target probed", lambda: len(started) == len(files))
        finally:
            await trackers.close()

    run(main)
    # Never before its moment (a loop that woke late may run several at once).
    assert STEP > 0
    assert [target for _, target in started] == [str(f) for f in files]
    assert all(t >= begun[0] + (i + 1) * STEP for i, (t, _) in enumerate(started))
