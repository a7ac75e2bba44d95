"""Typed errors for packets a peer (or an attacker) sent us.

Every reason a received packet is dropped has its own class, so the runtime can count
and log drops by ``reason`` and tests can assert exactly why a packet was refused.
"""

from __future__ import annotations


class PacketError(Exception):
    """A received packet was refused. ``reason`` is the counter key."""

    reason = "malformed"


class TooShort(PacketError):
    reason = "short"


class BadLength(PacketError):
    reason = "bad_length"


class BadIpHeader(PacketError):
    reason = "bad_ip_header"


class BadTTL(PacketError):
    reason = "bad_ttl"

    def __init__(self, ttl: int) -> None:
        super().__init__(f"received ttl {ttl} != 255")
        self.ttl = ttl


class BadVersion(PacketError):
    reason = "bad_version"

    def __init__(self, version: int, expected: int = 2) -> None:
        super().__init__(f"invalid version {version} != {expected}")
        self.version = version
        self.expected = expected


class BadType(PacketError):
    reason = "bad_type"

    def __init__(self, type_: int) -> None:
        super().__init__(f"invalid type {type_} != 1")
        self.type = type_


class BadChecksum(PacketError):
    reason = "bad_checksum"


class UnknownVhid(PacketError):
    reason = "unknown_vhid"

    def __init__(self, vhid: int) -> None:
        super().__init__(f"no vhid {vhid} configured on this interface")
        self.vhid = vhid


class BadHMAC(PacketError):
    reason = "bad_hmac"


class OwnAdvert(PacketError):
    """Our own advertisement came back to us (a loop, or a reflecting switch)."""

    reason = "own_advert"


class NotAPeer(PacketError):
    """With unicast peers configured, only their adverts count."""

    reason = "not_a_peer"


class Replayed(PacketError):
    """replay_protection: the counter did not increase since this source's last advert."""

    reason = "replayed"


class Duplicate(PacketError):
    """replay_protection: the very advert last accepted from this source, again (a frame
    delivered twice: a switch, or carpd's own two sockets while a peer moves between
    them). Refused like a replay, since it would refresh a dead master, but not a sign
    of one: an attacker's verbatim copy of the latest advert changes nothing either."""

    reason = "duplicate"


class BadAddressCount(PacketError):
    """VRRPv3: a count of addresses of 0, or more than the packet holds."""

    reason = "bad_address_count"


class BadInterval(PacketError):
    """VRRPv3: a Max Adver Int of 0 centiseconds (it would make Master_Down_Interval 0)."""

    reason = "bad_interval"


DROP_REASONS: tuple[str, ...] = (
    TooShort.reason,
    BadLength.reason,
    BadIpHeader.reason,
    BadTTL.reason,
    BadVersion.reason,
    BadType.reason,
    BadChecksum.reason,
    UnknownVhid.reason,
    BadHMAC.reason,
    OwnAdvert.reason,
    NotAPeer.reason,
    Replayed.reason,
    Duplicate.reason,
    BadAddressCount.reason,
    BadInterval.reason,
)
