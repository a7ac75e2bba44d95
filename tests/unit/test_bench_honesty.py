"""The benchmark's own honesty (test-audit H1-H3, M6, L7, L12), on recorded data, no lab:
only a failure before the measured event is retried and every failed attempt is counted;
an "every run" target is unmet when an attempt failed; heard is compared with sent, no
clamp; the takeover is timed from the last advert on the wire; a target without data is
shown unmet."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load() -> ModuleType:
    """bench/run.py as a module; the search path and PYTHONPATH it sets for its labs are
    put back, so the rest of the suite does not see bench/'s modules."""
    path, env = list(sys.path), os.environ.get("PYTHONPATH")
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = path
        if env is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = env
    return module


run = _load()
core = run.core


class Flaky:
    """A scenario run that fails with each of ``errors`` in turn, then returns."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return {"outage_ms": 20.0}


# -- the retry rule and the failed-attempt counting (H1) --------------------------------


def test_a_set_up_failure_is_tried_again_and_counted() -> None:
    flaky = Flaky(core.SetupError("settle: TimeoutError()"))
    result, failed = run.attempt(flaky)
    assert result == {"outage_ms": 20.0}
    assert flaky.calls == 2
    assert failed == [{"error": "settle: TimeoutError()", "setup": True, "lost": False}]


def test_a_failure_of_the_measured_event_is_never_tried_again() -> None:
    flaky = Flaky(TimeoutError("no line matching '-> MASTER' within 10 s"))
    result, failed = run.attempt(flaky)
    assert result is None
    assert flaky.calls == 1
    assert len(failed) == 1 and failed[0]["setup"] is False and failed[0]["lost"] is True


def test_set_up_failures_are_tried_a_bounded_number_of_times() -> None:
    flaky = Flaky(*(core.SetupError(f"try {i}") for i in range(run.SETUP_RETRIES + 1)))
    result, failed = run.attempt(flaky)
    assert result is None
    assert flaky.calls == run.SETUP_RETRIES + 1
    assert [f["lost"] for f in failed] == [False] * run.SETUP_RETRIES + [True]


def test_setting_up_turns_a_lab_failure_into_a_set_up_error_and_nothing_after_it() -> None:
    with pytest.raises(core.SetupError, match="pair: TimeoutError"), core.setting_up("pair"):
        raise TimeoutError("no MASTER")
    # A bug in the benchmark is not a set-up hiccup.
    with pytest.raises(KeyError), core.setting_up("pair"):
        raise KeyError("x")


def test_a_missing_tool_stops_the_benchmark_rather_than_failing_a_run() -> None:
    def no_trafgen() -> dict[str, Any]:
        raise run.FatalError("trafgen is missing")

    with pytest.raises(run.FatalError):
        run.attempt(no_trafgen)


def test_failed_attempts_are_shown_with_the_runs() -> None:
    assert run.runs_cell(5, []) == "5"
    setup = {"error": "e", "setup": True, "lost": False}
    lost = {"error": "e", "setup": False, "lost": True}
    assert run.runs_cell(5, [setup]) == "5, 1 failed attempt (at set-up)"
    assert run.runs_cell(4, [setup, lost]) == "4, 2 failed attempts (1 at set-up, 1 run lost)"


def test_an_every_run_target_is_unmet_when_any_attempt_failed() -> None:
    setup = {"error": "e", "setup": True, "lost": False}
    line = run.target_line(True, "no flap", "0", [setup], every_run=True)
    assert line.startswith("- [ ] no flap: 0; 1 failed attempt (at set-up)")
    # A median target survives a retried set-up failure, not a lost run.
    assert run.target_line(True, "median", "1 ms", [setup], every_run=False).startswith("- [x]")
    lost = {"error": "e", "setup": False, "lost": True}
    assert run.target_line(True, "median", "1 ms", [lost], every_run=False).startswith("- [ ]")


# -- a target without data (L12) --------------------------------------------------------


def test_a_target_without_data_is_shown_unmet() -> None:
    lines = run.targets({}, {})
    assert lines and all(x.startswith("- [ ] ") and x.endswith("(not measured)") for x in lines)
    failed = {"jitter, carpd": [{"error": "e", "setup": False, "lost": True, "run": 1}]}
    jitter = [x for x in run.targets({}, failed) if "jitter p99 under 5 ms" in x]
    assert jitter == [
        "- [ ] advert jitter p99 under 5 ms (not measured: 1 failed attempt (1 run lost))"
    ]


# -- heard against sent (H2) ------------------------------------------------------------


def _flood(heard: int, sent: int) -> dict[str, Any]:
    return {"master_adverts_heard": heard, "master_adverts_sent": sent, "sent_pps": 50_000.0,
            "master_transitions": 0, "backup_transitions": 0, "cpu_pct": 4.0}  # fmt: skip


def test_heard_is_compared_with_what_the_master_sent_without_a_clamp() -> None:
    ok, detail = run.heard_every_advert([_flood(11, 11), _flood(12, 12)])
    assert ok and detail == "23 of 23 heard over 2 runs"
    # 10 of 12: the old nominal 10 read 100 % here.
    ok, detail = run.heard_every_advert([_flood(11, 11), _flood(10, 12)])
    assert not ok and "short in 10/12" in detail


def test_the_flood_target_is_unmet_for_one_lost_advert_or_one_failed_attempt() -> None:
    results = {"flood 50000/s, carpd": [_flood(11, 11), _flood(10, 11)]}
    line = next(x for x in run.targets(results, {}) if "heard every one" in x)
    assert line.startswith("- [ ] ") and "21 of 22" in line
    results = {"flood 50000/s, carpd": [_flood(11, 11)]}
    failed = {"flood 50000/s, carpd": [{"error": "e", "setup": True, "lost": False, "run": 2}]}
    line = next(x for x in run.targets(results, failed) if "heard every one" in x)
    assert line.startswith("- [ ] ") and "1 failed attempt" in line
    line = next(x for x in run.targets(results, {}) if "heard every one" in x)
    assert line.startswith("- [x] ")


def test_only_a_trafgen_flood_counts() -> None:
    assert run.flood_sent("sent 500123 in 10.01 s (trafgen)") == 500123
    with pytest.raises(run.FatalError):
        run.flood_sent("sent 98000 in 10.00 s (socket, 140000 tried)")
    with pytest.raises(RuntimeError):
        run.flood_sent("trafgen: no such device")


# -- the takeover from the last advert (H3, M4) -----------------------------------------

# What `carpd_lab.sniff --times` printed on the client: node1's adverts every second,
# ARP lines (no stamp) between them, the kill at 1000.80, node2's first advert.
SNIFFED = [
    "sniffing",
    "998.000100 carp 192.0.2.1 vhid=7 advbase=1 advskew=0 counter=0x1 mac=02:00:00:00:00:01",
    "arp 02:00:00:00:00:09 op=1 spa=192.0.2.9 tpa=192.0.2.100",
    "999.000200 carp 192.0.2.1 vhid=7 advbase=1 advskew=0 counter=0x2 mac=02:00:00:00:00:01",
    "1000.000300 carp 192.0.2.1 vhid=7 advbase=1 advskew=0 counter=0x3 mac=02:00:00:00:00:01",
    "1003.491000 carp 192.0.2.2 vhid=7 advbase=1 advskew=100 counter=0x9 mac=02:00:00:00:00:02",
    "1004.491000 carp 192.0.2.2 vhid=7 advbase=1 advskew=100 counter=0xa mac=02:00:00:00:00:02",
]
KILLED = 1000.8


def test_the_takeover_is_timed_from_the_last_advert_on_the_wire() -> None:
    last, first = core.takeover_on_the_wire(SNIFFED, "192.0.2.1", "192.0.2.2", KILLED)
    assert (last, first) == (1000.0003, 1003.491)
    vrrp = [
        "5.000 vrrp 192.0.2.1 vrid=9 prio=200 mac=x",
        "5.400 vrrp 192.0.2.2 vrid=9 prio=100 mac=y",
    ]
    assert core.takeover_on_the_wire(vrrp, "192.0.2.1", "192.0.2.2", 5.1) == (5.0, 5.4)
    with pytest.raises(RuntimeError):  # the new master never spoke
        core.takeover_on_the_wire(SNIFFED[:5], "192.0.2.1", "192.0.2.2", KILLED)


def _crash(after_last_ms: float, from_kill_ms: float) -> dict[str, Any]:
    return {"after_last_advert_ms": after_last_ms, "master_ms": from_kill_ms,
            "master_down_ms": 3390.625, "outage_ms": from_kill_ms}  # fmt: skip


def test_a_late_takeover_fails_the_target_though_it_came_within_the_bound_of_the_kill() -> None:
    last, first = core.takeover_on_the_wire(SNIFFED, "192.0.2.1", "192.0.2.2", KILLED)
    # 3491 ms after the last advert: 100 ms late, though only 2691 ms after the kill.
    late = _crash(1000 * (first - last), 1000 * (first - KILLED))
    ok, detail = run.from_last_advert([_crash(3395.0, 3000.0), late])
    assert not ok and "worst 3491 ms from the old master's last advert" in detail
    ok, _ = run.from_last_advert([_crash(3395.0, 3000.0), _crash(3440.0, 2500.0)])
    assert ok


# -- the firewall comparison (M6) -------------------------------------------------------


def _fw(again: float) -> dict[str, Any]:
    return {"data_again_max_s": again}


def test_data_flowing_again_compares_worst_runs_within_one_backoff_step() -> None:
    ok, detail = run.data_flowing_again([_fw(3.9), _fw(4.2)], [_fw(3.5), _fw(3.6)], 1.0)
    assert ok and "worst run 4.20 vs 3.60 s" in detail
    # A median that wins by 20 ms does not hide a worst case a step later.
    ok, _ = run.data_flowing_again(
        [_fw(3.6), _fw(3.6), _fw(4.9)], [_fw(3.7), _fw(3.7), _fw(3.8)], 1.0
    )
    assert not ok


def test_the_crash_runs_are_paired_at_stratified_phases() -> None:
    """Every daemon's n-th run crashes at the same phase of the advert interval, one phase
    in each n-th of it; a run whose set-up failed is tried again at its phase."""
    phases = run.core.Phases(5, random.Random(1))
    assert sorted(int(p * 5) for p in phases.phases) == [0, 1, 2, 3, 4]
    seen: dict[str, list[float]] = {"carpd": [], "keepalived": []}
    for i in range(5):
        for kind in seen:
            if i == 2 and kind == "carpd":
                assert phases.next(kind) == phases.phases[2]  # set-up failed: not taken
            seen[kind].append(phases.next(kind))
            phases.take(kind)
    assert seen["carpd"] == seen["keepalived"] == phases.phases


def test_a_crash_takes_its_phase_even_when_its_run_is_lost() -> None:
    """A run lost at or after its crash is not tried again: the next one takes the next
    phase. Without phases (a graceful stop, a lone run) the moment is random."""
    phases = run.core.Phases(3, random.Random(2))
    with run.core.crash_phase(phases, "ucarp") as first:
        pass
    with pytest.raises(TimeoutError), run.core.crash_phase(phases, "ucarp") as second:
        raise TimeoutError("no new MASTER")
    with run.core.crash_phase(phases, "ucarp") as third:
        pass
    assert [first, second, third] == phases.phases
    with run.core.crash_phase(phases, "keepalived") as other:
        assert other == first  # each daemon has its own count
    with run.core.crash_phase(None, "carpd") as free:
        assert 0 <= free < 1


def test_the_paired_table_puts_each_phase_on_one_row() -> None:
    def fw(phase: float, again: float) -> dict[str, Any]:
        return {"phase": phase, "phase_s": phase, "data_again_max_s": again, "takeover_s": 3.0}

    text = run.firewall.paired(
        {"carpd": [fw(0.7, 3.2), fw(0.1, 4.1)], "keepalived": [fw(0.1, 4.3), fw(0.7, 3.1)]}
    )
    rows = text.splitlines()[2:]
    assert rows[0].startswith("| 0.10 | 4.10 ") and "| 4.30 " in rows[0]
    assert rows[1].startswith("| 0.70 | 3.20 ") and "| 3.10 " in rows[1]


def test_the_crash_rows_are_shown_side_by_side_at_each_phase() -> None:
    def crash(phase: float, outage: float) -> dict[str, Any]:
        return {"phase": phase, "phase_s": phase, "outage_ms": outage, "master_ms": outage - 9}

    results = {
        "crash failover, carpd": [crash(0.8, 2600), crash(0.2, 3200)],
        "crash failover, ucarp": [crash(0.2, 4900)],  # its 0.8 run was lost
        "crash failover, keepalived (VRRPv3 1 s)": [crash(0.8, 2610), crash(0.2, 3190)],
        "graceful SIGTERM, carpd": [{"outage_ms": 20.0}],
    }
    text = "\n".join(run.crash_by_phase(results))
    rows = [r for r in text.splitlines() if r.startswith("| 0.")]
    first = "| 0.20 | 3200 (crash 200 ms after an advert, new MASTER 3191 ms) "
    assert rows[0].startswith(first)
    assert "| 4900 (crash 200 ms" in rows[0] and "| 3190 (crash 200 ms" in rows[0]
    assert rows[1].startswith("| 0.80 | 2600 ") and "| - |" in rows[1]
    assert "keepalived (VRRPv3 1 s)" in text and "SIGTERM" not in text


def test_only_picks_the_scenarios_by_label() -> None:
    todo = run.scenarios(1, 1)
    picked = run.select(todo, ["crash failover"])
    assert {label for label, _, _ in picked} == {
        "crash failover, carpd",
        "crash failover, ucarp",
        "crash failover, keepalived (VRRPv3 1 s)",
    }
    assert run.select(todo, []) == todo


# -- level with the C peers (issue 32): each figure beside its peer's, or its floor --------


def test_a_figure_is_level_only_at_or_below_its_peers_median() -> None:
    def pair(ours: float, theirs: float) -> dict[str, list[dict[str, Any]]]:
        return {"jitter, carpd": [{"p99_ms": ours}], "jitter, ucarp": [{"p99_ms": theirs}]}

    def line(results: dict[str, list[dict[str, Any]]]) -> str:
        return next(x for x in run.targets(results, {}) if "1 s advert jitter p99 at or" in x)

    assert line(pair(1.4, 1.46)).startswith("- [x] ") and "1.40 vs 1.46 ms" in line(pair(1.4, 1.46))
    assert line(pair(3.78, 1.46)).startswith("- [ ] ")


def test_an_rss_target_missed_shows_the_interpreters_floor_beside_it() -> None:
    results = {
        "scale, carpd, 1 vhids": [{"rss_mib": 43.1, "carpctl_status_ms": 44.0}],
        "start-up, carpd": [
            {
                "backup_ms": 300.0,
                "python_rss_mib": 10.5,
                "python_ms": 26.0,
                "imports_rss_mib": 37.4,
                "imports_ms": 250.0,
                "model_rss_mib": 41.9,
                "model_ms": 290.0,
            }
        ],
    }
    lines = run.targets(results, {})
    rss = next(x for x in lines if "RSS for 1 vhid under 30 MiB" in x)
    assert rss.startswith("- [ ] ") and "43.1 MiB" in rss and "imported 37.4 MiB" in rss
    spawn = next(x for x in lines if "spawn to BACKUP under 150 ms" in x)
    assert spawn.startswith("- [ ] ") and "300 ms" in spawn and "python -c pass 10.5 MiB" in spawn
    # pydantic's first model is a floor of its own: every carpd start builds one.
    assert "one pydantic model built 41.9 MiB, 290 ms" in spawn
    assert "built one pydantic model, as carpd's config does: 41.9 MiB" in run.rss_floor(results)


def test_carpds_own_start_up_is_split_by_stage_below_the_start_up_table() -> None:
    cost = {"own_import_ms": 95.0, "own_dataclasses_ms": 39.0, "own_models_ms": 27.0,
            "own_modules": 100}  # fmt: skip
    text = " ".join(run.own_import_cost(cost))
    assert "95 ms, of which building its dataclasses 39 ms" in text
    assert "pydantic config models 27 ms" in text and "its 100 modules 29 ms" in text
    assert run.own_import_cost({"backup_ms": 300.0}) == []  # a result from before the split


def test_the_import_cost_script_times_carpds_imports_in_stages_that_add_up() -> None:
    script = Path(run.__file__).with_name("import_cost.py")
    done = subprocess.run([sys.executable, str(script)], check=True, capture_output=True,
                          text=True)  # fmt: skip
    cost = json.loads(done.stdout)
    # carpd defines dozens of dataclasses and its config models: each stage took time,
    # and together they took less than the whole import they happened in.
    assert cost["own_modules"] >= 50
    assert cost["own_dataclasses_ms"] > 0 and cost["own_models_ms"] > 0
    assert cost["own_dataclasses_ms"] + cost["own_models_ms"] < cost["own_import_ms"]


ENTRY = (
    "_run_module_as_main (<frozen runpy>:198);<module> (carpd/__main__.py:3);"
    "run (carpd/daemon/service/serve.py:59);BaseEventLoop._run_once (asyncio/base_events.py:1922)"
)


def test_a_samples_stage_is_its_innermost_frame_then_its_innermost_carpd_frame() -> None:
    stage = run.where.stage_of
    assert stage(f"{ENTRY};EpollSelector.select (selectors.py:468)") == "wakeup"
    assert stage(f"{ENTRY};BaseEventLoop.time (asyncio/base_events.py:707)") == "loop"
    timer = f"{ENTRY};Ticks._expired (carpd/daemon/runtime/ticks.py:176)"
    assert stage(f"{timer};TimerFd.expired (carpd/linux/timerfd.py:88)") == "timer"
    send = (
        f"{timer};Daemon._on_timer (carpd/daemon/runtime/runtime.py:245);"
        "Transmitter.send (carpd/daemon/runtime/transmit.py:51);"
        "AdvertSocketV4.send (carpd/linux/sockets.py:115)"
    )
    assert stage(send) == "send"
    # A library frame below carpd's (ipaddress hashing an address for the core) is the
    # core's time: the innermost carpd frame decides.
    core_frame = f"{timer};Router.handle_timer (carpd/core/router.py:92)"
    assert stage(f"{core_frame};_BaseAddress.__hash__ (ipaddress.py:613)") == "core"
    assert stage(f"{ENTRY};LinkWatch.run (carpd/linux/linkwatch.py:90)") == "other"


def test_the_stages_share_py_spys_samples_and_the_table_gives_them_in_cpu() -> None:
    raw = "\n".join(
        [
            f"{ENTRY};EpollSelector.select (selectors.py:468) 30",
            f"{ENTRY};Ticks._expired (carpd/daemon/runtime/ticks.py:176);"
            "AdvertSocketV4.send (carpd/linux/sockets.py:115) 50",
            f"{ENTRY};Ticks._expired (carpd/daemon/runtime/ticks.py:176) 20",
        ]
    )
    samples, share = run.where.shares(raw)
    assert samples == 100 and share["send"] == 0.5 and share["wakeup"] == 0.3
    assert share["timer"] == 0.2 and share["core"] == 0.0
    assert set(share) == set(run.where.STAGES) == set(run.WHERE_STAGES)
    result = {"samples": samples, "cpu_pct": 4.0, **{f"share {s}": v for s, v in share.items()}}
    table = "\n".join(run.where_markdown({run.WHERE: [result]}, lambda _: "1"))
    assert "| the adverts' sendto (the kernel's IP and veth path) | 50 % | 2.00 |" in table
    assert "100 samples and 4.00 % of a core" in table
    assert run.where_markdown({}, lambda _: "1") == []
