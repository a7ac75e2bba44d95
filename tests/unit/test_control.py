"""The control socket answers malformed requests with an error and keeps serving."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from carpd.ctl.main import request
from carpd.daemon.seam.ratelimit import RateLimiter
from carpd.daemon.service.control import ControlServer


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


def test_carpctl_reads_the_reply_of_a_daemon_that_hung_up_without_reading(
    tmp_path: Path,
) -> None:
    """A refusing carpd (the peer's credentials) replies and closes at once: carpctl's
    send then fails (here every time: the request is bigger than the socket's buffer),
    and it must still print the refusal, not "Broken pipe"."""
    path = tmp_path / "refusing.sock"
    refusal = {"ok": False, "error": "permission denied"}
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen(1)

        def refuse() -> None:
            conn, _ = server.accept()
            conn.sendall(json.dumps(refusal).encode() + b"\n")
            conn.close()

        thread = threading.Thread(target=refuse)
        thread.start()
        try:
            reply = request(str(path), {"command": "status", "pad": "x" * (4 << 20)}, timeout=10)
        finally:
            thread.join()
    assert reply == refusal


def test_carpctl_into_a_reader_that_stops_early_says_nothing_of_it(tmp_path: Path) -> None:
    """`carpctl status --json | head`: the closed pipe is the reader's choice, no
    traceback."""
    path = tmp_path / "carpd.sock"
    big = {"ok": True, "result": {"vhosts": ["x" * 100] * 10_000}}
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen(1)

        def answer() -> None:
            conn, _ = server.accept()
            conn.makefile("rb").readline()
            conn.sendall(json.dumps(big).encode() + b"\n")
            conn.close()

        thread = threading.Thread(target=answer)
        thread.start()
        try:
            shell = f"{sys.executable} -m carpd.ctl --socket {path} status --json | head -c 10"
            result = subprocess.run(
                ["sh", "-c", shell],
                capture_output=True,
                text=True,
                timeout=60,
            )
        finally:
            thread.join()
    assert result.stdout == '{\n  "vhost'
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr


def test_a_symlink_swapped_in_after_bind_is_refused_not_chmodded(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Someone who can write the socket's directory replaces the fresh socket with a
    symlink to a file of root's: the old chmod/chown after bind() followed it."""
    victim = tmp_path / "victim"
    victim.write_text("root's\n")
    victim.chmod(0o600)
    path = tmp_path / "c.sock"
    bind = socket.socket.bind

    def bind_then_swap(sock: socket.socket, address: Any) -> None:
        bind(sock, address)
        if address == str(path):
            path.rename(tmp_path / "moved.sock")
            path.symlink_to(victim)

    monkeypatch.setattr(socket.socket, "bind", bind_then_swap)
    server = ControlServer(path, {}, group="root")
    refused: OSError | None = None
    try:
        asyncio.run(server.start())
    except OSError as e:
        refused = e
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600  # not chmodded through the link
    assert refused is not None and "not a socket" in str(refused)


def test_the_socket_is_born_with_its_mode(tmp_path: Path, monkeypatch: Any) -> None:
    """No window in which the socket has the umask's mode (e.g. 0777 under umask 0)."""
    modes = []
    bind = socket.socket.bind

    def bind_and_look(sock: socket.socket, address: Any) -> None:
        bind(sock, address)
        modes.append(stat.S_IMODE(Path(address).stat().st_mode))

    monkeypatch.setattr(socket.socket, "bind", bind_and_look)

    async def scenario() -> None:
        server = ControlServer(tmp_path / "c.sock", {})
        await server.start()
        await server.close()

    old = os.umask(0)
    try:
        asyncio.run(scenario())
        restored = os.umask(0)
    finally:
        os.umask(old)
    assert modes == [0o660]
    assert restored == 0  # carpd put the process's umask back
