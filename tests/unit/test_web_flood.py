"""A flood of connections against the real status page on loopback (issue 26, item 4):
max_connections bounds what the server holds even when every connection arrives at once
or never finishes its TLS handshake, one source cannot take all of it, and running out
of file descriptors is logged a few times, not thousands."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers_web import closed_by_server, free_port, http, self_signed, settle, web

from carpd.web import accept


def burst(port: int, count: int, source: str = "127.0.0.1") -> list[socket.socket]:
    """``count`` connections opened without letting the loop (and so the server) run in
    between: the kernel completes them all before carpd accepts the first."""
    clients = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        clients.append(sock)
    return clients


def test_a_burst_of_connections_is_held_to_max_connections() -> None:
    """100 connections at once against max_connections = 8 (before: all of them held,
    as aiohttp counts a connection only once it is set up): never more than one over the
    cap at any turn, the 8 newest kept, and the page still answers."""
    port = free_port()

    async def main() -> None:
        ws = web(port, max_connections=8)
        await ws.start()
        clients = burst(port, 100)
        try:
            peak, held = await settle(port)
            assert peak <= 9 and held == 8, (peak, held)
            kept = [c for c in clients if not closed_by_server(c)]
            assert kept == clients[-8:]
            assert (await http(port))[0] == 200
        finally:
            for c in clients:
                c.close()
            await ws.close()

    asyncio.run(main())


def test_one_source_holds_at_most_max_per_source() -> None:
    port = free_port()

    async def main() -> None:
        ws = web(port, max_connections=64)
        await ws.start()
        many, others = burst(port, 40, "127.0.0.1"), []
        try:
            await settle(port)
            assert sum(not closed_by_server(c) for c in many) == accept.MAX_PER_SOURCE
            others = burst(port, 5, "127.0.0.2")  # another address still gets in
            _, held = await settle(port)
            assert held == accept.MAX_PER_SOURCE + 5
            assert not any(closed_by_server(c) for c in others)
            assert (await http(port, source="127.0.0.3"))[0] == 200
        finally:
            for c in many + others:
                c.close()
            await ws.close()

    asyncio.run(main())


def test_tls_connections_count_from_accept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """30 TCP connections that never send a ClientHello against max_connections = 8
    (before: all 30 held, uncounted until a handshake that could take 60 s). The
    handshakes' timeout is out of the way here: the next test has it."""
    monkeypatch.setattr(accept, "HANDSHAKE_TIMEOUT", 60.0)
    cert, key = self_signed(tmp_path)
    port = free_port()

    async def main() -> None:
        ws = web(port, max_connections=8, tls_cert=str(cert), tls_key=str(key))
        await ws.start()
        clients = burst(port, 30)
        try:
            peak, held = await settle(port)
            assert peak <= 9 and held == 8, (peak, held)
        finally:
            for c in clients:
                c.close()
            await ws.close()

    asyncio.run(main())


def test_a_tls_handshake_that_never_comes_times_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connections that send no ClientHello are cut when HANDSHAKE_TIMEOUT is up (before:
    aiohttp's 60 s), and the page still answers a real client."""
    monkeypatch.setattr(accept, "HANDSHAKE_TIMEOUT", HANDSHAKE)
    cert, key = self_signed(tmp_path)
    port = free_port()

    async def main() -> None:
        ws = web(port, max_connections=8, tls_cert=str(cert), tls_key=str(key))
        await ws.start()
        clients = burst(port, 3)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + HANDSHAKE + CUT_MARGIN
            while not all(closed_by_server(c) for c in clients):
                assert loop.time() < deadline, "a TLS handshake did not time out"
                await asyncio.sleep(0.05)
            assert (await http(port, tls=True))[0] == 200
        finally:
            for c in clients:
                c.close()
            await ws.close()

    asyncio.run(main())


HANDSHAKE = 1.0  # seconds: the handshake timeout the test sets
CUT_MARGIN = 5.0  # seconds for the server's timer to fire and close, on a loaded machine


CHILD = textwrap.dedent(
    """
    import asyncio, logging, os, resource, sys
    from unittest import mock
    from carpd.config.model import WebConfig
    from carpd.web.server import WebServer

    port = int(sys.argv[1])
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(name)s %(message)s")

    async def main():
        cfg = WebConfig.model_validate({"enabled": True, "port": port, "max_connections": 1000})
        ws = WebServer(cfg, view=mock.Mock(), handlers={})
        await ws.start()
        # Room for a few connections beyond what it uses now: then EMFILE.
        soft = len(os.listdir("/proc/self/fd")) + 8
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await ws.close()

    asyncio.run(main())
    """
)
WINDOW = 2.0  # seconds of fd exhaustion: the old accept loop wrote thousands of lines in it


def test_running_out_of_file_descriptors_is_logged_a_few_times_and_recovers(
    tmp_path: Path,
) -> None:
    """A server whose fd limit is just above what it uses, then 100 connections held:
    accept() fails with EMFILE for WINDOW seconds. The log says so a few times (before:
    asyncio logged a traceback per failed accept, thousands), and once the connections
    go, the page answers again."""
    port = free_port()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdin is not None
    clients: list[socket.socket] = []
    status = 0
    try:
        assert proc.stdout.readline() == b"ready\n"
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
        time.sleep(WINDOW)  # a window to count log lines in: there is no event to await
        for c in clients:
            c.close()
        clients = []
        with contextlib.suppress(OSError, TimeoutError):
            status = asyncio.run(answered(port, deadline=5.0))
    finally:
        for c in clients:
            c.close()
        _, err = proc.communicate(b"", timeout=30)
    lines = err.decode().splitlines()
    print("\n".join(lines[:20]))
    assert len(lines) <= 5, f"{len(lines)} log lines"
    assert any("Too many open files" in line for line in lines), lines
    assert status == 200, "the page did not answer once the connections were gone"


async def answered(port: int, deadline: float) -> int:
    """The status of a GET, retried while the server still cannot take it."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        try:
            return (await asyncio.wait_for(http(port), 1.0))[0]
        except (OSError, TimeoutError, ValueError, IndexError):  # refused, cut, no answer
            if loop.time() > end:
                raise
            await asyncio.sleep(0.1)
