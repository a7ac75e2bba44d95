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
        return env


async def run_hook(call: HookCall, timeout: float) -> int | None:
    """Run one hook; its exit status, or None if it failed to start or timed out."""
    argv = call.argv()
    log.info("%s: running %s hook [%s]", call.name, call.kind, " ".join(argv))
    try:
        proc = await asyncio.create_subprocess_exec(
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
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        # The hook runs in its own session: take its children down with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        log.error("%s: %s hook %s killed after %.1f s", call.name, call.kind, call.path, timeout)
        return None
    for line in out.decode(errors="replace").splitlines():
        log.info("%s: %s hook: %s", call.name, call.kind, line)
    if proc.returncode:
        log.warning("%s: %s hook exited with status %d", call.name, call.kind, proc.returncode)
    return proc.returncode
