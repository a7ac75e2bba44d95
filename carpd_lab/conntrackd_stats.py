"""What a conntrackd holds of its peer's table, read from ``conntrackd -s`` by the lab
itself (carpd_lab drives carpd from outside and does not use the daemon's own reading
of the same output): its external cache's active connections, or, without one
(``DisableExternalCache On``), what it injected into the kernel table, created less
destroyed."""

from __future__ import annotations

import re

_EXTERNAL = re.compile(r"cache external:\s*\ncurrent active connections:\s*(\d+)")
_INJECT = re.compile(
    r"external inject:\s*\nconnections created:\s*(\d+)\s+failed:\s*\d+\s*\n"
    r"connections updated:\s*\d+\s+failed:\s*\d+\s*\n"
    r"connections destroyed:\s*(\d+)"
)


def peer_connections(stats: str) -> int:
    """The peer's connections this conntrackd holds (0 if the text says neither)."""
    if (m := _EXTERNAL.search(stats)) is not None:
        return int(m.group(1))
    if (m := _INJECT.search(stats)) is not None:
        return max(0, int(m.group(1)) - int(m.group(2)))
    return 0
