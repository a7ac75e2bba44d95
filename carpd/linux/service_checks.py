"""Service checks, as OPNsense's carp_service_status does, but concurrent and bounded.

Every executable file in one directory is a check: exit status 0 means the service it
watches is fine, anything else means it is not. If any check fails, the node demotes
itself by SERVICE_DEMOTION (2**20, high enough that "is it set?" is a bitwise and).

OPNsense runs the scripts one after the other and waits for each. carpd runs them all at
once as asyncio subprocesses, each in its own session, and kills a check's whole process
group with SIGKILL when it has not exited within the timeout: a hanging check fails, but
never stalls the others nor the daemon. Whatever a check leaves running in its process
group is killed when it exits.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carpd.linux.process import run

log = logging.getLogger("carpd")

SERVICE_DEMOTION = 1 << 20
OUTPUT_BYTES = 4096  # at most this much of a check's output is kept (its tail) ...
OUTPUT_LINES = 20  # ... and of that, at most the last this many lines


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


async def run_check(path: Path, timeout: float) -> CheckResult:
    """Run one check with no arguments; never raises for the check's own failures. The
    caller logs the result (log_failure) when it changes, not on every run."""
    name = path.name
    r = await run([str(path)], timeout=timeout, lines=OUTPUT_LINES, tail_bytes=OUTPUT_BYTES)
    # r.error: "could not start: ..." or "killed after ..."; a kill has timed_out to say it.
    output = r.error if r.error is not None and not r.timed_out else r.output
    return CheckResult(name, r.ok, r.status, r.timed_out, r.duration, output)


def log_failure(result: CheckResult, timeout: float) -> None:
    """Why a check failed, and the tail of what it printed."""
    name = result.name
    if result.status is None and not result.timed_out:
        log.warning("service check %s %s", name, result.output)
        return
    if result.timed_out:
        log.warning("service check %s killed after %.1f s", name, timeout)
    else:
        log.warning("service check %s failed with exit status %s", name, result.status)
    for line in result.output.splitlines():
        log.info("service check %s: %s", name, line)
