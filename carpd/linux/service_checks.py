"""Service checks, as OPNsense's carp_service_status does, but concurrent and bounded.

Every executable file in one directory is a check: exit status 0 means the service it
watches is fine, anything else means it is not. If any check fails, the node demotes
itself by SERVICE_DEMOTION (2**20, high enough that "is it set?" is a bitwise and).

OPNsense runs the scripts one after the other and waits for each. carpd runs them all at
once as asyncio subprocesses, each in its own session, and kills a check's whole process
group with SIGKILL when it has not exited within the timeout: a hanging check fails, but
never stalls the others nor the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("carpd")

SERVICE_DEMOTION = 1 << 20

OUTPUT_BYTES = 4096  # at most this much of a check's output is kept (its tail) ...
OUTPUT_LINES = 20  # ... and of that, at most the last this many lines
_KILL_GRACE = 0.5  # after SIGKILL, how long to wait for the output pipe to close


def disruption_message(failed: Sequence[str]) -> str:
    """The log line for a demotion, in OPNsense's words."""
    return (
        f"carp demoted by {SERVICE_DEMOTION} due to service disruption "
        f"(services: {', '.join(failed)})"
    )


def recovery_message() -> str:
    """The log line for the end of a demotion, in OPNsense's words."""
    return f"carp promoted by {SERVICE_DEMOTION} due to service recovery"


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str  # the check's file name
    ok: bool
    status: int | None  # exit status (negative: killed by that signal); None: no start/timeout
    timed_out: bool
    duration: float  # seconds
    output: str  # the tail of stdout and stderr, interleaved

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "status": self.status,
            "timed_out": self.timed_out,
            "duration": self.duration,
            "output": self.output,
        }


@dataclass(frozen=True, slots=True)
class ServiceReport:
    results: tuple[CheckResult, ...]  # sorted by name
    directory: Path
    directory_exists: bool

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(sorted(r.name for r in self.results if not r.ok))

    @property
    def healthy(self) -> bool:
        return not self.failed

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "directory_exists": self.directory_exists,
            "healthy": self.healthy,
            "failed": list(self.failed),
            "results": [r.to_json() for r in self.results],
        }


def find_checks(directory: Path) -> list[Path] | None:
    """The checks in `directory`, sorted by name; None if there is no such directory.

    A check is a regular file (or a symlink to one) directly in the directory, executable
    by us, whose name does not start with a dot. Other errors reading the directory (e.g.
    permission denied) are raised: they should not pass for "no checks, all healthy".
    """
    try:
        entries = sorted(directory.iterdir(), key=lambda p: p.name)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return [
        p for p in entries if not p.name.startswith(".") and p.is_file() and os.access(p, os.X_OK)
    ]


async def run_service_checks(directory: Path, timeout: float) -> ServiceReport:
    """Run every check in `directory` at once; each gets at most `timeout` seconds."""
    checks = find_checks(directory)
    if checks is None:
        log.debug("service checks: %s does not exist, no checks", directory)
        return ServiceReport(results=(), directory=directory, directory_exists=False)
    results = await asyncio.gather(*(run_check(path, timeout) for path in checks))
    return ServiceReport(results=tuple(results), directory=directory, directory_exists=True)


class _Tail:
    """The last OUTPUT_BYTES bytes written to it."""

    def __init__(self) -> None:
        self.data = bytearray()

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > OUTPUT_BYTES:
            del self.data[: len(self.data) - OUTPUT_BYTES]

    def text(self) -> str:
        lines = self.data.decode(errors="replace").splitlines()
        return "\n".join(lines[-OUTPUT_LINES:])


class _CheckProtocol(asyncio.SubprocessProtocol):
    """Tells the check's exit apart from the end of its output.

    asyncio's Process.wait() returns only once the output pipe is closed too, and a
    check's leftover background child can hold that open long after the check exited.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.tail = _Tail()
        self.exited: asyncio.Future[None] = loop.create_future()
        self.eof: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self.tail.add(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if not self.eof.done():
            self.eof.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


def _kill_group(pgid: int) -> None:
    # The check runs in its own session, so its process group id is its pid.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _remaining(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.0)


async def run_check(path: Path, timeout: float) -> CheckResult:
    """Run one check with no arguments; never raises for the check's own failures."""
    name = path.name
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    deadline = start + timeout
    try:
        transport, proto = await loop.subprocess_exec(
            lambda: _CheckProtocol(loop),
            str(path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as e:
        log.warning("service check %s could not start: %s", name, e)
        return CheckResult(name, False, None, False, time.monotonic() - start, str(e))
    pid = transport.get_pid()
    try:
        # The check itself: it exits in time, or it and its process group are killed.
        timed_out = False
        done, _ = await asyncio.wait({proto.exited}, timeout=_remaining(deadline))
        if not done:
            _kill_group(pid)
            await proto.exited
            timed_out = True
        duration = time.monotonic() - start
        status = None if timed_out else transport.get_returncode()
        # The rest of its output. Something it left behind may hold the pipe open until
        # the deadline; then that goes the way of a hanging check.
        done, _ = await asyncio.wait({proto.eof}, timeout=_remaining(deadline))
        if not done:
            _kill_group(pid)
            # Anything that escaped the group (setsid) we stop listening to, below.
            await asyncio.wait({proto.eof}, timeout=_KILL_GRACE)
    finally:
        if not proto.exited.done() or not proto.eof.done():
            # Cancelled (the daemon is stopping): leave nothing running, and reap it.
            _kill_group(pid)
            await asyncio.wait({proto.exited}, timeout=_KILL_GRACE)
        transport.close()
    output = proto.tail.text()
    ok = status == 0
    if timed_out:
        log.warning("service check %s killed after %.1f s", name, timeout)
    elif not ok:
        log.warning("service check %s failed with exit status %s", name, status)
    if not ok:
        for line in output.splitlines():
            log.info("service check %s: %s", name, line)
    return CheckResult(name, ok, status, timed_out, duration, output)
