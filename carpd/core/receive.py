"""From raw bytes off a socket to a checked advert for one of our vhids.

``classify`` is the daemon's receive path (and the fuzzer's): version dispatch (2 CARP, 3
VRRPv3), the vhid lookup, the protocol each vhid runs, and the TTL rule. The
``decode_*_advert`` helpers (tests, tools, the simulator) go through it too, so no second
receive path exists to drift from the one that runs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

from carpd.core.auth import Authenticator
from carpd.core.errors import BadIpHeader, BadVersion, TooShort, UnknownVhid
from carpd.core.model import IPAddress
from carpd.core.packet import (
    CARP_HEADER_LEN,
    CARP_TTL,
    CARP_VERSION,
    IPPROTO_CARP,
    CarpPacket,
    check_ttl,
    checksum_ok,
    decode_carp,
    ipv4_address,
    parse_ipv4,
)
from carpd.core.vrrp import VRRP_VERSION, VrrpPacket, decode_vrrp


@dataclass(frozen=True, slots=True)
class Received:
    family: int
    src: IPAddress
    dst: IPAddress
    packet: CarpPacket


class Datagram(NamedTuple):
    """A protocol-112 packet off a raw socket: CARP (version 2) or VRRP (version 3). A
    named tuple: one is built for every datagram read, forged ones of a flood too."""

    family: int
    src: IPAddress
    dst: IPAddress
    ttl: int
    payload: bytes

    @property
    def version(self) -> int:
        if not self.payload:
            raise TooShort("packet too short 0")
        return self.payload[0] >> 4


def ipv4_datagram(datagram: bytes) -> Datagram:
    """A whole IPv4 datagram, as an AF_INET raw socket delivers it."""
    if len(datagram) >= 20 and datagram[0] == 0x45 and datagram[9] == IPPROTO_CARP:
        # The usual header (no options), read in place: what parse_ipv4 does, less its
        # intermediate object.
        total = (datagram[2] << 8) | datagram[3]
        if 20 <= total <= len(datagram):
            return _new(
                Datagram,
                (
                    4,
                    ipv4_address(datagram[12:16]),
                    ipv4_address(datagram[16:20]),
                    datagram[8],
                    datagram[20:total],
                ),
            )
    ip4 = parse_ipv4(datagram)  # the general case, and its errors
    if ip4.proto != IPPROTO_CARP:
        raise BadIpHeader(f"protocol {ip4.proto} != {IPPROTO_CARP}")
    return Datagram(4, ip4.src, ip4.dst, ip4.ttl, ip4.payload)


def ipv6_datagram(
    payload: bytes, src: ipaddress.IPv6Address, dst: ipaddress.IPv6Address, hoplimit: int
) -> Datagram:
    """The payload of an AF_INET6 raw socket, with the hop limit from ancillary data."""
    return Datagram(6, src, dst, hoplimit, payload)


_new = tuple.__new__

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Member:
    """What the receive path must know of one of our vhids."""

    version: int  # CARP_VERSION or VRRP_VERSION: the protocol it runs
    check_ttl: bool  # False only for unicast peers said to be routed (peers_routed)


class VhidClash(BadVersion):
    """An advert of the other protocol for a vhid we run (a VRRP router on a CARP vhid,
    or the reverse): refused as bad_version, and worth a diagnosis."""

    def __init__(self, vhid: int, version: int, expected: int) -> None:
        super().__init__(version, expected)
        self.vhid = vhid


def classify(
    dg: Datagram, vhids: Mapping[int, V], member: Callable[[V], Member]
) -> tuple[V, CarpPacket | VrrpPacket]:
    """Decode ``dg`` by its version, find its vhid among ``vhids`` and check it against
    what that vhid runs. Raises a PacketError subclass; never anything else."""
    version = dg.version
    pkt: CarpPacket | VrrpPacket
    if version == CARP_VERSION:
        pkt = decode_carp(dg.payload)
        vhid = pkt.vhid
    elif version == VRRP_VERSION:
        pkt = decode_vrrp(dg.payload, dg.src, dg.dst)
        vhid = pkt.vrid
    else:
        raise BadVersion(version)
    found = vhids.get(vhid)
    if found is None:
        raise UnknownVhid(vhid)
    want = member(found)
    if version != want.version:
        raise VhidClash(vhid, version, want.version)
    if want.check_ttl:
        check_ttl(dg.ttl)
    return found, pkt


# An IPv4 CARP advert as a raw socket delivers it, without IP options: 56 bytes, the
# CARP header at 20 (version and type 0x21, vhid at 21, counter at 28, HMAC at 36).
_V4_ADVERT_LEN = 20 + CARP_HEADER_LEN


def bad_hmac_v4(
    datagram: bytes, vhids: Mapping[int, V], auth: Callable[[V], Authenticator | None]
) -> V | None:
    """The vhid that ``classify`` and its machine would refuse this whole IPv4 datagram
    for as ``bad_hmac`` (its HMAC is wrong and nothing before the HMAC is), found without
    decoding it; None when that is not certain (then the datagram takes the full path).

    ``auth``: the Authenticator a vhid's machine verifies with, or None for a vhid
    this must not judge (not CARP, or with unicast peers, checked before the HMAC). Under
    a flood forging a known peer's source this is what each forged advert costs."""
    if (
        len(datagram) != _V4_ADVERT_LEN
        or datagram[0] != 0x45  # IPv4, no options
        or datagram[9] != IPPROTO_CARP
        or datagram[8] != CARP_TTL  # any TTL rule holds
        or datagram[20] != 0x21  # CARP version 2, advertisement
        or (datagram[2] << 8) | datagram[3] != _V4_ADVERT_LEN
    ):
        return None
    found = vhids.get(datagram[21])
    if found is None:
        return None
    a = auth(found)
    if a is None or not checksum_ok(datagram[20:]) or a.valid(datagram[28:36], datagram[36:]):
        return None
    return found


class _EveryCarpVhid(Mapping[int, Member]):
    """Every vhid runs CARP on multicast: the receive path for one advert on its own."""

    def __getitem__(self, vhid: int) -> Member:
        return Member(CARP_VERSION, check_ttl=True)

    def __iter__(self) -> Iterator[int]:
        return iter(range(1, 256))

    def __len__(self) -> int:
        return 255


def _carp(dg: Datagram) -> Received:
    _, pkt = classify(dg, _EveryCarpVhid(), lambda m: m)
    assert isinstance(pkt, CarpPacket)  # classify checked the version against CARP's
    return Received(dg.family, dg.src, dg.dst, pkt)


def decode_ipv4_advert(datagram: bytes) -> Received:
    """A whole IPv4 datagram holding a CARP advert, through the daemon's receive path."""
    return _carp(ipv4_datagram(datagram))


def decode_ipv6_advert(
    payload: bytes, src: ipaddress.IPv6Address, dst: ipaddress.IPv6Address, hoplimit: int
) -> Received:
    """An AF_INET6 raw socket's payload holding a CARP advert, through the same path."""
    return _carp(ipv6_datagram(payload, src, dst, hoplimit))
