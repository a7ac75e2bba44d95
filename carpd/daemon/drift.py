"""Config drift, as the last `carpctl sync status` found it (run by hand or by cron):
read from the file it writes, when someone looks, cached by the file's mtime. The daemon
never talks to the peer itself (a dead peer must not slow it down, opnsense/core #3635).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


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
