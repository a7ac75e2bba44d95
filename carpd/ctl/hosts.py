"""A name for an address from /etc/hosts, for status.

Only the file, never DNS: status must answer at once, and above all while the network
(and its name server) is what is failing."""

from __future__ import annotations

import ipaddress
import os

# A path, not a pathlib.Path: carpctl status never loads pathlib (3.5 ms of its start).
HOSTS: str | os.PathLike[str] = "/etc/hosts"


def host_name(address: str, hosts: str | os.PathLike[str] | None = None) -> str | None:
    """The first name /etc/hosts gives ``address`` (any spelling of it), or None."""
    try:
        wanted = ipaddress.ip_address(address.split("%", 1)[0])
        with open(hosts or HOSTS, errors="replace") as f:
            text = f.read()
    except (ValueError, OSError):
        return None
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        try:
            if ipaddress.ip_address(fields[0].split("%", 1)[0]) == wanted:
                return fields[1]
        except ValueError:
            continue
    return None
