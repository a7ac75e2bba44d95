"""Config drift in status: what the last `carpctl sync status` found (daemon/drift.py
reads the file it writes), as an integration with a typed report."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from carpd.daemon.drift import Drift


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
