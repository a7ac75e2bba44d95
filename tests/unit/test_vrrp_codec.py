"""The VRRPv3 codec against the keepalived capture, scapy, and every malformed class."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import struct

import pytest
from helpers_vrrp import KEEPALIVED_PCAP, VIP4, VIP6, Captured, captured_vrrp
from hypothesis import given
from hypothesis import strategies as st

from carpd.core.checksum import internet_checksum
from carpd.core.errors import (
    DROP_REASONS,
    BadAddressCount,
    BadChecksum,
    BadInterval,
    BadIpHeader,
    BadLength,
    BadType,
    BadVersion,
    PacketError,
    TooShort,
)
from carpd.core.model import IPAddress
from carpd.core.packet import CarpPacket
from carpd.core.vrrp import (
    IPPROTO_VRRP,
    VRRP_GROUP_V4,
    VRRP_GROUP_V6,
    VRRP_MAC_V4,
    VRRP_MAC_V6,
    VrrpPacket,
    carp_vmac,
    decode_vrrp,
    pseudo_header,
    vrrp_mac,
)

CAPTURED = captured_vrrp()
IDS = [f"frame{i}-v{c.family}" for i, c in enumerate(CAPTURED)]
KEEPALIVED_V4_SRC = ipaddress.IPv4Address("192.0.2.1")
KEEPALIVED_V6_SRC = ipaddress.IPv6Address("fe80::2007:69ff:feb8:d6af")
V4 = next(c for c in CAPTURED if c.family == 4)
V6 = next(c for c in CAPTURED if c.family == 6)


def with_checksum(payload: bytes, src: IPAddress, dst: IPAddress) -> bytes:
    """Recompute the checksum so that only the intended defect remains."""
    zeroed = payload[:6] + b"\x00\x00" + payload[8:]
    csum = internet_checksum(pseudo_header(src, dst, len(zeroed)) + zeroed)
    return zeroed[:6] + csum.to_bytes(2, "big") + zeroed[8:]


def v4_payload(header: bytes, body: bytes = VIP4.packed) -> bytes:
    return with_checksum(header + body, V4.src, V4.dst)


# -- the capture ------------------------------------------------------------------------


def test_capture_has_three_adverts_per_family() -> None:
    assert [c.family for c in CAPTURED] == [4, 6, 4, 6, 4, 6]
    assert [len(c.frame) for c in CAPTURED] == [46, 78] * 3
    assert KEEPALIVED_PCAP.exists()


@pytest.mark.parametrize("cap", CAPTURED, ids=IDS)
def test_keepalived_ip_header(cap: Captured) -> None:
    assert cap.ttl == 255
    assert cap.proto == IPPROTO_VRRP
    if cap.family == 4:
        assert (cap.src, cap.dst) == (KEEPALIVED_V4_SRC, VRRP_GROUP_V4)
        assert cap.frame[:6] == bytes.fromhex("01005e000012")
    else:
        assert (cap.src, cap.dst) == (KEEPALIVED_V6_SRC, VRRP_GROUP_V6)
        assert cap.frame[:6] == bytes.fromhex("333300000012")
    # keepalived sends from the NIC's MAC, not the virtual router MAC.
    assert cap.frame[6:12] == bytes.fromhex("220769b8d6af")


@pytest.mark.parametrize("cap", CAPTURED, ids=IDS)
def test_keepalived_advert_decodes(cap: Captured) -> None:
    p = decode_vrrp(cap.payload, cap.src, cap.dst)
    assert (p.version, p.type, p.rsvd) == (3, 1, 0)
    assert p.priority == 200
    assert p.interval_cs == 100
    assert p.interval == 1.0
    assert not p.is_release
    if cap.family == 4:
        assert p.vrid == 9
        assert p.addresses == (VIP4,)
        assert p.checksum == 0xA137
        assert cap.payload == bytes.fromhex("3109c8010064a137c00002c8")
    else:
        assert p.vrid == 10
        assert p.addresses == (VIP6,)
        assert p.checksum == 0x7949
        assert cap.payload == bytes.fromhex("310ac80100647949") + VIP6.packed


@pytest.mark.parametrize("cap", CAPTURED, ids=IDS)
def test_keepalived_checksum_covers_the_pseudo_header(cap: Captured) -> None:
    assert internet_checksum(pseudo_header(cap.src, cap.dst, len(cap.payload)) + cap.payload) == 0
    # Without the pseudo-header (CARP's rule) the sum is not zero.
    assert internet_checksum(cap.payload) != 0


def test_pseudo_header_layouts() -> None:
    assert pseudo_header(V4.src, V4.dst, 12) == (
        V4.src.packed + V4.dst.packed + bytes([0, 112]) + (12).to_bytes(2, "big")
    )
    assert pseudo_header(V6.src, V6.dst, 24) == (
        V6.src.packed + V6.dst.packed + (24).to_bytes(4, "big") + bytes([0, 0, 0, 112])
    )


@pytest.mark.parametrize("cap", CAPTURED, ids=IDS)
def test_keepalived_advert_reencodes_byte_for_byte(cap: Captured) -> None:
    p = decode_vrrp(cap.payload, cap.src, cap.dst)
    assert p.encode(cap.src, cap.dst) == cap.payload
    # The checksum field is recomputed, not copied.
    assert dataclasses.replace(p, checksum=0).encode(cap.src, cap.dst) == cap.payload
    built = VrrpPacket(vrid=p.vrid, priority=200, interval_cs=100, addresses=p.addresses)
    assert built.encode(cap.src, cap.dst) == cap.payload


@pytest.mark.parametrize("cap", CAPTURED, ids=IDS)
def test_checksum_depends_on_source_and_destination(cap: Captured) -> None:
    p = decode_vrrp(cap.payload, cap.src, cap.dst)
    other: IPAddress = (
        ipaddress.IPv4Address("192.0.2.3") if cap.family == 4 else ipaddress.IPv6Address("fe80::3")
    )
    assert p.encode(other, cap.dst) != cap.payload
    assert p.encode(cap.src, other) != cap.payload
    with pytest.raises(BadChecksum):
        decode_vrrp(cap.payload, other, cap.dst)
    with pytest.raises(BadChecksum):
        decode_vrrp(cap.payload, cap.src, other)


# -- MACs -------------------------------------------------------------------------------


def test_virtual_macs() -> None:
    assert bytes.fromhex("00005e0001") == VRRP_MAC_V4
    assert bytes.fromhex("00005e0002") == VRRP_MAC_V6
    assert vrrp_mac(9, 4) == bytes.fromhex("00005e000109")
    assert vrrp_mac(10, 6) == bytes.fromhex("00005e00020a")
    assert vrrp_mac(255, 4) == bytes.fromhex("00005e0001ff")
    assert carp_vmac(7) == bytes.fromhex("00005e000107")
    with pytest.raises(ValueError):
        vrrp_mac(256, 4)
    with pytest.raises(ValueError):
        vrrp_mac(1, 5)


# -- encoding ---------------------------------------------------------------------------


def test_encode_several_addresses_and_reserved_bits() -> None:
    addrs = (VIP4, ipaddress.IPv4Address("192.0.2.201"), ipaddress.IPv4Address("192.0.2.202"))
    p = VrrpPacket(vrid=200, priority=1, interval_cs=4095, addresses=addrs, rsvd=0xA)
    raw = p.encode(V4.src, V4.dst)
    assert raw[:6] == bytes([0x31, 200, 1, 3, 0xAF, 0xFF])
    assert raw[8:] == b"".join(a.packed for a in addrs)
    back = decode_vrrp(raw, V4.src, V4.dst)
    assert dataclasses.replace(back, checksum=0) == p
    assert back.encode(V4.src, V4.dst) == raw


@pytest.mark.parametrize(
    "changes",
    [
        {"priority": 256},
        {"priority": -1},
        {"vrid": 256},
        {"interval_cs": 4096},
        {"rsvd": 16},
        {"version": 16},
        {"addresses": ()},
        {"addresses": (VIP6,)},
        {"addresses": (VIP4, VIP6)},
        {"addresses": (VIP4,) * 256},
    ],
)
def test_encode_refuses_what_does_not_fit(changes: dict[str, object]) -> None:
    p = dataclasses.replace(decode_vrrp(V4.payload, V4.src, V4.dst), **changes)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        p.encode(V4.src, V4.dst)


def test_encode_refuses_mixed_source_and_destination() -> None:
    p = decode_vrrp(V4.payload, V4.src, V4.dst)
    with pytest.raises(ValueError):
        p.encode(V4.src, V6.dst)


# -- scapy as an independent codec ------------------------------------------------------
# Another test module loads scapy's CARP contrib, which rebinds IP proto 112 to CARP for
# the whole process, so the VRRPv3 layer is built and parsed explicitly here.


def _scapy_underlayer(cap: Captured):  # type: ignore[no-untyped-def]
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6

    if cap.family == 4:
        return IP(src=str(cap.src), dst=str(cap.dst), proto=112, ttl=255)
    return IPv6(src=str(cap.src), dst=str(cap.dst), nh=112, hlim=255)


@pytest.mark.parametrize("cap", CAPTURED, ids=IDS)
def test_scapy_parses_the_capture_like_we_do(cap: Captured) -> None:
    from scapy.layers.vrrp import VRRPv3

    layer = VRRPv3(cap.payload, _underlayer=_scapy_underlayer(cap))
    ours = decode_vrrp(cap.payload, cap.src, cap.dst)
    assert (layer.version, layer.type, layer.vrid, layer.priority) == (
        ours.version,
        ours.type,
        ours.vrid,
        ours.priority,
    )
    assert (layer.ipcount, layer.res, layer.adv, layer.chksum) == (
        len(ours.addresses),
        ours.rsvd,
        ours.interval_cs,
        ours.checksum,
    )
    assert [ipaddress.ip_address(a) for a in layer.addrlist] == list(ours.addresses)


@pytest.mark.parametrize("cap", CAPTURED, ids=IDS)
def test_scapy_builds_the_same_bytes(cap: Captured) -> None:
    from scapy.layers.vrrp import VRRPv3

    ours = decode_vrrp(cap.payload, cap.src, cap.dst)
    hdr = 20 if cap.family == 4 else 40
    pkt = _scapy_underlayer(cap) / VRRPv3(
        vrid=ours.vrid,
        priority=ours.priority,
        adv=ours.interval_cs,
        addrlist=[str(a) for a in ours.addresses],
    )
    assert bytes(pkt)[hdr:] == ours.encode(cap.src, cap.dst) == cap.payload


@given(
    vrid=st.integers(0, 255),
    priority=st.integers(0, 255),
    interval_cs=st.integers(1, 4095),
    family=st.sampled_from([4, 6]),
    n=st.integers(1, 8),
    seed=st.integers(0, 2**32 - 1),
)
def test_scapy_agrees_on_random_adverts(
    vrid: int, priority: int, interval_cs: int, family: int, n: int, seed: int
) -> None:
    from scapy.layers.vrrp import VRRPv3

    addrs: tuple[IPAddress, ...]
    if family == 4:
        src: IPAddress = ipaddress.IPv4Address("192.0.2.1")
        dst: IPAddress = VRRP_GROUP_V4
        addrs = tuple(ipaddress.IPv4Address((seed + i * 7919) % 2**32) for i in range(n))
    else:
        src, dst = ipaddress.IPv6Address("fe80::1"), VRRP_GROUP_V6
        addrs = tuple(ipaddress.IPv6Address((seed << 64) + i) for i in range(n))
    p = VrrpPacket(vrid=vrid, priority=priority, interval_cs=interval_cs, addresses=addrs)
    raw = p.encode(src, dst)
    cap = Captured(family, src, dst, 255, 112, raw, b"")
    pkt = _scapy_underlayer(cap) / VRRPv3(
        vrid=vrid, priority=priority, adv=interval_cs, addrlist=[str(a) for a in addrs]
    )
    assert bytes(pkt)[20 if family == 4 else 40 :] == raw
    assert dataclasses.replace(decode_vrrp(raw, src, dst), checksum=0) == p


# -- malformed: each class with its typed error ----------------------------------------


def test_vrrp_drop_reasons_are_counted() -> None:
    assert BadAddressCount.reason == "bad_address_count"
    assert BadInterval.reason == "bad_interval"
    assert {BadAddressCount.reason, BadInterval.reason} <= set(DROP_REASONS)
    assert issubclass(BadAddressCount, PacketError)
    assert issubclass(BadInterval, PacketError)


@pytest.mark.parametrize("n", range(8))
def test_too_short(n: int) -> None:
    with pytest.raises(TooShort):
        decode_vrrp(V4.payload[:n], V4.src, V4.dst)
    with pytest.raises(TooShort):
        decode_vrrp(V6.payload[:n], V6.src, V6.dst)


@pytest.mark.parametrize("version", [0, 1, 2, 4, 15])
def test_bad_version(version: int) -> None:
    payload = v4_payload(bytes([(version << 4) | 1]) + V4.payload[1:8])
    with pytest.raises(BadVersion) as e:
        decode_vrrp(payload, V4.src, V4.dst)
    assert e.value.version == version
    assert e.value.expected == 3
    assert str(e.value) == f"invalid version {version} != 3"


def test_carp_advert_is_bad_version() -> None:
    carp = CarpPacket(vhid=9, advbase=1, advskew=0, counter=1, hmac=bytes(20)).encode()
    with pytest.raises(BadVersion) as e:
        decode_vrrp(carp, V4.src, V4.dst)
    assert e.value.version == 2


def test_vrrp_v2_advert_is_bad_version() -> None:
    # RFC 3768: version 2, auth type 0, advert interval 1 s, then 8 bytes of auth data.
    v2 = bytes([0x21, 9, 200, 1, 0, 1, 0, 0]) + VIP4.packed + bytes(8)
    with pytest.raises(BadVersion):
        decode_vrrp(v2, V4.src, V4.dst)


def test_bad_version_default_message_is_unchanged() -> None:
    assert str(BadVersion(3)) == "invalid version 3 != 2"


@pytest.mark.parametrize("type_", [0, 2, 3, 15])
def test_bad_type(type_: int) -> None:
    payload = v4_payload(bytes([0x30 | type_]) + V4.payload[1:8])
    with pytest.raises(BadType) as e:
        decode_vrrp(payload, V4.src, V4.dst)
    assert e.value.type == type_


def test_zero_addresses_is_bad_address_count() -> None:
    with pytest.raises(BadAddressCount):
        decode_vrrp(v4_payload(V4.payload[:3] + b"\x00" + V4.payload[4:8], b""), V4.src, V4.dst)


@pytest.mark.parametrize("count", [2, 3, 255])
def test_count_beyond_the_packet_is_bad_address_count(count: int) -> None:
    payload = v4_payload(V4.payload[:3] + bytes([count]) + V4.payload[4:8])
    with pytest.raises(BadAddressCount):
        decode_vrrp(payload, V4.src, V4.dst)


def test_ipv6_advert_with_ipv4_sized_address_is_bad_address_count() -> None:
    payload = with_checksum(V6.payload[:8] + VIP4.packed, V6.src, V6.dst)
    with pytest.raises(BadAddressCount):
        decode_vrrp(payload, V6.src, V6.dst)


@pytest.mark.parametrize("extra", [b"\x00", b"\x00\x00", bytes(4), bytes(16)])
def test_trailing_bytes_are_bad_length(extra: bytes) -> None:
    with pytest.raises(BadLength):
        decode_vrrp(with_checksum(V4.payload + extra, V4.src, V4.dst), V4.src, V4.dst)
    with pytest.raises(BadLength):
        decode_vrrp(with_checksum(V6.payload + extra, V6.src, V6.dst), V6.src, V6.dst)


def test_ipv6_advert_read_as_ipv4_is_bad_length() -> None:
    # The family comes from the source: 16 bytes of address are four IPv4 addresses'
    # worth, and the count says one.
    src, dst = ipaddress.IPv4Address("192.0.2.1"), VRRP_GROUP_V4
    with pytest.raises(BadLength):
        decode_vrrp(with_checksum(V6.payload, src, dst), src, dst)


def test_zero_interval_is_bad_interval() -> None:
    payload = v4_payload(V4.payload[:4] + b"\x00\x00" + V4.payload[6:8])
    with pytest.raises(BadInterval):
        decode_vrrp(payload, V4.src, V4.dst)
    # Reserved bits set do not make it a valid interval.
    payload = v4_payload(V4.payload[:4] + b"\xf0\x00" + V4.payload[6:8])
    with pytest.raises(BadInterval):
        decode_vrrp(payload, V4.src, V4.dst)


def test_reserved_bits_are_ignored_and_kept() -> None:
    payload = v4_payload(V4.payload[:4] + b"\x50\x64" + V4.payload[6:8])
    p = decode_vrrp(payload, V4.src, V4.dst)
    assert (p.rsvd, p.interval_cs) == (5, 100)
    assert p.encode(V4.src, V4.dst) == payload


@pytest.mark.parametrize(
    ("cap", "index"),
    [(c, i) for c in (V4, V6) for i in range(len(c.payload))],
    ids=[f"v{c.family}-byte{i}" for c in (V4, V6) for i in range(len(c.payload))],
)
def test_any_flipped_bit_fails(cap: Captured, index: int) -> None:
    payload = bytearray(cap.payload)
    payload[index] ^= 0x01
    with pytest.raises(PacketError):
        decode_vrrp(bytes(payload), cap.src, cap.dst)
    if index >= 6:  # past version/type/count/interval: only the checksum catches it
        with pytest.raises(BadChecksum):
            decode_vrrp(bytes(payload), cap.src, cap.dst)


def test_carp_style_checksum_without_pseudo_header_fails() -> None:
    raw = V4.payload[:6] + b"\x00\x00" + V4.payload[8:]
    carp_style = raw[:6] + internet_checksum(raw).to_bytes(2, "big") + raw[8:]
    with pytest.raises(BadChecksum):
        decode_vrrp(carp_style, V4.src, V4.dst)


def test_mixed_families_are_bad_ip_header() -> None:
    with pytest.raises(BadIpHeader):
        decode_vrrp(V4.payload, V4.src, V6.dst)
    with pytest.raises(BadIpHeader):
        decode_vrrp(V6.payload, V6.src, V4.dst)


# -- fuzz -------------------------------------------------------------------------------

_SRC_DST = st.sampled_from(
    [
        (V4.src, V4.dst),
        (V6.src, V6.dst),
        (V4.src, V6.dst),
        (ipaddress.IPv4Address("0.0.0.0"), ipaddress.IPv4Address("255.255.255.255")),
    ]
)


@given(payload=st.binary(max_size=600), ends=_SRC_DST)
def test_decode_raises_only_packet_errors(
    payload: bytes, ends: tuple[IPAddress, IPAddress]
) -> None:
    with contextlib.suppress(PacketError):
        decode_vrrp(payload, *ends)


@given(
    header=st.tuples(
        st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), st.integers(0, 0xFFFF)
    ),
    body=st.binary(max_size=80),
    family=st.sampled_from([4, 6]),
    fix=st.booleans(),
)
def test_decode_of_plausible_adverts_raises_only_packet_errors(
    header: tuple[int, int, int, int], body: bytes, family: int, fix: bool
) -> None:
    cap = V4 if family == 4 else V6
    payload = bytes([0x31]) + struct.pack("!BBBH", *header) + b"\x00\x00" + body
    if fix:
        payload = with_checksum(payload, cap.src, cap.dst)
    try:
        p = decode_vrrp(payload, cap.src, cap.dst)
    except PacketError:
        return
    # What decodes re-encodes to the same bytes.
    assert p.encode(cap.src, cap.dst) == payload
