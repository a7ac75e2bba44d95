"""VRRP version 3 advertisement codec (RFC 5798 section 5; spec section 7.2).

The header, network byte order, then the addresses of one family:

    0  version(4 bits, high) | type(4 bits)     0x31
    1  VRID
    2  priority (0: the master is leaving; 255: the address owner)
    3  count of addresses (at least 1)
    4  rsvd(4 bits, high) | Max Adver Int (12 bits, centiseconds)
    6  checksum: RFC 1071 over a pseudo-header and the VRRP message
    8  the addresses: 4 bytes each from an IPv4 source, 16 bytes each from an IPv6 one

The pseudo-header is IPv4's (source, destination, zero, protocol 112, VRRP length) or
IPv6's from RFC 8200 8.1 (source, destination, 32-bit upper-layer length, three zero
bytes, next header 112). So the checksum depends on the IP addresses around the
message: ``encode`` and ``decode_vrrp`` take them.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from carpd.core.checksum import internet_checksum
from carpd.core.errors import (
    BadAddressCount,
    BadChecksum,
    BadInterval,
    BadIpHeader,
    BadLength,
    BadType,
    BadVersion,
    TooShort,
)
from carpd.core.model import IPAddress

IPPROTO_VRRP = 112
VRRP_VERSION = 3
VRRP_TYPE_ADVERTISEMENT = 1
VRRP_HEADER_LEN = 8
VRRP_TTL = 255
VRRP_GROUP_V4 = ipaddress.IPv4Address("224.0.0.18")
VRRP_GROUP_V6 = ipaddress.IPv6Address("ff02::12")
VRRP_MAX_INTERVAL = 0x0FFF  # the 12-bit Max Adver Int field, in centiseconds
VRRP_PRIORITY_RELEASE = 0  # "the master is leaving": backups take over after Skew_Time
VRRP_PRIORITY_OWNER = 255

# The first five bytes of the virtual router MAC (RFC 5798 7.3); the VRID is the sixth.
VRRP_MAC_V4 = bytes.fromhex("00005e0001")
VRRP_MAC_V6 = bytes.fromhex("00005e0002")

_HEADER = struct.Struct("!BBBBHH")
_ADDR_LEN = {4: 4, 6: 16}


def vrrp_mac(vrid: int, family: int) -> bytes:
    """The virtual router MAC: 00:00:5e:00:01:<vrid> (IPv4), 00:00:5e:00:02:<vrid> (IPv6)."""
    if not 0 <= vrid <= 255:
        raise ValueError(f"vrid {vrid} is not in 0-255")
    if family == 4:
        return VRRP_MAC_V4 + bytes([vrid])
    if family == 6:
        return VRRP_MAC_V6 + bytes([vrid])
    raise ValueError(f"address family {family} is not 4 or 6")


def carp_vmac(vhid: int) -> bytes:
    """The CARP virtual MAC 00:00:5e:00:01:<vhid>, on IPv4 and IPv6 alike."""
    return vrrp_mac(vhid, 4)


def pseudo_header(src: IPAddress, dst: IPAddress, length: int) -> bytes:
    """The pseudo-header the VRRPv3 checksum covers, for a VRRP message of ``length``."""
    if src.version != dst.version:
        raise BadIpHeader(f"source {src} and destination {dst} are of different families")
    if src.version == 4:
        return src.packed + dst.packed + struct.pack("!BBH", 0, IPPROTO_VRRP, length & 0xFFFF)
    return src.packed + dst.packed + struct.pack("!I3xB", length, IPPROTO_VRRP)


@dataclass(frozen=True, slots=True)
class VrrpPacket:
    vrid: int
    priority: int
    interval_cs: int
    addresses: tuple[IPAddress, ...]
    version: int = VRRP_VERSION
    type: int = VRRP_TYPE_ADVERTISEMENT
    rsvd: int = 0
    checksum: int = 0  # as decoded; ignored (recomputed) by encode

    @property
    def interval(self) -> float:
        """Max Adver Int in seconds."""
        return self.interval_cs / 100

    @property
    def is_release(self) -> bool:
        """Priority 0: the master is leaving (RFC 5798 6.4.3, Shutdown)."""
        return self.priority == VRRP_PRIORITY_RELEASE

    def encode(self, src: IPAddress, dst: IPAddress) -> bytes:
        """The VRRP message, with the checksum over the pseudo-header for src -> dst.

        Raises ValueError for fields that do not fit, or addresses not of src's family.
        """
        for name, value, top in (
            ("version", self.version, 0x0F),
            ("type", self.type, 0x0F),
            ("vrid", self.vrid, 0xFF),
            ("priority", self.priority, 0xFF),
            ("rsvd", self.rsvd, 0x0F),
            ("interval_cs", self.interval_cs, VRRP_MAX_INTERVAL),
        ):
            if not 0 <= value <= top:
                raise ValueError(f"{name} {value} is not in 0-{top}")
        if not 1 <= len(self.addresses) <= 255:
            raise ValueError(f"{len(self.addresses)} addresses: VRRPv3 carries 1-255")
        if src.version != dst.version:
            raise ValueError(f"source {src} and destination {dst} are of different families")
        wrong = [a for a in self.addresses if a.version != src.version]
        if wrong:
            raise ValueError(f"addresses {wrong} are not IPv{src.version} like the source {src}")
        raw = _HEADER.pack(
            (self.version << 4) | self.type,
            self.vrid,
            self.priority,
            len(self.addresses),
            (self.rsvd << 12) | self.interval_cs,
            0,
        ) + b"".join(a.packed for a in self.addresses)
        csum = internet_checksum(pseudo_header(src, dst, len(raw)) + raw)
        return raw[:6] + csum.to_bytes(2, "big") + raw[8:]


def decode_vrrp(payload: bytes, src: IPAddress, dst: IPAddress) -> VrrpPacket:
    """Decode the IP payload of a protocol-112 packet from src to dst as a VRRPv3 advert.

    Raises a PacketError subclass; never anything else, for any input.
    """
    if len(payload) < VRRP_HEADER_LEN:
        raise TooShort(f"packet too short {len(payload)}")
    vt, vrid, priority, count, rsvd_interval, csum = _HEADER.unpack_from(payload)
    version, type_ = vt >> 4, vt & 0x0F
    if version != VRRP_VERSION:
        raise BadVersion(version, VRRP_VERSION)
    if type_ != VRRP_TYPE_ADVERTISEMENT:
        raise BadType(type_)
    if src.version != dst.version:
        raise BadIpHeader(f"source {src} and destination {dst} are of different families")
    alen = _ADDR_LEN[src.version]
    body = len(payload) - VRRP_HEADER_LEN
    if count == 0:
        raise BadAddressCount("count of addresses 0 (at least 1)")
    if body < count * alen:
        raise BadAddressCount(
            f"count of addresses {count} needs {count * alen} bytes of IPv{src.version} "
            f"addresses, got {body}"
        )
    if body > count * alen:
        raise BadLength(
            f"packet size {len(payload)} != {VRRP_HEADER_LEN + count * alen} "
            f"for {count} IPv{src.version} addresses"
        )
    if internet_checksum(pseudo_header(src, dst, len(payload)) + payload) != 0:
        raise BadChecksum("checksum failed")
    interval_cs = rsvd_interval & VRRP_MAX_INTERVAL
    if interval_cs == 0:
        raise BadInterval("max advert interval 0")
    addresses: tuple[IPAddress, ...]
    if src.version == 4:
        addresses = tuple(
            ipaddress.IPv4Address(payload[i : i + 4])
            for i in range(VRRP_HEADER_LEN, len(payload), 4)
        )
    else:
        addresses = tuple(
            ipaddress.IPv6Address(payload[i : i + 16])
            for i in range(VRRP_HEADER_LEN, len(payload), 16)
        )
    return VrrpPacket(
        vrid=vrid,
        priority=priority,
        interval_cs=interval_cs,
        addresses=addresses,
        version=version,
        type=type_,
        rsvd=rsvd_interval >> 12,
        checksum=csum,
    )
