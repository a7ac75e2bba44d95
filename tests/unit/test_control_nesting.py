"""A deeply nested request on the control socket gets a clean error, not a traceback and
a dropped connection (RecursionError inside json.loads). Real unix socket."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from carpd.daemon.service.control import MAX_REQUEST, ControlServer


def test_deeply_nested_json_gets_an_error_and_the_socket_keeps_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    deep = b"[" * min(100_000, MAX_REQUEST - 2) + b"\n"

    async def scenario() -> list[dict[str, Any]]:
        server = ControlServer(tmp_path / "c.sock", {"status": lambda _r: {"vhosts": []}})
        await server.start()
        try:
            reader, writer = await asyncio.open_unix_connection(str(server.path))
            replies = []
            for line in (deep, b'{"command": "status"}\n'):
                writer.write(line)
                await writer.drain()
                replies.append(json.loads(await reader.readline()))
            writer.close()
            return replies
        finally:
            await server.close()

    replies = asyncio.run(scenario())
    assert replies[0] == {"ok": False, "error": "malformed request: not JSON"}
    assert replies[1] == {"ok": True, "result": {"vhosts": []}}
    assert "RecursionError" not in caplog.text
