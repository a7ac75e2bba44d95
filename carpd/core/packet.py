"""CARP version 2 advertisement codec (spec section 1) and the IPv4 framing around it.

The 36-byte header, network byte order:

    0  version(4 bits, high) | type(4 bits)     0x21
    1  vhid
    2  advskew
    3  authlen (7: counter + HMAC in 32-bit words)
    4  demote (OpenBSD) / reserved (FreeBSD, ucarp)
    5  advbase
    6  checksum (RFC 1071 over these 36 bytes, no pseudo-header)
    8  counter (64 bits)
    16 HMAC-SHA1 digest (20 bytes)
"""

from __future__ import annotations

import dataclasses
import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass

from carpd.core.checksum import internet_checksum
from carpd.core.errors import (
    BadChecksum,
    BadIpHeader,
    BadLength,
    BadTTL,
    BadType,
    BadVersion,
    TooShort,
)

IPPROTO_CARP = 112
CARP_VERSION = 2
CARP_TYPE_ADVERTISEMENT = 1
CARP_AUTHLEN = 7
CARP_HEADER_LEN = 36
CARP_TTL = 255
CARP_GROUP_V4 = ipaddress.IPv4Address("224.0.0.18")
CARP_GROUP_V6 = ipaddress.IPv6Address("ff02::12")
# The "infinite" advert a MASTER sends when it bows out (OpenBSD `ifconfig carp0 down`).
BOW_OUT_ADVBASE = 255
BOW_OUT_ADVSKEW = 255

_HEADER = struct.Struct("!BBBBBBHQ20s")


@dataclass(frozen=True, slots=True)
class CarpPacket:
    vhid: int
    advbase: int
    advskew: int
    counter: int
    hmac: bytes
    demote: int = 0
    version: int = CARP_VERSION
    type: int = CARP_TYPE_ADVERTISEMENT
    authlen: int = CARP_AUTHLEN

    @property
    def is_bow_out(self) -> bool:
        return self.advbase == BOW_OUT_ADVBASE and self.advskew == BOW_OUT_ADVSKEW

    @property
    def counter_bytes(self) -> bytes:
        return self.counter.to_bytes(8, "big")

    def encode(self) -> bytes:
        """The 36 wire bytes, checksum filled in."""
        raw = _HEADER.pack(
            (self.version << 4) | self.type,
            self.vhid,
            self.advskew,
            self.authlen,
            self.demote,
            self.advbase,
            0,
            self.counter,
            self.hmac,
        )
        csum = internet_checksum(raw)
        return raw[:6] + csum.to_bytes(2, "big") + raw[8:]


def checksum_ok(data: bytes) -> bool:
    """Whether RFC 1071's checksum over ``data`` (even length) verifies. The one's-complement
    sum of 16-bit words is the number the bytes spell modulo 0xFFFF (2**16 is 1 there), so
    one big-integer remainder does what a loop over the words does: the sum folds to
    0xFFFF (a checksum of 0) exactly when that remainder is 0 and some byte is not."""
    x = int.from_bytes(data, "big")
    return x != 0 and x % 0xFFFF == 0


def _fast_init() -> Callable[..., CarpPacket]:
    """CarpPacket(...) for decode_carp, at half the cost: a frozen dataclass's __init__
    goes through object.__setattr__ per field; this sets the slots directly, once the
    arguments are known to be in range (every forged advert of a flood is decoded)."""
    s0, s1, s2, s3, s4, s5, s6, s7, s8 = (getattr(CarpPacket, f).__set__ for f in _FIELDS)
    alloc = object.__new__

    def make(
        vhid: int,
        advbase: int,
        advskew: int,
        counter: int,
        hmac: bytes,
        demote: int,
        version: int,
        type_: int,
        authlen: int,
    ) -> CarpPacket:
        p = alloc(CarpPacket)
        s0(p, vhid)
        s1(p, advbase)
        s2(p, advskew)
        s3(p, counter)
        s4(p, hmac)
        s5(p, demote)
        s6(p, version)
        s7(p, type_)
        s8(p, authlen)
        return p

    return make


