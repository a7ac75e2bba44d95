"""Config drift in status: what the last `carpctl sync status` found (run by hand or by
cron), read from the file it writes when someone looks, cached by the file's mtime, as
an integration with a typed report. The daemon never talks to the peer itself (a dead
peer must not slow it down, opnsense/core #3635)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carpd.daemon.seam.integration import Sample


class Drift:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "sync" / "status.json"
        self._seen: tuple[float, dict[str, Any] | None] = (-1.0, None)

    def report(self) -> dict[str, Any] | None:
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError:
            return None
        if mtime != self._seen[0]:
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError):
                data = None
            self._seen = (mtime, data if isinstance(data, dict) else None)
        return self._seen[1]


def when(wall: float | None) -> str | None:
    return None if wall is None else time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(wall))


def _paths(found: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = found.get(key) or ()
    return tuple(str(p) for p in value) if isinstance(value, list | tuple) else ()


@dataclass(frozen=True, slots=True)
class ConfigSyncReport:
    """Drift from the peer's files: what differs, when it was checked. The paths, the
    peer and the error come from the peer: carpctl escapes each line it prints."""

    peer: Any
    checked: float | None  # wall clock
    differ: tuple[str, ...]
    only_here: tuple[str, ...]
    only_peer: tuple[str, ...]
    error: Any

    @classmethod
    def read(cls, found: Mapping[str, Any]) -> ConfigSyncReport:
        """From the file `carpctl sync status` wrote (Drift.report())."""
        checked = found.get("checked")
        return cls(
            peer=found.get("peer"),
            checked=checked if isinstance(checked, int | float) else None,
            differ=_paths(found, "differ"),
            only_here=_paths(found, "only_here"),
            only_peer=_paths(found, "only_peer"),
            error=found.get("error"),
        )

    @property
    def drift(self) -> int:
        return len(self.differ) + len(self.only_here) + len(self.only_peer)

    @property
    def in_sync(self) -> bool:
        return not self.drift and not self.error

    def to_json(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "checked": when(self.checked),
            "in_sync": self.in_sync,
            "drift": self.drift,
            "differ": list(self.differ),
            "only_here": list(self.only_here),
            "only_peer": list(self.only_peer),
            "error": self.error,
        }

    def samples(self) -> Iterator[Sample]:
        yield Sample(
            "carpd_config_sync_in_sync",
            "1 if the last carpctl sync status found the peer's files the same",
            "gauge",
            int(self.in_sync),
        )
        yield Sample(
            "carpd_config_sync_drift_files",
            "Files that differ from the peer, or exist on one side only",
            "gauge",
            self.drift,
        )
        if self.checked is not None:
            yield Sample(
                "carpd_config_sync_checked_timestamp_seconds",
                "When carpctl sync status last compared the files",
                "gauge",
                self.checked,
            )

    def lines(self) -> list[str]:
        """``config sync: 2 file(s) differ from root@fw2 (checked ...): /etc/a, /etc/b``."""
        checked = f"checked {when(self.checked)}"
        if self.error:
            return [f"config sync: {self.error} ({checked})"]
        if self.in_sync:
            return [f"config sync: in sync with {self.peer} ({checked})"]
        files = [*self.differ, *(f"{p} (only here)" for p in self.only_here)]
        files += [f"{p} (only on the peer)" for p in self.only_peer]
        return [
            f"config sync: {self.drift} file(s) differ from {self.peer} ({checked}): "
            f"{', '.join(files)}"
        ]


class ConfigSync:
    name = "config_sync"  # its key in status

    def __init__(self, drift: Callable[[], Drift]) -> None:
        self.drift = drift  # the daemon's, read each time: a new state_dir makes another

    def report(self) -> ConfigSyncReport | None:
        found = self.drift().report()
        return None if found is None else ConfigSyncReport.read(found)

    def close(self) -> None:
        pass
