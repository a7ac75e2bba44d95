"""Run up/down hooks as ucarp does, but without ever blocking the protocol.

ucarp waits for its scripts, so a hanging script stops its adverts. carpd runs them as
asyncio subprocesses with a timeout, one at a time per vhid and in order, and logs what
they print.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger("carpd")


@dataclass(frozen=True, slots=True)
class HookCall:
    name: str  # the vhid's name, e.g. carp0, for log lines
    kind: str  # "up" or "down"
    path: str
    interface: str
    addresses: Sequence[str]
    xparam: str | None
    vhid: int
    state: str
    previous: str | None = None  # the state it left, when known
    reason: str | None = None  # why it changed, in the log's words

    def argv(self) -> list[str]:
        # ucarp: script <interface> <virtual address> [xparam]
        args = [self.path, self.interface, self.addresses[0] if self.addresses else ""]
        if self.xparam is not None:
            args.append(self.xparam)
        return args

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            CARP_VHID=str(self.vhid),
            CARP_STATE=self.state,
            CARP_INTERFACE=self.interface,
            CARP_ADDRESSES=" ".join(self.addresses),
        )
        if self.previous is not None:
            env["CARP_PREVIOUS_STATE"] = self.previous
        if self.reason is not None:
            env["CARP_REASON"] = self.reason
        return env


# After a hook exits, how long its output may take to arrive before it is read in the
# background instead (a child it left running may hold the pipe open for good).
OUTPUT_GRACE = 0.2

# Output readers that outlived their hook: kept so they are not garbage-collected.
_background: set[asyncio.Task[None]] = set()


class _HookProtocol(asyncio.SubprocessProtocol):
    """Logs the hook's output line by line, and tells its exit apart from the end of its
    output: asyncio's Process.wait() returns only once the pipe is closed too, which a
    background child the hook started (``daemon &``) can hold open long after it exited."""

    def __init__(self, loop: asyncio.AbstractEventLoop, call: HookCall) -> None:
        self.call = call
        self.partial = b""
        self.exited: asyncio.Future[None] = loop.create_future()
        self.eof: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        *lines, self.partial = (self.partial + data).split(b"\n")
        for line in lines:
            self._log(line)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if self.partial:
            self._log(self.partial)
            self.partial = b""
        if not self.eof.done():
            self.eof.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def _log(self, line: bytes) -> None:
        text = line.decode(errors="replace")
        log.info("%s: %s hook: %s", self.call.name, self.call.kind, text)


async def run_hook(call: HookCall, timeout: float) -> int | None:
    """Run one hook; its exit status, or None if it failed to start or timed out.

    Done when the hook exits, even if a process it started in the background still holds
    its output open: that process is left alone, and its output is still logged.
    """
    argv = call.argv()
    log.info("%s: running %s hook [%s]", call.name, call.kind, " ".join(argv))
    loop = asyncio.get_running_loop()
    try:
        transport, proto = await loop.subprocess_exec(
            lambda: _HookProtocol(loop, call),
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=call.env(),
            start_new_session=True,
        )
    except OSError as e:
        log.error("%s: %s hook %s could not start: %s", call.name, call.kind, call.path, e)
        return None
    try:
        done, _ = await asyncio.wait({proto.exited}, timeout=timeout)
        if not done:
            # The hook runs in its own session: take its children down with it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(transport.get_pid(), signal.SIGKILL)
            await proto.exited
            await asyncio.wait({proto.eof}, timeout=OUTPUT_GRACE)
            transport.close()
            log.error(
                "%s: %s hook %s killed after %.1f s", call.name, call.kind, call.path, timeout
            )
            return None
        status = transport.get_returncode()
        done, _ = await asyncio.wait({proto.eof}, timeout=OUTPUT_GRACE)
    except BaseException:
        transport.close()  # cancelled (the daemon is stopping): a running hook is killed
        raise
    if done:
        transport.close()
    else:
        task = loop.create_task(_close_at_eof(transport, proto))
        _background.add(task)
        task.add_done_callback(_background.discard)
    if status:
        log.warning("%s: %s hook exited with status %d", call.name, call.kind, status)
    return status


async def _close_at_eof(transport: asyncio.SubprocessTransport, proto: _HookProtocol) -> None:
    try:
        await proto.eof
    finally:
        transport.close()
