"""Shared helpers for the status page's tests against a real server on loopback: the
server, raw HTTP requests from a chosen source address, and the server's own sockets
counted from /proc."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any
from unittest import mock

from carpd.config.model import WebConfig
from carpd.web.auth import hash_password
from carpd.web.server import WebServer

USER, PASSWORD = "alice", "operator-pw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "users"
    path.write_text(f"{USER}:{hash_password(PASSWORD)}\n")
    return path


def web(port: int, handlers: dict[str, Any] | None = None, **cfg: Any) -> WebServer:
    config = WebConfig.model_validate({"enabled": True, "port": port, **cfg})
    return WebServer(config, view=mock.Mock(), handlers=handlers or {})


def basic(user: str = USER, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"]
    subprocess.run(
        ["openssl", "req", "-x509", *ec, "-keyout", str(key), "-out", str(cert), "-subj", "/CN=x"],
        check=True,
        capture_output=True,
    )
    return cert, key


async def http(
    port: int,
    method: str = "GET",
    path: str = "/",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    source: str | None = None,
    tls: bool = False,
    version: str = "1.1",
) -> tuple[int, dict[str, str], bytes]:
    """One request on a connection of its own: status, headers (lower-case names), body.
    ``headers`` may set Host (default 127.0.0.1:port) or drop it (value "")."""
    context = None
    if tls:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, local_addr=(source, 0) if source else None, ssl=context
    )
    fields = {"Host": f"127.0.0.1:{port}", "Connection": "close", **(headers or {})}
    if body:
        fields["Content-Length"] = str(len(body))
    head = "".join(f"{k}: {v}\r\n" for k, v in fields.items() if v)
    writer.write(f"{method} {path} HTTP/{version}\r\n{head}\r\n".encode() + body)
    status = int((await reader.readline()).split()[1])
    got = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        got[name.strip().lower()] = value.strip()
    data = await reader.read() if method != "HEAD" else b""
    writer.close()
    return status, got, data


def server_sockets(port: int) -> int:
    """How many connections the server on ``port`` in this process holds open: this
    process's sockets whose local port is ``port``, the listening one(s) left out."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if int(local.rsplit(":", 1)[1], 16) == port and state != "0A":  # 0A: LISTEN
                    inodes.add(inode)
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        count += link.startswith("socket:[") and link[8:-1] in inodes
    return count


def accept_queue(port: int) -> int:
    """Connections the kernel completed on ``port`` that nobody accepted yet."""
    queued = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    queued += int(fields[4].split(":")[1], 16)
    return queued


def closed_by_server(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


async def settle(port: int, steady: int = 200, limit: float = 10.0) -> tuple[int, int]:
    """Let the server take what waits in its accept queue, sampling its open sockets at
    every turn of the loop: (the most it held at once, what it holds once the queue is
    empty and the count has not moved for ``steady`` turns)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    peak, last, same = 0, -1, 0
    while loop.time() < deadline:
        now = server_sockets(port)
        peak = max(peak, now)
        same = same + 1 if now == last else 0
        last = now
        if same >= steady and accept_queue(port) == 0:
            return peak, now
        await asyncio.sleep(0)
    raise AssertionError(f"the server did not settle in {limit} s (holds {last})")
