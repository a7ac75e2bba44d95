"""Run a command with a hard deadline and keep the tail of its output.

A command runs in its own session; when it has not exited by the deadline, its whole
process group is killed with SIGKILL. Its exit is told apart from the end of its output,
so a background child it leaves behind (a daemon it starts) never holds it up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass

OUTPUT_BYTES = 4096  # at most this much of a command's output is kept (its tail) ...
OUTPUT_LINES = 20  # ... and of that, at most the last this many lines
_KILL_GRACE = 0.5  # after SIGKILL, how long to wait for the output pipe to close


@dataclass(frozen=True, slots=True)
class CommandResult:
    status: int | None  # exit status (negative: killed by that signal); None: no start/timeout
    timed_out: bool
    duration: float  # seconds
    output: str  # the tail of stdout and stderr, interleaved
    error: str | None = None  # why it could not start

    @property
    def ok(self) -> bool:
        return self.status == 0


class _Tail:
    """The last OUTPUT_BYTES bytes written to it."""

    def __init__(self) -> None:
        self.data = bytearray()

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > OUTPUT_BYTES:
            del self.data[: len(self.data) - OUTPUT_BYTES]

    def text(self, lines: int = OUTPUT_LINES) -> str:
        kept = self.data.decode(errors="replace").splitlines()
        return "\n".join(kept[-lines:])


class _CommandProtocol(asyncio.SubprocessProtocol):
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
    # The command runs in its own session, so its process group id is its pid.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _remaining(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.0)


async def run_command(
    argv: Sequence[str], timeout: float, *, capture: bool = True, lines: int = OUTPUT_LINES
) -> CommandResult:
    """Run ``argv``; never raises for the command's own failures. Its output is kept up
    to OUTPUT_BYTES and ``lines`` lines (the end of it). Without ``capture`` it goes to
    /dev/null (for a command that leaves a daemon behind)."""
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    deadline = start + timeout
    try:
        transport, proto = await loop.subprocess_exec(
            lambda: _CommandProtocol(loop),
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if capture else asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.STDOUT if capture else asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as e:
        return CommandResult(None, False, time.monotonic() - start, "", str(e))
    pid = transport.get_pid()
    if not capture and not proto.eof.done():
        proto.eof.set_result(None)  # no pipe: nothing to wait for after the exit
    try:
        # The command itself: it exits in time, or it and its process group are killed.
        timed_out = False
        done, _ = await asyncio.wait({proto.exited}, timeout=_remaining(deadline))
        if not done:
            _kill_group(pid)
            await proto.exited
            timed_out = True
        duration = time.monotonic() - start
        status = None if timed_out else transport.get_returncode()
        # The rest of its output. Something it left behind may hold the pipe open until
        # the deadline; then that goes the way of a hanging command.
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
    return CommandResult(status, timed_out, duration, proto.tail.text(lines))
