"""carpd's one way to run a program to its end: hooks, actions, ifstated's commands,
service checks, conntrackd's commands, nft, ip, sync's checks and after-commands.

ucarp waits for its scripts, so a hanging script stops its adverts; ifstated runs
``system()`` in its only loop. carpd runs a program as an asyncio subprocess in its own
session, kills its whole process group at the timeout, and keeps the tail of its output.
Its exit is told apart from the end of its output: ``communicate()`` and asyncio's
``Process.wait()`` return only once the pipes are closed too, which a child it left
running (``daemon &``) can hold open for good. What happens to such a child is the
caller's choice (``leftovers``): "kill" takes the whole process group down once the
program has exited; "leave" lets it run, its output still read (and logged) in the
background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger("carpd")

Capture = Literal["output", "stderr", "none"]
Leftovers = Literal["kill", "leave"]

# After a program exits, how long its output may take to arrive before a child holding
# the pipe is killed or read in the background instead.
OUTPUT_GRACE = 0.2
# After SIGKILL to the group, how long to wait for the pipe to close; whatever escaped
# the group (setsid) and still holds it is no longer listened to.
KILL_GRACE = 0.5
TAIL_LINES = 10  # of the kept output, by default
TAIL_BYTES = 2000

# Output readers that outlived their program: kept so they are not garbage-collected.
_background: set[asyncio.Task[None]] = set()


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int | None  # exit status, negative: killed by that signal; None: see error
    duration: float  # seconds, to its exit (or its kill)
    output: str  # the tail of what it wrote (both streams, or stderr: see run's capture)
    error: str | None = None  # why there is no status: "killed after 2.0 s", "could not start: ..."
    timed_out: bool = False  # killed at the timeout

    @property
    def ok(self) -> bool:
        return self.status == 0

    @property
    def stderr(self) -> str:
        """The readers of a hook's or an action's outcome (status, events) call it so."""
        return self.output


class _Tail:
    """The last ``limit`` bytes written to it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.limit:
            del self.data[: len(self.data) - self.limit]

    def text(self, lines: int | None) -> str:
        text = self.data.decode(errors="replace")
        return text if lines is None else "\n".join(text.splitlines()[-lines:])


