"""The control socket: one JSON object per line in, one per line out.

Request:  {"command": "status", ...arguments}
Response: {"ok": true, "result": {...}} or {"ok": false, "error": "..."}

A handler may return an async iterator instead (``events``): then the response is
{"ok": true, "result": "streaming"}, followed by one JSON object per line for as long as
the client stays connected.

The socket is the only door: mode 0660, owner root, group ``control_group``; the peer's
credentials (SO_PEERCRED) are checked too, so a copy of the socket's permissions
elsewhere cannot widen who may steer the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import grp
import inspect
import json
import logging
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from carpd.daemon.seam.ratelimit import RateLimiter

log = logging.getLogger("carpd")

MAX_REQUEST = 64 * 1024
BACKLOG = 100  # connections the kernel queues before connect() waits (asyncio's default)
RETRY = 1.0  # seconds before accept() is tried again when out of file descriptors
ERROR_LOG = 10.0  # seconds between two log lines of a failing accept()
CLOSE_WAIT = 1.0  # seconds for open connections to end once the socket closes
Handler = Callable[[dict[str, Any]], Awaitable[Any] | Any]


class Refused(Exception):
    """A well-formed request that is not carried out; its text goes back to the client."""


def peer_groups(pid: int) -> set[int]:
    """The supplementary groups of a peer process, from /proc (empty if it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Groups:"):
                    return {int(g) for g in line.split()[1:]}
    except OSError:
        pass
    return set()


class ControlServer:
    def __init__(
        self,
        path: Path,
        handlers: dict[str, Handler],
        mode: int = 0o660,
        group: str | None = None,
    ) -> None:
        self.path = path
        self.handlers = handlers
        self.mode = mode
        self.gid = grp.getgrnam(group).gr_gid if group else None
        self._sock: socket.socket | None = None  # listening
        self._retry: asyncio.TimerHandle | None = None  # accept() again after EMFILE
        self._errors = RateLimiter(ERROR_LOG)
        self._tasks: set[asyncio.Task[None]] = set()  # one per connection
        self._writers: set[asyncio.StreamWriter] = set()  # open connections (followers)

    def allowed(self, pid: int, uid: int, gid: int) -> bool:
        if uid in (0, os.geteuid()):
            return True
        if self.gid is None:
            return False
        return gid == self.gid or self.gid in peer_groups(pid)

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        # bind() creates the socket with its mode (the umask), and the group is set with
        # lchown on a path checked to be a socket: neither follows a symlink that someone
        # who can write the directory swapped in after bind().
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            umask = os.umask(0o777 & ~self.mode)
            try:
                sock.bind(str(self.path))
            finally:
                os.umask(umask)
            if not stat.S_ISSOCK(os.lstat(self.path).st_mode):
                raise OSError(f"{self.path} was replaced after bind(): not a socket")
            if self.gid is not None:
                os.lchown(self.path, 0, self.gid)
            sock.listen(BACKLOG)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock, self._accept)

    def _accept(self) -> None:
        """Our own accept loop rather than asyncio's start_unix_server: out of file
        descriptors, asyncio's schedules a retry per queued connection and logs a traceback
        for each (thousands, and as many more when the server closes); here it is one retry
        and one log line per ERROR_LOG seconds, while the adverts go on."""
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as e:
            if e.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                raise
            hidden = self._errors.allow("accept", loop.time())
            if hidden is not None:
                more = f" ({hidden} more not logged)" if hidden else ""
                log.error("control socket %s: accept() failed: %s; retried every %g s%s",
                          self.path, e.strerror, RETRY, more)  # fmt: skip
            loop.remove_reader(self._sock)
            self._retry = loop.call_later(RETRY, loop.add_reader, self._sock, self._accept)
            return
        task = asyncio.ensure_future(self._connected(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connected(self, conn: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_unix_connection(sock=conn, limit=MAX_REQUEST)
        except OSError:
            conn.close()
            return
        await self._serve(reader, writer)

    async def close(self) -> None:
        if self._sock is not None:
            if self._retry is not None:
                self._retry.cancel()
            asyncio.get_running_loop().remove_reader(self._sock)
            self._sock.close()
            self._sock = None
        for writer in list(self._writers):  # `carpctl events` would hold on forever
            writer.close()
        if self._tasks:  # their replies written; a handler still busy ends with the loop
            await asyncio.wait(list(self._tasks), timeout=CLOSE_WAIT)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, gid = struct.unpack("3i", creds)
        self._writers.add(writer)
        try:
            if not self.allowed(pid, uid, gid):
                log.warning("control: refused a request from uid %d (pid %d)", uid, pid)
                await self._reply(writer, {"ok": False, "error": "permission denied"})
                return
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    await self._reply(writer, {"ok": False, "error": "request too long"})
                    return
                if not line:
                    return
                reply = await self._handle(line)
                stream = reply.pop("stream", None)
                await self._reply(writer, reply)
                if stream is not None:
                    await self._stream(reader, writer, stream)
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _handle(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):  # too deep too
            return {"ok": False, "error": "malformed request: not JSON"}
        if not isinstance(request, dict) or not isinstance(request.get("command"), str):
            return {"ok": False, "error": 'malformed request: expected {"command": "..."}'}
        handler = self.handlers.get(request["command"])
        if handler is None:
            known = ", ".join(sorted(self.handlers))
            return {"ok": False, "error": f"unknown command {request['command']!r} ({known})"}
        try:
            result = handler(request)
            if inspect.isasyncgen(result):
                return {"ok": True, "result": "streaming", "stream": result}
            if asyncio.iscoroutine(result):
                result = await result
        except Refused as e:
            return {"ok": False, "error": str(e)}
        except Exception as e:  # a bad request must never take the daemon down
            log.exception("control command %s failed", request["command"])
            return {"ok": False, "error": str(e)}
        return {"ok": True, "result": result}

    async def _stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream: Any
    ) -> None:
        """Until the stream ends or the client hangs up (EOF on its side)."""

        async def pump() -> None:
            async for item in stream:
                await self._reply(writer, item)

        pumping = asyncio.ensure_future(pump())
        hangup = asyncio.ensure_future(reader.read())
        try:
            await asyncio.wait([pumping, hangup], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pumping, hangup):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await task
            await stream.aclose()

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, obj: dict[str, Any]) -> None:
        writer.write(json.dumps(obj).encode() + b"\n")
        await writer.drain()
