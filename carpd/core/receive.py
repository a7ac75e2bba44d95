"""From raw bytes off a socket to a checked advert for one of our vhids."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from carpd.core.auth import IPAddress
from carpd.core.errors import BadIpHeader, TooShort, UnknownVhid
from carpd.core.packet import IPPROTO_CARP, CarpPacket, check_ttl, decode_carp, parse_ipv4


@dataclass(frozen=True, slots=True)
class Received:
    family: int
    src: IPAddress
    dst: IPAddress
    packet: CarpPacket


@dataclass(frozen=True, slots=True)
class Datagram:
    """A protocol-112 packet off a raw socket: CARP (version 2) or VRRP (version 3)."""

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
    ip4 = parse_ipv4(datagram)
    if ip4.proto != IPPROTO_CARP:
        raise BadIpHeader(f"protocol {ip4.proto} != {IPPROTO_CARP}")
    return Datagram(4, ip4.src, ip4.dst, ip4.ttl, ip4.payload)


def ipv6_datagram(
    payload: bytes, src: ipaddress.IPv6Address, dst: ipaddress.IPv6Address, hoplimit: int
) -> Datagram:
    """The payload of an AF_INET6 raw socket, with the hop limit from ancillary data."""
    return Datagram(6, src, dst, hoplimit, payload)


def decode_ipv4_advert(datagram: bytes) -> Received:
    """A whole IPv4 datagram holding a CARP advert, TTL checked."""
    dg = ipv4_datagram(datagram)
    check_ttl(dg.ttl)
    return Received(4, dg.src, dg.dst, decode_carp(dg.payload))


def decode_ipv6_advert(
    payload: bytes, src: ipaddress.IPv6Address, dst: ipaddress.IPv6Address, hoplimit: int
) -> Received:
    """The payload of an AF_INET6 raw socket holding a CARP advert, hop limit checked."""
    check_ttl(hoplimit)
    return Received(6, src, dst, decode_carp(payload))


V = TypeVar("V")


def lookup_vhid(vhosts: Mapping[int, V], packet: CarpPacket) -> V:
    try:
        return vhosts[packet.vhid]
    except KeyError:
        raise UnknownVhid(packet.vhid) from None
