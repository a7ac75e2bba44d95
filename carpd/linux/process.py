"""Run a program for a transition (a hook, an action) without ever blocking the protocol.

ucarp waits for its scripts, so a hanging script stops its adverts; ifstated runs
``system()`` in its only loop. carpd runs them as asyncio subprocesses in their own
session, kills the whole session at a timeout, logs what they print line by line, and
keeps the tail of their stderr for status and the event stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

log = logging.getLogger("carpd")

# After a program exits, how long its output may take to arrive before it is read in
# the background instead (a child it left running may hold the pipe open for good).
OUTPUT_GRACE = 0.2
TAIL_LINES = 10  # of stderr, kept for status and events
TAIL_CHARS = 2000

# Output readers that outlived their program: kept so they are not garbage-collected.
_background: set[asyncio.Task[None]] = set()


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int | None  # the exit status; None: it did not start, or was killed
    duration: float  # seconds
    stderr: str  # the last lines it wrote to stderr
    error: str | None = None  # why there is no status: "killed after 2.0 s", ...

    @property
    def ok(self) -> bool:
        return self.status == 0


class _Output(asyncio.SubprocessProtocol):
    """Logs the output line by line, and tells the exit apart from the end of the output:
    asyncio's Process.wait() returns only once the pipes are closed too, which a
    background child (``daemon &``) can hold open long after the program exited."""

    def __init__(self, loop: asyncio.AbstractEventLoop, label: str) -> None:
        self.label = label
        self.partial: dict[int, bytes] = {1: b"", 2: b""}
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.open = 2  # pipes not yet closed
        self.exited: asyncio.Future[None] = loop.create_future()
        self.eof: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        *lines, self.partial[fd] = (self.partial[fd] + data).split(b"\n")
        for line in lines:
            self._line(fd, line)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if self.partial.get(fd):
            self._line(fd, self.partial[fd])
            self.partial[fd] = b""
        self.open -= 1
        if self.open <= 0 and not self.eof.done():
            self.eof.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def _line(self, fd: int, line: bytes) -> None:
        text = line.decode(errors="replace")
        if fd == 2:
            self.tail.append(text)
        log.info("%s: %s", self.label, text)

    def stderr(self) -> str:
        return "\n".join(self.tail)[-TAIL_CHARS:]


async def run_program(
    argv: Sequence[str], env: Mapping[str, str], label: str, timeout: float
) -> Outcome:
    """Run ``argv``; done when it exits, even if a process it started in the background
    still holds its output open (that one is left alone, its output still logged).

    ``label`` starts every log line ("carp1: up hook"). Cancelling (the daemon stops)
    kills the program's session."""
    loop = asyncio.get_running_loop()
    log.info("%s: running [%s]", label, " ".join(argv))
    started = loop.time()
    try:
        transport, proto = await loop.subprocess_exec(
            lambda: _Output(loop, label),
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env),
            start_new_session=True,
        )
    except OSError as e:
        log.error("%s %s could not start: %s", label, argv[0], e)
        return Outcome(None, loop.time() - started, "", f"could not start: {e}")
    try:
        done, _ = await asyncio.wait({proto.exited}, timeout=timeout)
        if not done:
            # It runs in its own session: take its children down with it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(transport.get_pid(), signal.SIGKILL)
            await proto.exited
            await asyncio.wait({proto.eof}, timeout=OUTPUT_GRACE)
            transport.close()
            log.error("%s %s killed after %.1f s", label, argv[0], timeout)
            return Outcome(
                None, loop.time() - started, proto.stderr(), f"killed after {timeout:.1f} s"
            )
        status = transport.get_returncode()
        duration = loop.time() - started
        done, _ = await asyncio.wait({proto.eof}, timeout=OUTPUT_GRACE)
    except BaseException:
        transport.close()  # cancelled (the daemon is stopping): the program is killed
        raise
    if done:
        transport.close()
    else:
        task = loop.create_task(_close_at_eof(transport, proto))
        _background.add(task)
        task.add_done_callback(_background.discard)
    if status:
        log.warning("%s exited with status %d", label, status)
    else:
        log.info("%s done in %.3f s", label, duration)
    return Outcome(status, duration, proto.stderr())


async def _close_at_eof(transport: asyncio.SubprocessTransport, proto: _Output) -> None:
    try:
        await proto.eof
    finally:
        transport.close()
