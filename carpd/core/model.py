"""The core's vocabulary, in one home: states, transition reasons, counters, addresses.

Everything else in the core, the runtime and the readers (status, metrics) import these
from here, so no module of the core needs another one just for a type.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class State(enum.Enum):
    INIT = "INIT"
    BACKUP = "BACKUP"
    MASTER = "MASTER"

    def __str__(self) -> str:
        return self.value


class Reason(enum.StrEnum):
    """Why a vhid changed state: the words of the log line and of status."""

    INITIALIZATION_COMPLETE = "initialization complete"
    MASTER_TIMED_OUT = "master timed out"
    # CARP (carp(4), ucarp)
    LESS_DEMOTED_MASTER = "less demoted master advertised"
    MORE_FREQUENT_ADVERT = "more frequent advertisement received"
    PREFERRED_MASTER_TIE = "preferred master advertised (tie)"
    MASTER_BOWED_OUT = "master bowed out"
    PREEMPTING = "preempting a slower master"
    MASTER_MORE_DEMOTED = "master is more demoted"
    MASTER_WILL_TIME_OUT = "master will time out"
    # VRRPv3 (RFC 5798)
    MASTER_RELEASED = "master released (priority 0)"
    HIGHER_PRIORITY_MASTER = "higher priority master advertised"
    GREATER_ADDRESS_MASTER = "equal priority master with a greater address advertised"
    PREEMPTING_LOWER_PRIORITY = "preempting a lower priority master"
    # The host and the operator
    CARPDEV_UP = "carpdev up"
    CARPDEV_DOWN = "carpdev down"
    USER_DOWN = "user requested down"
    USER_UP = "user requested up"
    USER_REQUESTED = "user requested"
    SHUTDOWN = "shutdown"
    CONFIG_CHANGED = "configuration changed"
    VHID_REMOVED = "vhid removed"


@dataclass(slots=True)
class Counters:
    """Per vhid. Read by status and metrics (never pushed as events)."""

    adverts_sent: int = 0  # advert packets the kernel took (per family and destination)
    adverts_received: int = 0
    transitions: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
