"""Shared helpers for the tests of carpd.core: a tiny pcap reader, vhost and peer builders."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

from carpd.core.actions import Action, SendAdvert
from carpd.core.auth import Authenticator
from carpd.core.machine import VhostSettings, VirtualHost
from carpd.core.model import IPAddress
from carpd.core.packet import CarpPacket, decode_carp


def ip(addr: str) -> IPAddress:
    return ipaddress.ip_address(addr)


# Adverts of real ucarp and keepalived, captured by python -m carpd_lab.capture_vectors
# (tests/vectors/README.md).
VECTORS = Path(__file__).resolve().parents[1] / "vectors"
UCARP_PCAP = VECTORS / "ucarp-v4-vhid7-secret.pcap"

PASSWORD = "secret"
VHID = 7
VIP = ip("192.0.2.100")
OWN_SRC = ip("192.0.2.2")
PEER_SRC = ip("192.0.2.1")

_LINKTYPE_ETHERNET = 1
_ETHERTYPE_IPV4 = 0x0800


def read_pcap(path: Path) -> list[bytes]:
    """The frames of a classic libpcap file (either byte order, Ethernet link type)."""
    data = path.read_bytes()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError(f"not a classic pcap file: magic {magic.hex()}")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != _LINKTYPE_ETHERNET:
        raise ValueError(f"link type {linktype} is not Ethernet")
    frames, off = [], 24
    while off < len(data):
        _sec, _frac, incl_len, _orig_len = struct.unpack(endian + "IIII", data[off : off + 16])
        off += 16
        frames.append(data[off : off + incl_len])
        off += incl_len
    return frames


def ipv4_datagrams(path: Path) -> list[bytes]:
    """The IPv4 datagrams of a pcap: the frames without their 14-byte Ethernet header."""
    out = []
    for frame in read_pcap(path):
        assert int.from_bytes(frame[12:14], "big") == _ETHERTYPE_IPV4
        out.append(frame[14:])
    return out


def make_auth(
    vhid: int = VHID, password: str = PASSWORD, addrs: Iterable[IPAddress] = (VIP,)
) -> Authenticator:
    return Authenticator(password, vhid, list(addrs))


def make_vhost(
    *,
    counter_start: int = 1000,
    own_sources: dict[int, IPAddress] | None = None,
    password: str = PASSWORD,
    addrs: Sequence[IPAddress] = (VIP,),
    **settings: object,
) -> VirtualHost:
    """A VirtualHost for vhid 7 (unless ``vhid=`` is given); ``settings`` go to VhostSettings."""
    settings.setdefault("vhid", VHID)
    if "families" in settings:
        settings["families"] = frozenset(settings["families"])  # type: ignore[call-overload]
    return VirtualHost(
        VhostSettings(**settings),  # type: ignore[arg-type]
        make_auth(settings["vhid"], password, addrs),  # type: ignore[arg-type]
        counter_start=counter_start,
        own_sources={4: OWN_SRC} if own_sources is None else own_sources,
    )


class Peer:
    """Another node of the group: signs its adverts with its own Authenticator."""

    def __init__(
        self,
        *,
        vhid: int = VHID,
        password: str = PASSWORD,
        addrs: Iterable[IPAddress] = (VIP,),
        counter: int = 0x1122334455660000,
    ) -> None:
        self.vhid = vhid
        self.auth = make_auth(vhid, password, addrs)
        self.counter = counter

    def advert(self, advbase: int = 1, advskew: int = 0, demote: int = 0) -> CarpPacket:
        self.counter += 1
        return CarpPacket(
            vhid=self.vhid,
            advbase=advbase,
            advskew=advskew,
            counter=self.counter,
            hmac=self.auth.sign(self.counter.to_bytes(8, "big")),
            demote=demote,
        )


def kinds(actions: Iterable[Action]) -> list[type]:
    return [type(a) for a in actions]


def sent(actions: Iterable[Action]) -> list[CarpPacket]:
    """The adverts among ``actions``, decoded (which also checks their checksum)."""
    return [decode_carp(a.payload) for a in actions if isinstance(a, SendAdvert)]
