"""The last `carpctl drill` in status and /metrics: its report, which carpctl writes to
``state_dir/drill/last.json``, read when someone looks, cached by the file's mtime (as
the config drift is). carpd never runs a drill itself: a failover is the operator's
decision, or their timer's."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carpd.config.model import Config
from carpd.daemon.seam.integration import Sample

RESULTS = ("passed", "failed", "refused")


@dataclass(frozen=True, slots=True)
class DrillReport:
    result: str  # passed, failed, refused
    why: str | None
    finished: float
    last_success: float | None
    peer: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "why": self.why,
            "finished": self.finished,
            "last_success": self.last_success,
            "peer": self.peer,
        }

    def lines(self) -> list[str]:
        why = f": {self.why}" if self.why else ""
        return [f"drill: last one {self.result}{why} (carpctl drill --last)"]

    def samples(self) -> Iterator[Sample]:
        yield Sample("carpd_drill_last_result", "1 if the last carpctl drill passed, 0 if it "
                     "failed or was refused", "gauge", int(self.result == "passed"))  # fmt: skip
        yield Sample("carpd_drill_last_timestamp_seconds", "When the last carpctl drill ended",
                     "gauge", self.finished)  # fmt: skip
        if self.last_success is not None:
            yield Sample("carpd_drill_last_success_timestamp_seconds",
                         "When the last carpctl drill that passed ended", "gauge",
                         self.last_success)  # fmt: skip


class DrillRecord:
    name = "drill"  # its key in status

    def __init__(self) -> None:
        self.path: Path | None = None
        self._seen: tuple[float, DrillReport | None] = (-1.0, None)

    async def reconfigure(self, config: Config) -> None:
        self.path = config.global_.state_dir / "drill" / "last.json"  # carpctl's file

    def report(self) -> DrillReport | None:
        if self.path is None:
            return None
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError:
            return None
        if mtime != self._seen[0]:
            self._seen = (mtime, _read(self.path))
        return self._seen[1]

    def close(self) -> None:
        return None


def _read(path: Path) -> DrillReport | None:
    """What carpctl wrote; anything else (torn, edited) counts as no report."""
    try:
        data = json.loads(path.read_text())
        result, finished = data["result"], float(data["finished"])
        success = data.get("last_success")
        why, peer = data.get("why"), data.get("peer")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if result not in RESULTS:
        return None
    return DrillReport(
        result,
        str(why)[:500] if why is not None else None,
        finished,
        float(success) if isinstance(success, int | float) else None,
        str(peer)[:64] if peer is not None else None,
    )
