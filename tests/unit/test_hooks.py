"""Up/down hooks (carpd.linux.hooks), run as [[action]]s are (effects/actions.run_programs,
through effects/hooks.program): real subprocesses, no network."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path

import pytest
from test_service_checks import gone, read_pid, script

from carpd.daemon.effects.actions import run_programs
from carpd.daemon.effects.hooks import program
from carpd.daemon.seam.events import ActionRan, Event
from carpd.linux.hooks import HookCall
from carpd.linux.process import Outcome


def call(path: Path) -> HookCall:
    return HookCall(
        name="carp1",
        kind="up",
        path=str(path),
        interface="eth0",
        addresses=["192.0.2.100"],
        xparam=None,
        vhid=1,
        state="MASTER",
    )


def run_hook(call: HookCall, timeout: float, published: list[Event] | None = None) -> Outcome:
    """The hook run as the Hooks effect runs it: its outcome."""
    out = published if published is not None else []
    ((_, outcome),) = asyncio.run(
        run_programs([program(call, timeout)], "master", "MASTER", out.append)
    )
    return outcome


def test_a_hook_that_leaves_a_background_child_is_done_when_it_exits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`daemon &` in a hook: the hook exits 0 at once, the child keeps its output pipe.
    The hook is done (status 0, not "killed"), its output is logged, and its child is left
    running, as it would be from a shell."""
    pidfile = tmp_path / "child.pid"
    hook = script(tmp_path, "up", f"sleep 30 & echo $! > {pidfile}\necho started it")
    caplog.set_level(logging.INFO, logger="carpd")
    start = time.monotonic()
    status = run_hook(call(hook), timeout=5.0).status
    took = time.monotonic() - start
    child = read_pid(pidfile)
    try:
        assert status == 0
        assert took < 5.0, f"waited {took:.1f} s for a hook that exited at once"
        assert "carp1: up hook: started it" in caplog.messages
        assert not [m for m in caplog.messages if "killed" in m]
        assert not gone(child, within=0)
    finally:
        os.kill(child, signal.SIGKILL)


def test_a_hook_that_does_not_exit_is_killed_with_its_children(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pidfile = tmp_path / "child.pid"
    hook = script(tmp_path, "up", f"sleep 30 & echo $! > {pidfile}\necho waiting\nsleep 30")
    caplog.set_level(logging.INFO, logger="carpd")
    outcome = run_hook(call(hook), timeout=0.5)
    assert (outcome.status, outcome.error) == (None, "killed after 0.5 s")
    assert f"carp1: up hook {hook} killed after 0.5 s" in caplog.messages
    assert "carp1: up hook: waiting" in caplog.messages
    assert gone(read_pid(pidfile))


def test_a_failing_hook_reports_its_status_and_output(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hook = script(tmp_path, "up", "echo no luck\nprintf 'no newline' >&2\nexit 3")
    caplog.set_level(logging.INFO, logger="carpd")
    published: list[Event] = []
    outcome = run_hook(call(hook), 5.0, published)
    assert (outcome.status, outcome.stderr, outcome.ok) == (3, "no newline", False)
    ran = [e for e in published if isinstance(e, ActionRan)]
    assert ran == published
    assert [(e.target, e.action, e.phase, e.state, e.outcome) for e in ran] == [
        ("carp1", "up hook", "master", "MASTER", outcome)
    ]
    assert caplog.messages[-3:] == [
        "carp1: up hook: no luck",
        "carp1: up hook: no newline",
        "carp1: up hook exited with status 3",
    ]
