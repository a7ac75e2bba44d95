"""Shared helpers for the VRRPv3 tests: the keepalived capture, routers and peers."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from helpers_core import VECTORS, read_pcap

from carpd.core.actions import Action, SendVrrp
from carpd.core.model import IPAddress
from carpd.core.vrrp import VrrpPacket
from carpd.core.vrrp_machine import VrrpRouter, VrrpSettings

KEEPALIVED_PCAP = VECTORS / "keepalived-vrrp3.pcap"

_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_IPV6 = 0x86DD

VRID = 9
VIP4 = ipaddress.IPv4Address("192.0.2.200")
VIP6 = ipaddress.IPv6Address("2001:db8::200")
OWN4 = ipaddress.IPv4Address("192.0.2.2")
OWN6 = ipaddress.IPv6Address("fe80::2")
PEER4 = ipaddress.IPv4Address("192.0.2.1")
PEER6 = ipaddress.IPv6Address("fe80::1")


@dataclass(frozen=True)
class Captured:
    """One captured advert: the IP header fields that matter and the VRRP payload."""

    family: int
    src: IPAddress
    dst: IPAddress
    ttl: int
    proto: int
    payload: bytes
    frame: bytes


def captured_vrrp() -> list[Captured]:
    out = []
    for frame in read_pcap(KEEPALIVED_PCAP):
        ethertype = int.from_bytes(frame[12:14], "big")
        ip = frame[14:]
        if ethertype == _ETHERTYPE_IPV4:
            ihl = (ip[0] & 0x0F) * 4
            total = int.from_bytes(ip[2:4], "big")
            out.append(
                Captured(
                    4,
                    ipaddress.IPv4Address(ip[12:16]),
                    ipaddress.IPv4Address(ip[16:20]),
                    ip[8],
                    ip[9],
                    ip[ihl:total],
                    frame,
                )
            )
        elif ethertype == _ETHERTYPE_IPV6:
            plen = int.from_bytes(ip[4:6], "big")
            out.append(
                Captured(
                    6,
                    ipaddress.IPv6Address(ip[8:24]),
                    ipaddress.IPv6Address(ip[24:40]),
                    ip[7],
                    ip[6],
                    ip[40 : 40 + plen],
                    frame,
                )
            )
        else:
            raise AssertionError(f"unexpected ethertype {ethertype:#06x}")
    return out


def make_router(**settings: Any) -> VrrpRouter:
    """A VrrpRouter for vrid 9 with 192.0.2.200 and/or 2001:db8::200 (as ``families=``
    picks); ``own_sources=`` and ``addresses=`` override, the rest go to VrrpSettings."""
    settings.setdefault("vrid", VRID)
    families = frozenset(settings.pop("families", {4}))
    addresses: Sequence[IPAddress] | None = settings.pop("addresses", None)
    if addresses is None:
        addresses = [a for a in (VIP4, VIP6) if a.version in families]
    own_sources: dict[int, IPAddress] | None = settings.pop("own_sources", None)
    if own_sources is None:
        own_sources = {f: a for f, a in ((4, OWN4), (6, OWN6)) if f in families}
    return VrrpRouter(
        VrrpSettings(families=families, addresses=tuple(addresses), **settings),
        own_sources=own_sources,
    )


def advert(
    priority: int = 100,
    interval_cs: int = 100,
    *,
    vrid: int = VRID,
    addresses: Iterable[IPAddress] = (VIP4,),
) -> VrrpPacket:
    return VrrpPacket(
        vrid=vrid, priority=priority, interval_cs=interval_cs, addresses=tuple(addresses)
    )


def kinds(actions: Iterable[Action]) -> list[type]:
    return [type(a) for a in actions]


def sent(actions: Iterable[Action]) -> list[SendVrrp]:
    return [a for a in actions if isinstance(a, SendVrrp)]
