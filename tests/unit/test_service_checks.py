"""Service checks: every executable in a directory, run at once, each bounded by a timeout."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from carpd.linux.service_checks import (
    OUTPUT_BYTES,
    OUTPUT_LINES,
    SERVICE_DEMOTION,
    ServiceReport,
    disruption_message,
    recovery_message,
    run_service_checks,
)


def script(directory: Path, name: str, body: str, mode: int = 0o755) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(mode)
    return path


def run(directory: Path, timeout: float = 5.0) -> tuple[ServiceReport, float]:
    start = time.monotonic()
    report = asyncio.run(run_service_checks(directory, timeout))
    return report, time.monotonic() - start


def gone(pid: int, within: float = 2.0) -> bool:
    """The process has exited (a zombie nobody reaped counts: it is dead)."""
    end = time.monotonic() + within
    while True:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.02)


def read_pid(path: Path) -> int:
    return int(path.read_text().strip())


def test_healthy_and_failing_checks(tmp_path: Path) -> None:
    d = tmp_path / "checks"
    script(d, "web", "exit 0")
    script(d, "routing", "exit 3")
    report, _ = run(d)
    assert report.directory == d and report.directory_exists
    by_name = {r.name: r for r in report.results}
    assert by_name["web"].ok and by_name["web"].status == 0
    assert not by_name["routing"].ok and by_name["routing"].status == 3
    assert not by_name["routing"].timed_out
    assert report.failed == ("routing",)
    assert not report.healthy


def test_all_passing_is_healthy(tmp_path: Path) -> None:
    d = tmp_path / "checks"
    script(d, "a", "exit 0")
    script(d, "b", "true")
    report, _ = run(d)
    assert [r.ok for r in report.results] == [True, True]
    assert report.failed == ()
    assert report.healthy


def test_results_and_failed_names_are_sorted(tmp_path: Path) -> None:
    d = tmp_path / "checks"
    for name in ("zeta", "alpha", "mid"):
        script(d, name, "exit 1")
    script(d, "beta", "exit 0")
    report, _ = run(d)
    assert [r.name for r in report.results] == ["alpha", "beta", "mid", "zeta"]
    assert report.failed == ("alpha", "mid", "zeta")


def test_dot_files_non_executables_and_directories_are_not_checks(tmp_path: Path) -> None:
    d = tmp_path / "checks"
    script(d, "real", "exit 0")
    script(d, ".hidden", "exit 1")
    script(d, "README", "exit 1", mode=0o644)
    (d / "subdir").mkdir(mode=0o755)
    script(d / "subdir", "nested", "exit 1")
    (d / "dangling").symlink_to(d / "nowhere")
    report, _ = run(d)
    assert [r.name for r in report.results] == ["real"]
    assert report.healthy


def test_symlink_to_an_executable_is_a_check(tmp_path: Path) -> None:
    target = script(tmp_path / "elsewhere", "target", "exit 4")
    d = tmp_path / "checks"
    d.mkdir()
    (d / "linked").symlink_to(target)
    report, _ = run(d)
    assert report.failed == ("linked",)
    assert report.results[0].status == 4


def test_missing_directory_means_no_checks(tmp_path: Path) -> None:
    d = tmp_path / "does-not-exist"
    report, _ = run(d)
    assert report.results == ()
    assert not report.directory_exists
    assert report.healthy and report.failed == ()
    assert report.to_json()["directory_exists"] is False
    assert report.to_json()["directory"] == str(d)


def test_a_file_in_place_of_the_directory_means_no_checks(tmp_path: Path) -> None:
    f = script(tmp_path, "not-a-dir", "exit 1")
    report, _ = run(f)
    assert report.results == () and not report.directory_exists and report.healthy


def test_empty_directory_exists_and_is_healthy(tmp_path: Path) -> None:
    d = tmp_path / "checks"
    d.mkdir()
    report, _ = run(d)
    assert report.results == () and report.directory_exists and report.healthy


def test_hanging_check_is_killed_with_its_children_and_does_not_stall_others(
    tmp_path: Path,
) -> None:
    d = tmp_path / "checks"
    pidfile = tmp_path / "child.pid"
    script(d, "hang", f"sleep 60 & echo $! > {pidfile}; wait")
    script(d, "fine", "echo all good; exit 0")
    report, elapsed = run(d, timeout=0.5)
    assert elapsed < 1.5
    by_name = {r.name: r for r in report.results}
    hang = by_name["hang"]
    assert not hang.ok and hang.timed_out and hang.status is None
    assert 0.4 <= hang.duration < 1.5
    assert by_name["fine"].ok and not by_name["fine"].timed_out
    assert by_name["fine"].output == "all good"
    assert report.failed == ("hang",)
    assert gone(read_pid(pidfile)), "the check's background child survived the timeout"


def test_leftover_child_holding_the_output_open_is_killed_at_the_deadline(
    tmp_path: Path,
) -> None:
    d = tmp_path / "checks"
    pidfile = tmp_path / "child.pid"
    script(d, "leaky", f"echo started; sleep 60 & echo $! > {pidfile}; exit 0")
    report, elapsed = run(d, timeout=0.5)
    assert elapsed < 1.5
    (result,) = report.results
    # The check itself exited 0 in time: it is healthy, its leftover is not kept.
    assert result.ok and result.status == 0 and not result.timed_out
    assert result.output == "started"
    assert gone(read_pid(pidfile))


def test_checks_run_concurrently(tmp_path: Path) -> None:
    d = tmp_path / "checks"
    for name in ("one", "two", "three"):
        script(d, name, "sleep 0.4; exit 0")
    report, elapsed = run(d, timeout=5)
    assert [r.ok for r in report.results] == [True, True, True]
    assert all(r.duration >= 0.35 for r in report.results)
    assert elapsed < 1.0


def test_cancelling_the_run_kills_the_checks(tmp_path: Path) -> None:
    d = tmp_path / "checks"
    pidfile = tmp_path / "child.pid"
    script(d, "hang", f"sleep 60 & echo $! > {pidfile}; wait")

    async def scenario() -> None:
        task = asyncio.create_task(run_service_checks(d, 30))
        while not pidfile.exists() or not pidfile.read_text().strip():
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(scenario(), 5))
    assert gone(read_pid(pidfile))


def test_output_of_stdout_and_stderr_is_captured(tmp_path: Path) -> None:
    d = tmp_path / "checks"
    script(d, "noisy", "echo to stdout; echo to stderr >&2; exit 2")
    (result,) = run(d)[0].results
    assert result.output == "to stdout\nto stderr"
    assert result.status == 2


def test_only_the_tail_of_the_output_is_kept(tmp_path: Path) -> None:
    d = tmp_path / "checks"
    script(d, "lines", "i=1; while [ $i -le 100 ]; do echo line $i; i=$((i+1)); done")
    script(d, "bytes", "head -c 100000 /dev/zero | tr '\\0' x; echo; echo END")
    report, _ = run(d)
    by_name = {r.name: r for r in report.results}
    lines = by_name["lines"].output.splitlines()
    assert lines == [f"line {i}" for i in range(101 - OUTPUT_LINES, 101)]
    big = by_name["bytes"].output
    assert len(big.encode()) <= OUTPUT_BYTES
    assert big.endswith("\nEND")
    assert by_name["lines"].ok and by_name["bytes"].ok


def test_stdin_is_dev_null(tmp_path: Path) -> None:
    d = tmp_path / "checks"
    script(
        d, "stdin", 'if read -r line; then echo "read: $line"; exit 1; fi; readlink /proc/$$/fd/0'
    )
    # Give this process a stdin with something in it: the check must not see it.
    r, w = os.pipe()
    saved = os.dup(0)
    try:
        os.write(w, b"from the daemon's stdin\n")
        os.close(w)
        os.dup2(r, 0)
        (result,) = run(d)[0].results
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(r)
    assert result.ok, result.output
    assert result.output == "/dev/null"


def test_check_runs_in_its_own_session(tmp_path: Path) -> None:
    d = tmp_path / "checks"
    # Field 6 of /proc/PID/stat is the session id; a session leader's is its own pid.
    script(d, "session", 'set -- $(sed "s/.*) //" /proc/$$/stat); [ "$4" = "$$" ]')
    (result,) = run(d)[0].results
    assert result.ok, result.output


def test_a_check_that_cannot_start_fails(tmp_path: Path) -> None:
    d = tmp_path / "checks"
    d.mkdir()
    bad = d / "no-shebang"
    bad.write_bytes(b"\x00\x01\x02 not a program\n")
    bad.chmod(0o755)
    (result,) = run(d)[0].results
    assert not result.ok and result.status is None and not result.timed_out
    assert result.output  # the reason, e.g. "Exec format error"


def test_a_check_killed_by_a_signal_fails(tmp_path: Path) -> None:
    d = tmp_path / "checks"
    script(d, "suicide", "kill -TERM $$")
    (result,) = run(d)[0].results
    assert not result.ok and result.status == -15 and not result.timed_out


def test_to_json_is_plain_data(tmp_path: Path) -> None:
    d = tmp_path / "checks"
    script(d, "ok", "echo fine")
    script(d, "bad", "exit 1")
    report, _ = run(d)
    data = report.to_json()
    assert json.loads(json.dumps(data)) == data
    assert data["healthy"] is False
    assert data["failed"] == ["bad"]
    assert data["directory"] == str(d) and data["directory_exists"] is True
    first = data["results"][0]
    assert set(first) == {"name", "ok", "status", "timed_out", "duration", "output"}
    assert first["name"] == "bad" and first["status"] == 1 and first["ok"] is False
    assert data["results"][1]["output"] == "fine"
    assert isinstance(first["duration"], float)


def test_log_messages_match_opnsense() -> None:
    assert SERVICE_DEMOTION == 1048576
    assert (
        disruption_message(["test_service"])
        == "carp demoted by 1048576 due to service disruption (services: test_service)"
    )
    assert (
        disruption_message(("bgp", "dns"))
        == "carp demoted by 1048576 due to service disruption (services: bgp, dns)"
    )
    assert recovery_message() == "carp promoted by 1048576 due to service recovery"


def test_reports_are_frozen(tmp_path: Path) -> None:
    report, _ = run(tmp_path / "none")
    with pytest.raises(AttributeError):
        report.directory_exists = True  # type: ignore[misc]


def test_unreadable_directory_is_an_error_not_all_healthy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "checks"
    script(d, "bad", "exit 1")

    def denied(self: Path) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    # (root reads any directory, so the refusal is simulated)
    monkeypatch.setattr(Path, "iterdir", denied)
    with pytest.raises(PermissionError):
        run(d)
