"""The ``[[track]]`` table: weighted trackers with rise and fall, built-in probes, and a
quorum of targets (keepalived's ``vrrp_script``/``track_*``, pfSense's gateway groups)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, model_validator

from carpd.config.values import (
    AddressValue,
    Conflict,
    Frozen,
    GroupName,
    Name,
    StrictBool,
    conflicts,
    missing_extra,
    one_or_more,
)

Kind = Literal["script", "interface", "file", "process", "ping", "tcp", "http", "dns", "bgp", "bfd"]
SERVICE_WEIGHT = 1 << 20  # OPNsense's demotion for a failed service check
# What each kind's targets are, for the docs and the errors.
TARGETS: dict[str, str] = {
    "script": "commands for /bin/sh -c (exit 0: up)",
    "interface": "interface names (link up: up)",
    "file": "paths of files holding a number (0: up)",
    "process": "process names, or pid files (a path: running: up)",
    "ping": "addresses (an ICMP echo answered in time: up)",
    "tcp": "host:port ([v6]:port) (a connection accepted: up)",
    "http": "http:// or https:// URLs (the status, and the body if asked: up)",
    "dns": "DNS server addresses (an answer for query: up)",
    "bgp": "BIRD protocol names, or FRR neighbor addresses (Established: up)",
    "bfd": "BFD neighbor addresses, as BIRD's BFD shows them (Up: up)",
}
# The extra a kind's library comes with (carpd[...]).
EXTRAS = {"http": "web", "ping": "track", "dns": "track"}
_HOSTPORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$")

Target = Annotated[str, Field(min_length=1, max_length=1024)]


class TrackConfig(Frozen):
    """A ``[[track]]`` table: a tracker. Each target is probed every ``interval`` seconds
    (at most ``timeout`` each); a target goes down after ``fall`` failures in a row and up
    after ``rise`` successes; the tracker is down while fewer than ``quorum`` targets are
    up, and then demotes the node (or its ``vhids`` and ``groups``) by ``weight``."""

    name: Name
    """A name for logs, status, metrics and events, unique among the [[track]] tables."""
    kind: Kind
    """What is probed: ``script``, ``interface``, ``file``, ``process``, ``ping``,
    ``tcp``, ``http``, ``dns``, ``bgp``, ``bfd`` (the table in docs/trackers.md)."""
    targets: Annotated[tuple[Target, ...], BeforeValidator(one_or_more), Field(min_length=1)]
    """One target (a string) or several (an array); what a target is depends on ``kind``."""
    quorum: int = Field(default=1, ge=1, le=64, strict=True)
    """Targets that must be up for the tracker to be up: with three gateways and quorum 2,
    one lost gateway is not a failover, two are."""
    interval: float = Field(default=1.0, ge=0.1, le=3600, strict=True, allow_inf_nan=False)
    """Seconds between two probes of each target."""
    timeout: float = Field(default=1.0, gt=0, le=3600, strict=True, allow_inf_nan=False)
    """Seconds a probe may take; then it failed. At most ``interval``."""
    rise: int = Field(default=3, ge=1, le=1000, strict=True)
    """Successes in a row that bring a down target up."""
    fall: int = Field(default=3, ge=1, le=1000, strict=True)
    """Failures in a row that take an up target down (one lost ping in ten moves nothing
    with fall 3)."""
    weight: int = Field(default=SERVICE_WEIGHT, ge=1, le=1 << 24, strict=True)
    """How much it demotes while down: added to a CARP vhid's advskew (capped at 240) and
    taken from a VRRPv3 priority (down to 1). The default, 2^20, is a failed service
    check's: the node loses to any peer that is not demoted as much."""
    vhids: tuple[Name, ...] = ()
    """Demote only these vhids (by their [[carp]] names)..."""
    groups: tuple[GroupName, ...] = ()
    """...and those of these interface groups; with neither, the whole node."""
    # -- by kind ------------------------------------------------------------------------
    source: AddressValue | None = None
    """ping: the source address of the echo requests."""
    interface: Annotated[str, Field(min_length=1, max_length=15)] | None = None
    """tcp: the interface the connections go out of (SO_BINDTODEVICE)."""
    max_rtt: float | None = Field(default=None, gt=0, le=60000, strict=True)
    """ping: milliseconds; an echo answered later than this counts as lost."""
    status: tuple[int, ...] = Field(default=(), max_length=64)
    """http: the statuses that count as up (default: 200-399)."""
    body: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    """http: a regular expression the answer's body must match."""
    tls_verify: StrictBool = True
    """http: check the server's certificate (false: any certificate)."""
    query: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    """dns: the name to ask for (required for dns)."""
    record: Literal["A", "AAAA", "MX", "NS", "SOA", "TXT", "SRV", "PTR", "CNAME"] = "A"
    """dns: the record type asked for."""
    daemon: Literal["bird", "frr"] = "bird"
    """bgp, bfd: where the session's state is read: BIRD (birdc) or FRR (vtysh)."""
    control: str | None = Field(default=None, min_length=1, max_length=1024)
    """bgp, bfd: BIRD's control socket (birdc -s), or the directory of FRR's vty sockets
    (vtysh --vty_socket), when not the default."""

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> TrackConfig:
        found = []
        if self.timeout > self.interval:
            found.append(Conflict(("timeout",), self.timeout, "must be at most {other}",
                                  ("interval",)))  # fmt: skip
        if self.quorum > len(self.targets):
            found.append(Conflict(("quorum",), self.quorum,
                                  f"more than its {len(self.targets)} target(s)"))  # fmt: skip
        extra = EXTRAS.get(self.kind)
        if extra is not None and (why := missing_extra(info, extra)) is not None:
            found.append(Conflict(("kind",), self.kind, why))
        for i, t in enumerate(self.targets):
            if (why := _bad_target(self.kind, t)) is not None:
                loc = ("targets", i) if len(self.targets) > 1 else ("targets",)
                found.append(Conflict(loc, t, why))
        for key, kinds in _ONLY.items():
            if key in self.model_fields_set and self.kind not in kinds:
                value = getattr(self, key)
                if isinstance(value, tuple):
                    value = ", ".join(map(str, value))
                shown = value if isinstance(value, str | bool | int | float) else str(value)
                found.append(Conflict((key,), shown, f"only for kind {' or '.join(kinds)}"))
        if self.kind == "dns" and self.query is None:
            found.append(Conflict(("query",), None, "required for kind dns"))
        if found:
            raise conflicts(*found)
        return self


