"""nft, the pool's `ip maddr` and sync's checks and after-commands are done when the
program exits, not when its output pipe closes: a child it left running that holds the
pipe once kept them waiting (communicate()): nft up to its 10 s timeout and then an
error, ip for good, sync up to its 60 s and then a failure. Fake programs stand in for
nft and ip (unit tests never run the host's nft nor touch its links)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from test_service_checks import gone, read_pid, script
from test_sync import agent_apply

from carpd.daemon.effects.pool import _ip
from carpd.linux import nft
from carpd.sync import agent as agent_module
from carpd.sync.agent import Agent
from carpd.sync.scope import Root, Scope

PROMPT = 2.0  # seconds: the runner's output and kill graces, and some


def test_nft_apply_does_not_wait_for_a_leftover_holding_its_pipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pidfile = tmp_path / "child.pid"
    seen = tmp_path / "script"
    fake = script(tmp_path, "nft", f"cat > {seen}; sleep 60 & echo $! > {pidfile}; exit 0")
    monkeypatch.setattr(nft, "NFT", str(fake))
    monkeypatch.setattr(nft, "NFT_TIMEOUT", 5.0)  # before: "no answer within 5 s"
    start = time.monotonic()
    asyncio.run(nft.apply("add table inet carpd\n"))
    took = time.monotonic() - start
    assert took < PROMPT, f"nft.apply waited {took:.1f} s for nft's leftover child"
    assert seen.read_text() == "add table inet carpd\n"
    assert gone(read_pid(pidfile)), "nft's leftover child survived"


def test_pool_ip_does_not_wait_for_a_leftover_holding_its_pipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pidfile = tmp_path / "child.pid"
    args = tmp_path / "args"
    bin_dir = tmp_path / "bin"
    script(bin_dir, "ip", f'echo "$@" > {args}; sleep 60 & echo $! > {pidfile}; exit 0')
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    start = time.monotonic()
    # Before: no bound at all (the child's 60 s); 5 s here turns that into a failure.
    asyncio.run(asyncio.wait_for(_ip("maddr", "add", "00:00:5e:00:01:01", "dev", "eth9"), 5))
    took = time.monotonic() - start
    assert took < PROMPT, f"_ip waited {took:.1f} s for ip's leftover child"
    assert args.read_text() == "maddr add 00:00:5e:00:01:01 dev eth9\n"
    assert gone(read_pid(pidfile)), "ip's leftover child survived"


def test_pool_ip_failures_still_raise_but_file_exists_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    fake = script(bin_dir, "ip", "echo 'RTNETLINK answers: File exists' >&2; exit 2")
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    asyncio.run(_ip("maddr", "add", "00:00:5e:00:01:01", "dev", "eth9"))
    fake.write_text("#!/bin/sh\necho 'Cannot find device \"eth9\"' >&2; exit 1\n")
    with pytest.raises(
        RuntimeError, match=r'^ip maddr del .* dev eth9: Cannot find device "eth9"$'
    ):
        asyncio.run(_ip("maddr", "del", "00:00:5e:00:01:01", "dev", "eth9"))


def test_sync_check_and_after_command_do_not_wait_for_a_leftover_holding_the_pipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The peer's agent once ran them with subprocess.run, which waits for the pipe: a
    check's or an after-command's child kept the push waiting up to COMMAND_TIMEOUT
    (then a "failed" check, 127). A check's leftover is killed; an after-command's (a
    daemon it restarted) keeps running."""
    conf = tmp_path / "app.conf"
    conf.write_text("old\n")
    checked, restarted = tmp_path / "check.pid", tmp_path / "after.pid"
    check = ("sh", "-c", f"sleep 60 & echo $! > {checked}; echo checked {{new}}")
    after = ("sh", "-c", f"sleep 60 & echo $! > {restarted}; echo restarted")
    agent = Agent(tmp_path / "state", 5.0, Scope([Root(str(conf), check=check, after=after)]))
    monkeypatch.setattr(agent_module, "COMMAND_TIMEOUT", 5.0)  # before: 5 s each, then 127
    expect = agent.scope.info(str(conf))
    assert expect is not None
    start = time.monotonic()
    answer = agent_apply(agent, conf, b"new\n", expect=expect.sha256)
    took = time.monotonic() - start
    child = read_pid(restarted)
    try:
        assert answer["ok"] is True, answer
        assert took < 2 * PROMPT, f"the push waited {took:.1f} s for leftover children"
        assert answer["after"] == [{"path": str(conf), "status": 0, "output": "restarted"}]
        assert conf.read_text() == "new\n"
        assert gone(read_pid(checked)), "the check's leftover child survived"
        assert not gone(child, within=0), "the after-command's daemon was killed"
    finally:
        os.kill(child, signal.SIGKILL)
