"""A Debian root booted by systemd-nspawn in one of the lab's network namespaces: a real
systemd as its PID 1, so a unit runs as it would on a node (its sandbox, sd_notify,
Restart=, the journal), with the namespace's interfaces and nothing of this machine's.

No systemd runs on this machine: nspawn registers with no machined (``--register=no``)
and stays in the caller's cgroup (``--keep-unit``). Its mounts live in its own mount
namespace and go with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# A login shell's environment for commands in the container: nothing of this machine's.
ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8")
# How often to look for the container's PID 1 while nspawn sets it up (a fork, then a
# few mounts): there is no event for it before it is there.
POLL = 0.02
# What systemd-nspawn creates on the machine it runs on (systemd 252), deepest first.
NSPAWN_RUN = Path("/run/systemd/nspawn")
NSPAWN_DIRS = (NSPAWN_RUN / "locks", NSPAWN_RUN / "propagate", NSPAWN_RUN)


class BootError(AssertionError):
    pass


@dataclass
class Booted:
    proc: subprocess.Popen[bytes]  # systemd-nspawn
    init: int  # the container's PID 1 (systemd), as this machine numbers it
    log: Path

    def run(
        self, *argv: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """A command inside the container: every namespace of its PID 1, a clean env."""
        result = subprocess.run(
            ["nsenter", "-t", str(self.init), "-a", "env", "-i", *ENV, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise BootError(
                f"in the container: {' '.join(argv)}: exit {result.returncode}\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def wait_booted(self, deadline: float) -> str:
        """``systemctl is-system-running --wait``: how the boot ended, or "" (or "offline")
        if PID 1 does not answer yet."""
        left = max(deadline - time.monotonic(), 0.1)
        return self.run(
            "systemctl", "is-system-running", "--wait", check=False, timeout=left
        ).stdout.strip()

    def show(self, unit: str, *props: str) -> dict[str, str]:
        """``systemctl show`` of a unit's properties, as a dict."""
        out = self.run("systemctl", "show", unit, *(f"--property={p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def host_pid(self, pid: int) -> int:
        """This machine's number for the container's process ``pid``."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                status = (entry / "status").read_text()
                nspid = next(x for x in status.splitlines() if x.startswith("NSpid:")).split()
                if len(nspid) == 3 and int(nspid[2]) == pid and self._inside(int(entry.name)):
                    return int(entry.name)
        raise BootError(f"no process {pid} in the container")

    def _inside(self, pid: int) -> bool:
        return os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{self.init}/ns/pid")


def _child(pid: int) -> int | None:
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
    return None


@contextlib.contextmanager
def booted(root: Path, netns: str, log: Path, limit: float) -> Iterator[Booted]:
    """``root`` booted in the network namespace ``netns`` until the block ends, its boot
    finished (``systemctl is-system-running --wait``), within ``limit`` seconds for the
    boot and again for the power-off. Killed (its PID 1, so the whole container) if it
    does not go."""
    argv = [
        "systemd-nspawn",
        "--quiet",
        f"--directory={root}",
        "--boot",
        "--register=no",
        "--keep-unit",
        f"--network-namespace-path=/run/netns/{netns}",
        # nspawn grants it only with a network it made itself; a node's root has it.
        "--capability=CAP_NET_ADMIN",
        f"--machine={netns}",
    ]
    # nspawn leaves its (empty) lock and propagation folders on this machine: those it
    # made go with the container.
    made = [d for d in NSPAWN_DIRS if not d.exists()]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    init: int | None = None
    try:
        deadline = time.monotonic() + limit
        while (init := _child(proc.pid)) is None or _comm(init) != "systemd":
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BootError(f"nspawn: no systemd within {limit} s:\n{log.read_text()[-3000:]}")
            time.sleep(POLL)
        box = Booted(proc, init, log)
        # systemctl talks to PID 1 over its private socket, there once PID 1 has set up:
        # until then it answers nothing (and says so on stderr). Then it waits for the boot
        # to end: running, or degraded if a unit failed (which the caller asks about).
        while (state := box.wait_booted(deadline)) not in ("running", "degraded"):
            if (
                state not in ("", "offline")
                or proc.poll() is not None
                or time.monotonic() > deadline
            ):
                raise BootError(f"boot ended {state!r}:\n{log.read_text()[-3000:]}")
            time.sleep(POLL)
        yield box
    finally:
        try:
            _power_off(proc, init, limit)
        finally:
            for d in made:  # deepest first; only if nspawn left nothing in them
                with contextlib.suppress(OSError):
                    d.rmdir()


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _power_off(proc: subprocess.Popen[bytes], init: int | None, limit: float) -> None:
    """A clean power-off (SIGRTMIN+4 to systemd, as nspawn's own --kill-signal), then, if
    it is not over within ``limit``, SIGKILL to PID 1, which ends every process in it."""
    if proc.poll() is None and init is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(init, signal.SIGRTMIN + 4)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=limit)
    if proc.poll() is None:
        if init is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(init, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
