"""conntrackd's client commands (conntrack-tools), run with a deadline each.

carpd only ever talks to conntrackd as its own client (``conntrackd -C <config> <cmd>``),
exactly as conntrack-tools' primary-backup.sh does, so any conntrackd set-up that works
with that script works with carpd.
"""

from __future__ import annotations

import os
import re
import select
import signal
from dataclasses import dataclass
from pathlib import Path

from carpd.linux import process
from carpd.linux.process import Outcome

STATS_LINES = 100
OUTPUT_BYTES = 4096
DEFAULT_CONFIG = "/etc/conntrackd/conntrackd.conf"  # conntrackd's own, without -C


@dataclass(frozen=True, slots=True)
class Conntrackd:
    binary: Path
    config: Path

    def argv(self, *args: str) -> list[str]:
        return [str(self.binary), "-C", str(self.config), *args]

    async def run(self, *args: str, timeout: float) -> Outcome:
        # -s prints about 25 lines; more than a hook's or a check's tail.
        return await process.run(
            self.argv(*args), timeout=timeout, lines=STATS_LINES, tail_bytes=OUTPUT_BYTES
        )

    async def start(self, timeout: float) -> Outcome:
        """``conntrackd -d``: it forks and its parent exits. The daemon gets no pipe of
        ours to hold open, and its own session, so nothing of carpd's ever kills it."""
        return await process.run(
            self.argv("-d"), timeout=timeout, capture="none", leftovers="leave"
        )


_LOCK_FILE = re.compile(r"^\s*LockFile\s+(\S+)", re.MULTILINE)


def lock_file(config: Path) -> Path | None:
    """The LockFile its config names (conntrackd refuses to start while it exists, and
    a killed conntrackd leaves it behind); None if unreadable or not set."""
    try:
        m = _LOCK_FILE.search(config.read_text(errors="replace"))
    except OSError:
        return None
    return Path(m.group(1)) if m else None


def running(config: Path) -> list[int]:
    """conntrackd daemons (``-d``) of this config in our network namespace: one that runs
    but does not answer on its socket must not get a second one beside it (nor lose its
    lock file), whoever started it (carpd, systemd, a user)."""
    try:
        our_net = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            net = (entry / "ns" / "net").stat().st_ino
        except OSError:
            continue  # gone, or not ours to look at
        args = [a.decode(errors="replace") for a in argv if a]
        if not args or Path(args[0]).name != "conntrackd" or "-d" not in args[1:]:
            continue
        conf = args[args.index("-C") + 1] if "-C" in args[:-1] else DEFAULT_CONFIG
        if net == our_net and Path(conf) == config:
            found.append(int(entry.name))
    return found


class Started:
    """The conntrackd that carpd started, held by a pidfd: it names that very process,
    never another that later gets its pid, so stopping it can hit no other."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self.fd = fd

    @classmethod
    def find(cls, config: Path) -> Started | None:
        """The one conntrackd of ``config`` running now (just started by us); None if
        there is none, or more than one to choose from."""
        pids = running(config)
        if len(pids) != 1:
            return None
        try:
            return cls(pids[0], os.pidfd_open(pids[0]))
        except OSError:  # gone already
            return None

    def alive(self) -> bool:
        """A pidfd turns readable when its process exits."""
        return not select.select([self.fd], [], [], 0)[0]

    def terminate(self) -> bool:
        """SIGTERM to it (conntrackd removes its lock and socket and exits); False if it
        was gone."""
        try:
            signal.pidfd_send_signal(self.fd, signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True

    def close(self) -> None:
        os.close(self.fd)


@dataclass(frozen=True, slots=True)
class ConntrackdStats:
    """What ``conntrackd -s`` says that matters to a failover (conntrack-tools 1.4)."""

    internal: int  # our connections (cache internal: current active connections)
    external: int  # the peer's connections, waiting for a commit
    send_errors: int
    recv_errors: int
    malformed: int  # messages from the peer that made no sense
    lost: int  # messages from the peer that never arrived (FTFW resent them, or not)
    received: int = 0  # packets from the peer on the sync channel (FTFW: one a second idle)

    def to_json(self) -> dict[str, int]:
        return {
            "internal": self.internal,
            "external": self.external,
            "send_errors": self.send_errors,
            "recv_errors": self.recv_errors,
            "malformed": self.malformed,
            "lost": self.lost,
            "received": self.received,
        }


_ACTIVE = re.compile(r"cache (internal|external):\s*\ncurrent active connections:\s*(\d+)")
_COUNTS = {
    "send_errors": re.compile(r"(\d+) Error send"),
    "recv_errors": re.compile(r"(\d+) Error recv"),
    "malformed": re.compile(r"(\d+) Malformed msgs"),
    "lost": re.compile(r"(\d+) Lost msgs"),
    "received": re.compile(r"(\d+) Pckts recv"),
}


def parse_stats(text: str) -> ConntrackdStats | None:
    """``conntrackd -s`` output; None if it is not that (an error, another version)."""
    active = dict(_ACTIVE.findall(text))
    if set(active) != {"internal", "external"}:
        return None
    counts = {}
    for key, pattern in _COUNTS.items():
        m = pattern.search(text)
        counts[key] = int(m.group(1)) if m else 0
    return ConntrackdStats(int(active["internal"]), int(active["external"]), **counts)
