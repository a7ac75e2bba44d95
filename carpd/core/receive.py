"""From raw bytes off a socket to a checked advert for one of our vhids."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from carpd.core.auth import IPAddress
from carpd.core.errors import BadIpHeader, UnknownVhid
from carpd.core.packet import IPPROTO_CARP, CarpPacket, check_ttl, decode_carp, parse_ipv4


@dataclass(frozen=True, slots=True)
class Received:
    family: int
    src: IPAddress
    dst: IPAddress
    packet: CarpPacket


def decode_ipv4_advert(datagram: bytes) -> Received:
    """A whole IPv4 datagram, as an AF_INET raw socket delivers it."""
    ip4 = parse_ipv4(datagram)
    if ip4.proto != IPPROTO_CARP:
        raise BadIpHeader(f"protocol {ip4.proto} != {IPPROTO_CARP}")
    check_ttl(ip4.ttl)
    return Received(4, ip4.src, ip4.dst, decode_carp(ip4.payload))


def decode_ipv6_advert(
    payload: bytes, src: ipaddress.IPv6Address, dst: ipaddress.IPv6Address, hoplimit: int
) -> Received:
    """The payload of an AF_INET6 raw socket, with the hop limit from ancillary data."""
    check_ttl(hoplimit)
    return Received(6, src, dst, decode_carp(payload))


V = TypeVar("V")


def lookup_vhid(vhosts: Mapping[int, V], packet: CarpPacket) -> V:
    try:
        return vhosts[packet.vhid]
    except KeyError:
        raise UnknownVhid(packet.vhid) from None