_ONLY = {
    "source": ("ping",),
    "interface": ("tcp",),
    "max_rtt": ("ping",),
    "status": ("http",),
    "body": ("http",),
    "tls_verify": ("http",),
    "query": ("dns",),
    "record": ("dns",),
    "daemon": ("bgp", "bfd"),
    "control": ("bgp", "bfd"),
}


def _bad_target(kind: str, target: str) -> str | None:
    """Why ``target`` is not one for ``kind`` (None: it is)."""
    if kind == "tcp":
        m = _HOSTPORT.match(target)
        if m is None or not 1 <= int(m.group(2)) <= 65535:
            return "not host:port (an IPv6 address in brackets: [2001:db8::1]:80)"
    elif kind == "http" and not re.match(r"^https?://[^\s/]", target):
        return "not an http:// or https:// URL"
    elif kind in ("ping", "dns", "bfd"):
        import ipaddress

        try:
            ipaddress.ip_address(target)
        except ValueError:
            return "not an IPv4 or IPv6 address"
    elif kind == "interface" and (len(target) > 15 or re.search(r"[/:\s]", target)):
        return "not an interface name"
    elif kind == "file" and not target.startswith("/"):
        return "not an absolute path"
    if any(c < " " or c == "\x7f" for c in target):
        return "contains a control character (a newline would be a second command to BIRD)"
    return None