_FIELDS = tuple(f.name for f in dataclasses.fields(CarpPacket))  # make()'s parameters, in order
_make_carp = _fast_init()


def decode_carp(payload: bytes) -> CarpPacket:
    """Decode the IP payload of a protocol-112 packet as a CARP advertisement.

    Raises a PacketError subclass; never anything else, for any input.
    """
    if len(payload) != CARP_HEADER_LEN:
        if len(payload) < CARP_HEADER_LEN:
            raise TooShort(f"packet too short {len(payload)}")
        raise BadLength(f"packet size {len(payload)} != {CARP_HEADER_LEN}")
    vt, vhid, advskew, authlen, demote, advbase, _csum, counter, digest = _HEADER.unpack(payload)
    if vt != 0x21:  # version 2, type 1: both in one compare
        version, type_ = vt >> 4, vt & 0x0F
        if version != CARP_VERSION:
            raise BadVersion(version)
        raise BadType(type_)
    if not checksum_ok(payload):
        raise BadChecksum("checksum failed")
    return _make_carp(vhid, advbase, advskew, counter, digest, demote, CARP_VERSION, 1, authlen)


@dataclass(frozen=True, slots=True)
class Ipv4Datagram:
    src: ipaddress.IPv4Address
    dst: ipaddress.IPv4Address
    ttl: int
    proto: int
    payload: bytes


# Sources and destinations seen, as address objects: building one costs more than the
# rest of the IPv4 header. Bounded: a flood of random sources empties it now and then.
_V4: dict[bytes, ipaddress.IPv4Address] = {}
_V4_MAX = 1024


def ipv4_address(packed: bytes) -> ipaddress.IPv4Address:
    """``ipaddress.IPv4Address(packed)``, remembered."""
    addr = _V4.get(packed)
    if addr is None:
        if len(_V4) >= _V4_MAX:
            _V4.clear()
        addr = _V4[packed] = ipaddress.IPv4Address(packed)
    return addr


def parse_ipv4(datagram: bytes) -> Ipv4Datagram:
    """Split a raw IPv4 datagram (as a Linux raw socket delivers it) into its parts."""
    if len(datagram) < 20:
        raise TooShort(f"packet too short {len(datagram)}")
    vihl = datagram[0]
    if vihl >> 4 != 4:
        raise BadIpHeader(f"IP version {vihl >> 4}")
    ihl = (vihl & 0x0F) * 4
    total = (datagram[2] << 8) | datagram[3]
    if ihl < 20 or total < ihl or total > len(datagram):
        raise BadIpHeader(f"header length {ihl}, total length {total}, got {len(datagram)}")
    return Ipv4Datagram(
        src=ipv4_address(datagram[12:16]),
        dst=ipv4_address(datagram[16:20]),
        ttl=datagram[8],
        proto=datagram[9],
        payload=datagram[ihl:total],
    )


def check_ttl(ttl: int) -> None:
    """Every peer sends TTL / hop limit 255; anything else crossed a router (or is forged)."""
    if ttl != CARP_TTL:
        raise BadTTL(ttl)


# IPTOS_LOWDELAY, as ucarp and OpenBSD send CARP; keepalived sends VRRP as network control.
CARP_TOS = 0x10
VRRP_TOS = 0xC0


def build_ipv4(
    src: ipaddress.IPv4Address,
    dst: ipaddress.IPv4Address,
    payload: bytes,
    ident: int,
    *,
    ttl: int = CARP_TTL,
    tos: int = CARP_TOS,
    proto: int = IPPROTO_CARP,
) -> bytes:
    """An IPv4 header (DF set, no options) plus payload, as ucarp and OpenBSD send it."""
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        tos,
        20 + len(payload),
        ident & 0xFFFF,
        0x4000,  # DF
        ttl,
        proto,
        0,
        src.packed,
        dst.packed,
    )
    csum = internet_checksum(header)
    return header[:10] + csum.to_bytes(2, "big") + header[12:] + payload
