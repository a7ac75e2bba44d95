"""Check for the capabilities carpd needs before touching the network."""

from __future__ import annotations

CAP_CHOWN = 0
CAP_NET_ADMIN = 12
CAP_NET_RAW = 13


def effective_capabilities(status_text: str) -> int:
    for line in status_text.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def missing_capabilities(control_group: bool = False) -> list[str]:
    """Names of the capabilities carpd lacks: raw sockets and address changes, and with
    ``control_group`` the control socket's group (root without CAP_CHOWN may give a file
    only a group it is in)."""
    with open("/proc/self/status", encoding="ascii") as f:
        caps = effective_capabilities(f.read())
    needed = {"CAP_NET_RAW": CAP_NET_RAW, "CAP_NET_ADMIN": CAP_NET_ADMIN}
    if control_group:
        needed["CAP_CHOWN"] = CAP_CHOWN
    return [name for name, bit in needed.items() if not caps & (1 << bit)]
