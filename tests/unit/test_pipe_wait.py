"""nft and the pool's `ip maddr` are done when the program exits, not when its output
pipe closes: a child it left running that holds the pipe once kept them waiting
(communicate()), nft up to its 10 s timeout and then an error, ip for good. Fake
programs stand in for both (unit tests never run the host's nft nor touch its links)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from test_service_checks import gone, read_pid, script

from carpd.daemon.effects.pool import _ip
from carpd.linux import nft

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
