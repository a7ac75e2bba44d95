"""The accept-mode filter's nft calls (carpd.linux.acceptmode), with a stand-in `nft`."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import pytest

from carpd.linux import nft
from carpd.linux.acceptmode import AcceptFilter, AcceptFilterError

VIP = ipaddress.ip_address("192.0.2.100")


def fake_nft(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> Path:
    """An executable that stands in for nft; what it was fed lands in ``script.nft``."""
    path = tmp_path / "nft"
    path.write_text(f"#!/bin/sh\ncat >> {tmp_path / 'script.nft'}\n{body}\n")
    path.chmod(0o755)
    monkeypatch.setattr(nft, "NFT", str(path))
    return tmp_path / "script.nft"


async def ticks_while(work: asyncio.Future[None] | asyncio.Task[None]) -> int:
    """How often a 10 ms ticker ran on the event loop while ``work`` was under way."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.get_running_loop().create_task(ticker())
    try:
        await work
    finally:
        task.cancel()
    return ticks


def test_a_slow_nft_does_not_hold_up_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nft taking 0.5 s: the loop (and so every advert) keeps running meanwhile."""
    script = fake_nft(tmp_path, monkeypatch, "sleep 0.5")

    async def main() -> int:
        f = AcceptFilter()
        return await ticks_while(asyncio.ensure_future(f.refuse([VIP])))

    assert asyncio.run(main()) >= 20  # 0.5 s of 10 ms ticks, allowing for a busy machine
    assert "add element inet carpd v4 { 192.0.2.100 }" in script.read_text()


def test_a_hung_nft_is_killed_and_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nft(tmp_path, monkeypatch, "exec sleep 30")
    monkeypatch.setattr(nft, "NFT_TIMEOUT", 0.3)
    with pytest.raises(AcceptFilterError, match=r"nft: no answer within 0.3 s"):
        asyncio.run(AcceptFilter().refuse([VIP]))


def test_nft_errors_are_reported_with_its_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_nft(tmp_path, monkeypatch, "echo 'Error: syntax error' >&2; exit 1")
    with pytest.raises(AcceptFilterError, match=r"^nft: Error: syntax error$"):
        asyncio.run(AcceptFilter().refuse([VIP]))


def test_allow_and_close_only_touch_a_table_that_was_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = fake_nft(tmp_path, monkeypatch, "exit 0")

    async def main() -> None:
        f = AcceptFilter()
        await f.allow([VIP])
        await f.close()
        assert not script.exists()  # nothing made, nothing run
        await f.refuse([VIP])
        await f.allow([VIP])
        await f.close()

    asyncio.run(main())
    text = script.read_text()
    assert "delete element inet carpd v4 { 192.0.2.100 }" in text
    assert text.endswith("delete table inet carpd\n")
