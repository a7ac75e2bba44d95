"""Per-interface network sysctls (they belong to the network namespace carpd runs in)."""

from __future__ import annotations

from pathlib import Path

PROC = Path("/proc/sys/net")


def _path(family: str, ifname: str, key: str) -> Path:
    return PROC / family / "conf" / ifname / key


def read(family: str, ifname: str, key: str) -> str:
    return _path(family, ifname, key).read_text().strip()


def write(family: str, ifname: str, key: str, value: str) -> str:
    """Set a value; returns the old one so it can be put back."""
    path = _path(family, ifname, key)
    old = path.read_text().strip()
    path.write_text(value)
    return old
