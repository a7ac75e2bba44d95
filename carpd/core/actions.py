"""What the core asks the runtime to do. Frozen, so tests compare them with ``==``."""

from __future__ import annotations

from dataclasses import dataclass

from carpd.core.model import Reason, State
from carpd.core.vrrp import VrrpPacket


@dataclass(frozen=True, slots=True)
class StateChanged:
    old: State
    new: State
    reason: Reason


@dataclass(frozen=True, slots=True)
class SendAdvert:
    """Send this 36-byte CARP payload on every address family the vhid uses."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class SendVrrp:
    """Send this VRRPv3 advert on ``family`` (4 or 6). The runtime encodes it with its
    source address and the group (224.0.0.18 / ff02::12): the checksum covers both."""

    family: int
    packet: VrrpPacket


@dataclass(frozen=True, slots=True)
class AddAddresses:
    pass


@dataclass(frozen=True, slots=True)
class RemoveAddresses:
    pass


@dataclass(frozen=True, slots=True)
class Announce:
    """Gratuitous ARP for every IPv4 address, unsolicited NA for every IPv6 address."""


@dataclass(frozen=True, slots=True)
class RunHook:
    """Run the up hook (``state`` MASTER) or the down hook (BACKUP, or INIT when the vhid
    leaves the group); the hook is told ``state``."""

    state: State

    @property
    def kind(self) -> str:
        return "up" if self.state is State.MASTER else "down"


Action = StateChanged | SendAdvert | SendVrrp | AddAddresses | RemoveAddresses | Announce | RunHook
