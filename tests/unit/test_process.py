"""carpd.linux.process.run, the one program runner: one test per mechanic, with real
subprocesses (sh, sleep, cat), no network."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from test_service_checks import gone, read_pid, script

from carpd.linux import process
from carpd.linux.process import Outcome, run

# A run whose program exits at once is done within its output grace and, for a child
# holding the pipe, the kill's grace: far below the children's 60 s.
PROMPT = process.OUTPUT_GRACE + process.KILL_GRACE + 1.0


def timed(coro: Coroutine[Any, Any, Outcome]) -> tuple[Outcome, float]:
    start = time.monotonic()
    outcome = asyncio.run(coro)
    return outcome, time.monotonic() - start


def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    prog = script(tmp_path, "hang", f"sleep 60 & echo $! > {pidfile}; echo waiting; wait")
    outcome, took = timed(run([str(prog)], timeout=0.3, leftovers="leave"))
    assert (outcome.status, outcome.timed_out, outcome.ok) == (None, True, False)
    assert outcome.error == "killed after 0.3 s"
    assert outcome.output == "waiting"
    assert took < PROMPT
    assert gone(read_pid(pidfile)), "a child of a program killed at its timeout survived"


def test_a_leftover_holding_the_pipe_is_killed_without_being_waited_for(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    prog = script(tmp_path, "leaky", f"sleep 60 & echo $! > {pidfile}; echo started")
    outcome, took = timed(run([str(prog)], timeout=30, leftovers="kill"))
    assert (outcome.status, outcome.timed_out, outcome.output) == (0, False, "started")
    assert took < PROMPT, f"waited {took:.1f} s for the program's leftover child"
    assert gone(read_pid(pidfile))


def test_a_leftover_not_holding_the_pipe_is_killed_too(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    prog = script(tmp_path, "quiet", f"sleep 60 >/dev/null 2>&1 & echo $! > {pidfile}")
    outcome, _ = timed(run([str(prog)], timeout=30, leftovers="kill"))
    assert outcome.ok
    assert gone(read_pid(pidfile)), "leftovers='kill' left a child of its group running"


def test_a_leftover_holding_the_pipe_is_left_running_without_being_waited_for(
    tmp_path: Path,
) -> None:
    pidfile = tmp_path / "child.pid"
    prog = script(tmp_path, "starter", f"sleep 60 & echo $! > {pidfile}; echo started")
    outcome, took = timed(run([str(prog)], timeout=30, leftovers="leave"))
    child = read_pid(pidfile)
    try:
        assert (outcome.status, outcome.timed_out, outcome.output) == (0, False, "started")
        assert took < PROMPT, f"waited {took:.1f} s for the program's leftover child"
        assert not gone(child, within=0), "leftovers='leave' killed the child"
    finally:
        os.kill(child, signal.SIGKILL)


def test_a_left_child_s_later_output_is_still_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    prog = script(tmp_path, "starter", f'(read -r x < {fifo}; echo "later: $x") & echo started')
    caplog.set_level(logging.INFO, logger="carpd")

    async def scenario() -> Outcome:
        outcome = await run([str(prog)], timeout=30, leftovers="leave", label="test")
        assert process._background, "the leftover's output is not read any more"

        def say() -> None:
            with open(fifo, "w") as f:
                f.write("hello\n")

        await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, say), 5)
        # The reader closes the transport at the end of the output: the child is done.
        await asyncio.wait_for(asyncio.gather(*process._background), 5)
        return outcome

    assert asyncio.run(scenario()).ok
    assert caplog.messages.index("test: started") < caplog.messages.index("test: later: hello")


def test_exit_status_and_death_by_signal_are_told_apart(tmp_path: Path) -> None:
    three = script(tmp_path, "three", "exit 3")
    term = script(tmp_path, "term", "kill -TERM $$")
    outcome, _ = timed(run([str(three)], timeout=5))
    assert (outcome.status, outcome.timed_out, outcome.error, outcome.ok) == (3, False, None, False)
    outcome, _ = timed(run([str(term)], timeout=5))
    assert (outcome.status, outcome.timed_out, outcome.error) == (-signal.SIGTERM, False, None)


def test_a_program_that_cannot_start(tmp_path: Path) -> None:
    outcome, _ = timed(run([str(tmp_path / "missing")], timeout=5))
    assert (outcome.status, outcome.timed_out, outcome.ok) == (None, False, False)
    assert outcome.error is not None and outcome.error.startswith("could not start: ")


def test_the_output_tail_is_kept_and_bounded(tmp_path: Path) -> None:
    lines = script(
        tmp_path, "lines", "i=1; while [ $i -le 100 ]; do echo line $i; i=$((i+1)); done"
    )
    big = script(tmp_path, "big", "head -c 100000 /dev/zero | tr '\\0' x; echo; echo END")
    outcome, _ = timed(run([str(lines)], timeout=5, lines=7))
    assert outcome.output.splitlines() == [f"line {i}" for i in range(94, 101)]
    outcome, _ = timed(run([str(big)], timeout=5, lines=None, tail_bytes=500))
    assert len(outcome.output.encode()) == 500 and outcome.output.endswith("x\nEND\n")


def test_what_is_captured(tmp_path: Path) -> None:
    both = script(tmp_path, "both", "echo one; echo two >&2; echo three")
    outcome, _ = timed(run([str(both)], timeout=5, capture="output"))
    assert outcome.output == "one\ntwo\nthree"  # one pipe: in the order written
    outcome, _ = timed(run([str(both)], timeout=5, capture="stderr"))
    assert outcome.output == outcome.stderr == "two"
    outcome, _ = timed(run([str(both)], timeout=5, capture="none"))
    assert (outcome.status, outcome.output) == (0, "")


def test_stdin_is_fed_then_closed(tmp_path: Path) -> None:
    data = b"x" * 1_000_000  # more than a pipe holds: written as the program reads
    outcome, _ = timed(run(["wc", "-c"], timeout=5, stdin=data))
    assert (outcome.status, outcome.output.strip()) == (0, str(len(data)))


def test_without_stdin_it_reads_dev_null(tmp_path: Path) -> None:
    prog = script(tmp_path, "stdin", "readlink /proc/$$/fd/0")
    outcome, _ = timed(run([str(prog)], timeout=5))
    assert outcome.output == "/dev/null"


def test_env_is_its_whole_environment(tmp_path: Path) -> None:
    prog = script(tmp_path, "env", 'echo "$ONLY:${HOME-unset}"')
    outcome, _ = timed(run([str(prog)], timeout=5, env={"ONLY": "this"}))
    assert outcome.output == "this:unset"


def test_it_runs_in_its_own_session(tmp_path: Path) -> None:
    # Field 6 of /proc/PID/stat is the session id; a session leader's is its own pid.
    prog = script(tmp_path, "session", 'set -- $(sed "s/.*) //" /proc/$$/stat); [ "$4" = "$$" ]')
    outcome, _ = timed(run([str(prog)], timeout=5))
    assert outcome.ok


def test_cancelling_kills_the_program_and_its_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    prog = script(tmp_path, "hang", f"sleep 60 & echo $! > {pidfile}; wait")

    async def scenario() -> None:
        task = asyncio.create_task(run([str(prog)], timeout=30, leftovers="leave"))
        while not pidfile.exists() or not pidfile.read_text().strip():
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(scenario(), 5))
    assert gone(read_pid(pidfile))


def test_a_run_cancelled_mid_spawn_lets_the_spawn_finish_then_kills_it() -> None:
    """The spawn itself is never cancelled (CPython gh-125502: a spawn cancelled half-way
    can hang 3.11 for good); what it started is killed, and the cancellation goes on."""
    spawns: list[asyncio.SubprocessTransport] = []
    cancelled_inside: list[bool] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        real = loop.subprocess_exec
        inside = asyncio.Event()

        async def watched(*args: Any, **kwargs: Any) -> Any:
            inside.set()
            try:
                transport, proto = await real(*args, **kwargs)
            except asyncio.CancelledError:
                cancelled_inside.append(True)
                raise
            spawns.append(transport)
            return transport, proto

        loop.subprocess_exec = watched  # type: ignore[method-assign]
        task = asyncio.create_task(run(["sleep", "60"], timeout=30))
        await inside.wait()  # the spawn is under way
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not cancelled_inside, "the spawn itself was cancelled"
        (transport,) = spawns
        exited = loop.create_future()
        transport._protocol.exited.add_done_callback(  # type: ignore[attr-defined]
            lambda _: exited.set_result(None)
        )
        await exited

    # `sleep 60` gone within the 5 s bound: killed. (Its status may read 255, not -9, when
    # asyncio's child watcher loses the race for it: CPython gh-87744.)
    asyncio.run(asyncio.wait_for(scenario(), 5))
    assert spawns[0].get_returncode() is not None


def test_a_label_logs_the_run_its_lines_and_its_result(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    prog = script(tmp_path, "say", "echo out; echo err >&2; exit 2")
    caplog.set_level(logging.INFO, logger="carpd")
    outcome, _ = timed(run([str(prog)], timeout=5, capture="stderr", label="carp1: up hook"))
    assert outcome.output == "err"
    # carpd's lines only: asyncio may warn here about a child of an earlier test.
    lines = [r.getMessage() for r in caplog.records if r.name == "carpd"]
    assert lines[0] == f"carp1: up hook: running [{prog}]"
    assert sorted(lines[1:3]) == ["carp1: up hook: err", "carp1: up hook: out"]
    assert lines[3:] == ["carp1: up hook exited with status 2"]
