"""The control socket answers malformed requests with an error and keeps serving."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

from carpd.daemon.control import ControlServer
from carpd.daemon.ratelimit import RateLimiter


async def exchange(path: Path, lines: list[bytes]) -> list[dict[str, Any]]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    replies = []
    for line in lines:
        writer.write(line)
        await writer.drain()
        replies.append(json.loads(await reader.readline()))
    writer.close()
    return replies


def test_malformed_requests_get_errors_and_the_server_keeps_going(tmp_path: Path) -> None:
    async def scenario() -> list[dict[str, Any]]:
        def boom(_req: dict[str, Any]) -> None:
            raise RuntimeError("handler failed")

        server = ControlServer(
            tmp_path / "c.sock", {"status": lambda _r: {"vhosts": []}, "boom": boom}
        )
        await server.start()
        assert stat.S_IMODE((tmp_path / "c.sock").stat().st_mode) == 0o660
        try:
            return await exchange(
                server.path,
                [
                    b"not json\n",
                    b"[1, 2]\n",
                    b'{"command": "nope"}\n',
                    b'{"command": "boom"}\n',
                    b'{"command": "status"}\n',
                ],
            )
        finally:
            await server.close()

    replies = asyncio.run(scenario())
    assert [r["ok"] for r in replies] == [False, False, False, False, True]
    assert "not JSON" in replies[0]["error"]
    assert "unknown command 'nope'" in replies[2]["error"]
    assert replies[3]["error"] == "handler failed"
    assert replies[4]["result"] == {"vhosts": []}
    assert not (tmp_path / "c.sock").exists()


def test_rate_limiter_counts_what_it_hid() -> None:
    rl = RateLimiter(interval=10)
    assert rl.allow("k", 0.0) == 0
    assert rl.allow("k", 1.0) is None
    assert rl.allow("k", 2.0) is None
    assert rl.allow("other", 2.0) == 0
    assert rl.allow("k", 10.0) == 2
