"""conntrackd's client commands (conntrack-tools), run with a deadline each.

carpd only ever talks to conntrackd as its own client (``conntrackd -C <config> <cmd>``),
exactly as conntrack-tools' primary-backup.sh does, so any conntrackd set-up that works
with that script works with carpd.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from carpd.linux.command import CommandResult, run_command


@dataclass(frozen=True, slots=True)
class Conntrackd:
    binary: Path
    config: Path

    def argv(self, *args: str) -> list[str]:
        return [str(self.binary), "-C", str(self.config), *args]

    async def run(self, *args: str, timeout: float) -> CommandResult:
        return await run_command(self.argv(*args), timeout)

    async def start(self, timeout: float) -> CommandResult:
        """``conntrackd -d``: it forks and its parent exits. The daemon gets no pipe of
        ours to hold open, and its own session, so nothing of carpd's ever kills it."""
        return await run_command(self.argv("-d"), timeout, capture=False)
