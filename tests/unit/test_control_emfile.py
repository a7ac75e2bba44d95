"""The control socket out of file descriptors: a few log lines, then it answers again."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from carpd.ctl.main import Unreachable, request

CHILD = textwrap.dedent(
    """
    import asyncio, logging, os, resource, sys
    from pathlib import Path
    from carpd.daemon.service.control import ControlServer

    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(name)s %(message)s")

    async def main():
        loop = asyncio.get_running_loop()
        server = ControlServer(Path(sys.argv[1]), {"status": lambda request: {"up": True}})
        await server.start()
        # Room for a few connections beyond what it uses now: then EMFILE.
        soft = len(os.listdir("/proc/self/fd")) + 4
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.read)
        await server.close()

    asyncio.run(main())
    """
)
WINDOW = 3.0  # seconds out of file descriptors: three retries of accept()
ANSWER = 5.0  # seconds for the first answer once the descriptors are back (a retry is 1 s)


def run(tmp_path: Path) -> tuple[list[str], dict[str, object]]:
    """The child's log lines while 30 clients hold the socket, and its answer after."""
    path = tmp_path / "ctl.sock"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    clients: list[socket.socket] = []
    reply: dict[str, object] = {}
    try:
        assert proc.stdout.readline() == b"ready\n"
        for _ in range(30):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                c.connect(str(path))
            clients.append(c)
        time.sleep(WINDOW)  # a window to count log lines in: there is no event to await
        for c in clients:
            c.close()
        clients = []
        deadline = time.monotonic() + ANSWER
        while not reply:
            try:
                reply = request(str(path), {"command": "status"}, timeout=1.0)
            except Unreachable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        for c in clients:
            c.close()
        _, err = proc.communicate(b"", timeout=30)
    return err.decode().splitlines(), reply


def test_running_out_of_file_descriptors_is_one_line_and_the_socket_recovers(
    tmp_path: Path,
) -> None:
    """30 clients against a server with room for 4 more descriptors: asyncio's own accept
    loop (start_unix_server) logged thousands of traceback lines in this window and as
    many again when the server closed (a retry queued per failed accept)."""
    lines, reply = run(tmp_path)
    assert reply == {"ok": True, "result": {"up": True}}
    assert len(lines) == 1, lines[:40]
    assert "ctl.sock: accept() failed: Too many open files; retried every 1 s" in lines[0]