class _Pipes(asyncio.SubprocessProtocol):
    """Keeps the tail of the output (fd 1, or 2 only), logs it line by line under
    ``label``, and tells the exit apart from the end of the output."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, pipes: int, kept: int, tail: _Tail, label: str | None
    ) -> None:
        self.kept = kept  # the fd whose output goes to the tail
        self.tail = tail
        self.label = label
        self.partial: dict[int, bytes] = {1: b"", 2: b""}
        self.open = pipes  # output pipes not yet closed
        self.exited: asyncio.Future[None] = loop.create_future()
        self.eof: asyncio.Future[None] = loop.create_future()
        if pipes == 0:
            self.eof.set_result(None)

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == self.kept:
            self.tail.add(data)
        if self.label is not None:
            *lines, self.partial[fd] = (self.partial[fd] + data).split(b"\n")
            for line in lines:
                self._log(line)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 0:
            return  # stdin: it stopped reading, or was fed
        if self.partial.get(fd):
            self._log(self.partial[fd])
            self.partial[fd] = b""
        self.open -= 1
        if self.open <= 0 and not self.eof.done():
            self.eof.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def _log(self, line: bytes) -> None:
        log.info("%s: %s", self.label, line.decode(errors="replace"))


def _kill_group(pgid: int) -> None:
    # The program runs in its own session, so its process group id is its pid.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _streams(capture: Capture, logged: bool) -> tuple[int, int, int]:
    """stdout, stderr, and the fd whose output is kept."""
    pipe, devnull = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
    if capture == "output":
        return pipe, asyncio.subprocess.STDOUT, 1  # one pipe: the two in order
    if capture == "stderr":
        return (pipe if logged else devnull), pipe, 2
    return devnull, devnull, 0


async def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    capture: Capture = "output",
    leftovers: Leftovers = "kill",
    label: str | None = None,
    lines: int | None = TAIL_LINES,
    tail_bytes: int = TAIL_BYTES,
) -> Outcome:
    """Run ``argv`` in its own session; done when it exits or is killed at ``timeout``
    (with its process group). Never raises for the program's own failures.

    ``env``: its whole environment (None: carpd's). ``stdin``: fed to it, then closed
    (None: /dev/null). ``capture``: what the Outcome's output keeps, the last
    ``tail_bytes`` bytes and of those the last ``lines`` lines (None: all): "output",
    stdout and stderr together in order; "stderr", stderr only; "none", nothing (no
    pipe). ``leftovers``: what becomes of its process group once it has exited, "kill"
    or "leave". ``label``: log the run, every line it writes and the result, each line
    starting with it ("carp1: up hook"). Cancelling kills a program still running (and
    its group, or with "kill" what is left of it)."""
    loop = asyncio.get_running_loop()
    stdout, stderr, kept = _streams(capture, label is not None)
    pipes = (stdout == asyncio.subprocess.PIPE) + (stderr == asyncio.subprocess.PIPE)
    tail = _Tail(tail_bytes)
    if label is not None:
        log.info("%s: running [%s]", label, " ".join(argv))
    started = loop.time()
    spawn = loop.create_task(
        loop.subprocess_exec(
            lambda: _Pipes(loop, pipes, kept, tail, label),
            *argv,
            stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
            stdout=stdout,
            stderr=stderr,
            env=None if env is None else dict(env),
            start_new_session=True,
        )
    )
    try:
        await _spawned(spawn)
        transport, proto = spawn.result()
    except OSError as e:
        if label is not None:
            log.error("%s %s could not start: %s", label, argv[0], e)
        return Outcome(None, loop.time() - started, "", f"could not start: {e}")
    pid = transport.get_pid()
    if stdin is not None:
        writer = transport.get_pipe_transport(0)
        assert isinstance(writer, asyncio.WriteTransport)
        writer.write(stdin)
        writer.close()  # once written: the end of its input
    try:
        done, _ = await asyncio.wait({proto.exited}, timeout=timeout)
        timed_out = not done
        if timed_out:
            _kill_group(pid)
            await proto.exited
        duration = loop.time() - started
        status = None if timed_out else transport.get_returncode()
        if leftovers == "kill":
            _kill_group(pid)  # nothing of its group outlives it
        done, _ = await asyncio.wait({proto.eof}, timeout=OUTPUT_GRACE)
        if not done and (timed_out or leftovers == "kill"):
            # Escaped its group (setsid) and holds the pipe: no longer listened to.
            await asyncio.wait({proto.eof}, timeout=KILL_GRACE)
            done = {proto.eof}
    except BaseException:
        # Cancelled (the daemon is stopping): a program still running is killed.
        if not proto.exited.done() or leftovers == "kill":
            _kill_group(pid)
        transport.close()
        raise
    if done:
        transport.close()
    else:  # "leave": a child it left holds its output; read it to the end meanwhile
        task = loop.create_task(_close_at_eof(transport, proto))
        _background.add(task)
        task.add_done_callback(_background.discard)
    output = tail.text(lines)
    if timed_out:
        if label is not None:
            log.error("%s %s killed after %.1f s", label, argv[0], timeout)
        return Outcome(None, duration, output, f"killed after {timeout:.1f} s", True)
    if label is not None:
        if status:
            log.warning("%s exited with status %d", label, status)
        else:
            log.info("%s done in %.3f s", label, duration)
    return Outcome(status, duration, output)


async def _spawned(spawn: asyncio.Task[tuple[asyncio.SubprocessTransport, _Pipes]]) -> None:
    """Wait for ``spawn`` without ever cancelling it: a spawn cancelled half-way can hang
    Python 3.11 for good (CPython gh-125502: it waits for an exit that is never reported),
    and carpd's shutdown cancels programs it runs. Cancelled meanwhile, the spawn is let
    finish, what it started is killed with its group, and the cancellation goes on."""
    cancelled = False
    while not spawn.done():
        try:
            await asyncio.wait({spawn})
        except asyncio.CancelledError:
            cancelled = True  # asyncio.wait leaves the spawn alone; finish it first
    if not cancelled:
        return
    if not spawn.cancelled() and spawn.exception() is None:
        transport, _ = spawn.result()
        _kill_group(transport.get_pid())
        transport.close()
    raise asyncio.CancelledError


async def _close_at_eof(transport: asyncio.SubprocessTransport, proto: _Pipes) -> None:
    try:
        await proto.eof
    finally:
        transport.close()


async def run_program(
    argv: Sequence[str], env: Mapping[str, str], label: str, timeout: float
) -> Outcome:
    """A program of a transition (a hook, an action, an ifstated command): logged under
    ``label``, its stderr's tail kept, children it leaves running left alone. The
    effects call it by this name; ``run`` with these arguments is the same."""
    return await run(
        argv, timeout=timeout, env=env, capture="stderr", leftovers="leave", label=label
    )
