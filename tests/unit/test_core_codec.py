"""The CARP codec against real ucarp captures, the spec's HMAC vectors, and scapy."""

from __future__ import annotations

import ipaddress

import pytest
from helpers_core import UCARP_PCAP, VIP, ipv4_datagrams, read_pcap
from hypothesis import given
from hypothesis import strategies as st

from carpd.core.auth import HMAC_VARIANTS, Authenticator, carp_key, hashed_addresses
from carpd.core.checksum import internet_checksum
from carpd.core.errors import BadHMAC
from carpd.core.packet import (
    CARP_GROUP_V4,
    IPPROTO_CARP,
    CarpPacket,
    build_ipv4,
    decode_carp,
    parse_ipv4,
)
from carpd.core.receive import decode_ipv4_advert, decode_ipv6_advert

DATAGRAMS = ipv4_datagrams(UCARP_PCAP)
FRAME_IDS = [f"frame{i}" for i in range(len(DATAGRAMS))]
UCARP_MASTER = ipaddress.IPv4Address("192.0.2.1")


# -- the capture ------------------------------------------------------------------------


def test_pcap_reader_finds_four_70_byte_frames() -> None:
    frames = read_pcap(UCARP_PCAP)
    assert [len(f) for f in frames] == [70, 70, 70, 70]
    assert len(DATAGRAMS) == 4
    # Ethernet: to the CARP multicast MAC, from ucarp's 00:00:5e:00:00:<vhid>.
    assert all(f[:6] == bytes.fromhex("01005e000012") for f in frames)
    assert all(f[6:12] == bytes.fromhex("00005e000007") for f in frames)


@pytest.mark.parametrize("datagram", DATAGRAMS, ids=FRAME_IDS)
def test_ucarp_frame_decodes(datagram: bytes) -> None:
    rx = decode_ipv4_advert(datagram)
    assert rx.family == 4
    assert rx.src == UCARP_MASTER
    assert rx.dst == CARP_GROUP_V4
    assert datagram[8] == 255  # TTL
    p = rx.packet
    assert (p.version, p.type) == (2, 1)
    assert p.vhid == 7
    assert p.advbase == 1
    assert p.advskew == 0
    assert p.authlen == 7
    assert p.demote == 0
    assert not p.is_bow_out


def test_ucarp_counters_are_consecutive() -> None:
    # Spec section 3: a master that has heard a peer sends received + 1, then increments.
    counters = [decode_ipv4_advert(d).packet.counter for d in DATAGRAMS]
    # The counter is CARP header bytes 8-15, big-endian (IP header 20 bytes, no options).
    assert counters[0] == int.from_bytes(DATAGRAMS[0][28:36], "big")
    assert counters == [counters[0] + i for i in range(4)]


@pytest.mark.parametrize("datagram", DATAGRAMS, ids=FRAME_IDS)
def test_ucarp_frame_hmac_verifies(datagram: bytes) -> None:
    p = decode_ipv4_advert(datagram).packet
    Authenticator("secret", 7, [VIP]).verify(p.counter_bytes, p.hmac)


@pytest.mark.parametrize("datagram", DATAGRAMS, ids=FRAME_IDS)
@pytest.mark.parametrize(
    ("password", "vhid", "addrs"),
    [
        ("Secret", 7, [VIP]),  # wrong password
        ("secret", 8, [VIP]),  # wrong vhid
        ("secret", 7, [ipaddress.IPv4Address("192.0.2.101")]),  # wrong address
        ("secret", 7, [VIP, ipaddress.IPv4Address("192.0.2.101")]),  # extra address
    ],
)
def test_ucarp_frame_hmac_refuses_wrong_key_material(
    datagram: bytes, password: str, vhid: int, addrs: list[ipaddress.IPv4Address]
) -> None:
    p = decode_ipv4_advert(datagram).packet
    with pytest.raises(BadHMAC):
        Authenticator(password, vhid, addrs).verify(p.counter_bytes, p.hmac)


@pytest.mark.parametrize("datagram", DATAGRAMS, ids=FRAME_IDS)
def test_ucarp_frame_hmac_refuses_altered_counter(datagram: bytes) -> None:
    p = decode_ipv4_advert(datagram).packet
    with pytest.raises(BadHMAC):
        Authenticator("secret", 7, [VIP]).verify((p.counter + 1).to_bytes(8, "big"), p.hmac)


@pytest.mark.parametrize("datagram", DATAGRAMS, ids=FRAME_IDS)
def test_ucarp_carp_header_reencodes_byte_for_byte(datagram: bytes) -> None:
    p = decode_ipv4_advert(datagram).packet
    assert p.encode() == datagram[20:56]


@pytest.mark.parametrize("datagram", DATAGRAMS, ids=FRAME_IDS)
def test_ucarp_carp_header_rebuilt_from_fields_and_our_signature(datagram: bytes) -> None:
    """Sign the captured counter ourselves: the whole 36 bytes must come out identical."""
    p = decode_ipv4_advert(datagram).packet
    ours = CarpPacket(
        vhid=7,
        advbase=1,
        advskew=0,
        counter=p.counter,
        hmac=Authenticator("secret", 7, [VIP]).sign(p.counter_bytes),
    )
    assert ours.encode() == datagram[20:56]


@pytest.mark.parametrize("datagram", DATAGRAMS, ids=FRAME_IDS)
def test_ucarp_ip_datagram_reencodes_byte_for_byte(datagram: bytes) -> None:
    assert len(datagram) == 56
    assert datagram[1] == 0x10  # TOS low delay
    assert datagram[6:8] == b"\x40\x00"  # DF, no fragment offset
    rx = decode_ipv4_advert(datagram)
    ident = int.from_bytes(datagram[4:6], "big")
    rebuilt = build_ipv4(rx.src, rx.dst, rx.packet.encode(), ident=ident)
    assert rebuilt == datagram


def test_parse_ipv4_fields() -> None:
    d = parse_ipv4(DATAGRAMS[0])
    assert (d.src, d.dst, d.ttl, d.proto) == (UCARP_MASTER, CARP_GROUP_V4, 255, IPPROTO_CARP)
    assert d.payload == DATAGRAMS[0][20:]


def test_ethernet_padding_after_ip_total_length_is_ignored() -> None:
    # A short frame may carry padding after the IP datagram; total length bounds it.
    padded = DATAGRAMS[0] + b"\x00" * 4
    assert decode_ipv4_advert(padded) == decode_ipv4_advert(DATAGRAMS[0])


def test_ipv6_advert_decodes_payload() -> None:
    src = ipaddress.IPv6Address("fe80::1")
    rx = decode_ipv6_advert(DATAGRAMS[0][20:], src, ipaddress.IPv6Address("ff02::12"), 255)
    assert rx.family == 6
    assert rx.src == src
    assert rx.packet == decode_ipv4_advert(DATAGRAMS[0]).packet


# -- spec 2.3 computed vectors --------------------------------------------------------

SPEC_VECTORS = [
    (
        "secret",
        1,
        (1, 0),
        ["10.0.0.100"],
        "0102030405060708",
        "cb260119c120bd9028af8e4b937692945a05e4dc",
        "21010007000168090102030405060708cb260119c120bd9028af8e4b937692945a05e4dc",
    ),
    (
        "secret",
        1,
        (1, 100),
        ["10.0.0.101", "10.0.0.100"],  # given unsorted: the Authenticator sorts them
        "0102030405060708",
        "0a45fec67a1c1a4748d0ca9c9151b2655d2a909c",
        "210164070001888701020304050607080a45fec67a1c1a4748d0ca9c9151b2655d2a909c",
    ),
    (
        "",
        5,
        (2, 50),
        ["192.168.1.10"],
        "0000000000000001",
        "3edd64b415d53555f513d2f84f878ddfaab11fb3",
        "2105320700024e5c00000000000000013edd64b415d53555f513d2f84f878ddfaab11fb3",
    ),
]


@pytest.mark.parametrize(
    ("password", "vhid", "base_skew", "addrs", "counter", "digest", "header"),
    SPEC_VECTORS,
    ids=["secret-1-addr", "secret-2-addrs", "empty-password"],
)
def test_spec_vectors(
    password: str,
    vhid: int,
    base_skew: tuple[int, int],
    addrs: list[str],
    counter: str,
    digest: str,
    header: str,
) -> None:
    auth = Authenticator(password, vhid, [ipaddress.ip_address(a) for a in addrs])
    counter_bytes = bytes.fromhex(counter)
    assert auth.sign(counter_bytes).hex() == digest
    advbase, advskew = base_skew
    pkt = CarpPacket(
        vhid=vhid,
        advbase=advbase,
        advskew=advskew,
        counter=int(counter, 16),
        hmac=bytes.fromhex(digest),
    )
    assert pkt.encode().hex() == header
    assert decode_carp(bytes.fromhex(header)) == pkt
    auth.verify(counter_bytes, bytes.fromhex(digest))


def test_spec_inner_message_first_vector() -> None:
    # Spec 2.3: the inner message is 02 01 01 0a000064 0102030405060708.
    assert hashed_addresses([ipaddress.IPv4Address("10.0.0.100")]) == bytes.fromhex("0a000064")


def test_hashed_addresses_order_and_link_local() -> None:
    a = [
        ipaddress.ip_address("2001:db8::2"),
        ipaddress.ip_address("fe80::1"),
        ipaddress.ip_address("10.0.0.2"),
        ipaddress.ip_address("2001:db8::1"),
        ipaddress.ip_address("10.0.0.1"),
        ipaddress.ip_address("10.0.0.1"),  # duplicates hashed once
    ]
    v4 = bytes.fromhex("0a0000010a000002")
    v6 = bytes.fromhex("20010db8" + "00" * 11 + "0120010db8" + "00" * 11 + "02")
    assert hashed_addresses(a) == v4 + v6
    ll = bytes.fromhex("fe80" + "00" * 13 + "01")
    assert hashed_addresses(a, with_link_local=True) == v4 + v6 + ll


def test_the_addresses_no_kernel_hashes_are_left_out() -> None:
    """The kernels' "next larger than the last" loops can never pick 0.0.0.0,
    255.255.255.255, :: or ffff:...:ffff, and pick an address once."""
    addrs = [
        ipaddress.ip_address(a)
        for a in ("0.0.0.0", "255.255.255.255", "192.0.2.1", "::", "ffff:" * 7 + "ffff")
    ]
    assert hashed_addresses([*addrs, ipaddress.ip_address("192.0.2.1")]) == bytes.fromhex(
        "c0000201"
    )


def test_link_local_scope_bytes_are_zeroed_as_the_kernels_do() -> None:
    """A kernel keeps the scope in bytes 2-3 of a link-local address and zeroes them
    before hashing and sorting: fe80:5::1 is hashed as fe80::1."""
    scoped = [ipaddress.ip_address("fe80:5::1"), ipaddress.ip_address("2001:db8::1")]
    plain = [ipaddress.ip_address("fe80::1"), ipaddress.ip_address("2001:db8::1")]
    assert hashed_addresses(scoped, with_link_local=True) == hashed_addresses(
        plain, with_link_local=True
    )


# Computed from the kernels' own construction, independently of carpd's code: FreeBSD's
# carp_hmac_prepare (sys/netinet/ip_carp.c, VRRP-capable version) and OpenBSD 1.370's
# carp_hmac_prepare_ctx (ORIG = FreeBSD's, NOV6LL = without link-local). Password
# "secret", vhid 1, counter 0102030405060708.
KERNEL_VECTORS = [
    (
        ("192.0.2.100", "2001:db8::100", "fe80::1"),
        "020101c000026420010db8000000000000000000000100fe800000000000000000000000000001",
        "37094a59cf1ad778068f7132ce73e1888c67ec23",
        "020101c000026420010db8000000000000000000000100",
        "c5aab719044bbb47dfa6ed7ced1b4f3587af6a52",
    ),
    (
        ("fe80::1", "2001:db8::100"),
        "02010120010db8000000000000000000000100fe800000000000000000000000000001",
        "d271a3e12af8dbf3400630f6a2e6f3c92311e7f2",
        "02010120010db8000000000000000000000100",
        "c47ba41c7f2350a82f086e01094ce08a31e7d682",
    ),
]
COUNTER = bytes.fromhex("0102030405060708")


@pytest.mark.parametrize(
    ("addrs", "freebsd_msg", "freebsd", "openbsd_msg", "openbsd"), KERNEL_VECTORS
)
def test_bsd_kernel_vectors_with_a_link_local_and_a_global_address(
    addrs: tuple[str, ...], freebsd_msg: str, freebsd: str, openbsd_msg: str, openbsd: str
) -> None:
    ips = [ipaddress.ip_address(a) for a in addrs]
    prefix = bytes((2, 1, 1))
    assert (prefix + hashed_addresses(ips, with_link_local=True)).hex() == freebsd_msg
    assert (prefix + hashed_addresses(ips)).hex() == openbsd_msg
    # Signing follows the vhid's hmac_variant; OpenBSD's is the default.
    assert Authenticator("secret", 1, ips).sign(COUNTER).hex() == openbsd
    assert Authenticator("secret", 1, ips, "openbsd").sign(COUNTER).hex() == openbsd
    assert Authenticator("secret", 1, ips, "freebsd").sign(COUNTER).hex() == freebsd
    # Verifying accepts both, as OpenBSD does, whichever variant we sign with: a FreeBSD
    # peer's adverts and an OpenBSD peer's alike.
    for variant in HMAC_VARIANTS:
        auth = Authenticator("secret", 1, ips, variant)
        auth.verify(COUNTER, bytes.fromhex(freebsd))
        auth.verify(COUNTER, bytes.fromhex(openbsd))
        with pytest.raises(BadHMAC):
            auth.verify(COUNTER, bytes.fromhex(freebsd)[::-1])


def test_without_a_link_local_address_both_variants_sign_alike() -> None:
    """ucarp, and any BSD peer of a vhid without link-local addresses, sees one HMAC."""
    ips = [ipaddress.ip_address("192.0.2.100"), ipaddress.ip_address("2001:db8::100")]
    signed = {Authenticator("secret", 1, ips, v).sign(COUNTER) for v in HMAC_VARIANTS}
    assert len(signed) == 1


def test_carp_key_limits_to_19_bytes() -> None:
    assert carp_key("x" * 19) == b"x" * 19
    assert carp_key(b"\x01\x02") == b"\x01\x02"
    with pytest.raises(ValueError):
        carp_key("x" * 20)


# -- scapy as an independent codec ----------------------------------------------------


@pytest.fixture(scope="module")
def scapy_carp():  # type: ignore[no-untyped-def]
    from scapy.main import load_contrib

    # Note: loading this contrib rebinds IP proto 112 from VRRP to CARP process-wide.
    load_contrib("carp")
    from scapy.contrib.carp import CARP

    return CARP


def _scapy_fields(layer) -> dict[str, object]:  # type: ignore[no-untyped-def]
    counter = (layer.counter1 << 32) | layer.counter2
    digest = b"".join(int(getattr(layer, f"hmac{i}")).to_bytes(4, "big") for i in range(1, 6))
    return {
        "version": layer.version,
        "type": layer.type,
        "vhid": layer.vhid,
        "advskew": layer.advskew,
        "authlen": layer.authlen,
        "demote": layer.demotion,
        "advbase": layer.advbase,
        "counter": counter,
        "hmac": digest,
    }


def _our_fields(p: CarpPacket) -> dict[str, object]:
    return {
        "version": p.version,
        "type": p.type,
        "vhid": p.vhid,
        "advskew": p.advskew,
        "authlen": p.authlen,
        "demote": p.demote,
        "advbase": p.advbase,
        "counter": p.counter,
        "hmac": p.hmac,
    }


def _scapy_checksum(scapy_carp, p: CarpPacket) -> int:  # type: ignore[no-untyped-def]
    """Let scapy build the header from the fields (chksum=None) and compute the checksum."""
    built = bytes(
        scapy_carp(
            version=p.version,
            type=p.type,
            vhid=p.vhid,
            advskew=p.advskew,
            authlen=p.authlen,
            demotion=p.demote,
            advbase=p.advbase,
            counter1=p.counter >> 32,
            counter2=p.counter & 0xFFFFFFFF,
            hmac1=int.from_bytes(p.hmac[0:4], "big"),
            hmac2=int.from_bytes(p.hmac[4:8], "big"),
            hmac3=int.from_bytes(p.hmac[8:12], "big"),
            hmac4=int.from_bytes(p.hmac[12:16], "big"),
            hmac5=int.from_bytes(p.hmac[16:20], "big"),
        )
    )
    assert len(built) == 36
    return int.from_bytes(built[6:8], "big")


@pytest.mark.parametrize("datagram", DATAGRAMS, ids=FRAME_IDS)
def test_scapy_agrees_on_captured_frames(scapy_carp, datagram: bytes) -> None:  # type: ignore[no-untyped-def]
    from scapy.layers.inet import IP

    ours = decode_ipv4_advert(datagram)
    encoded = build_ipv4(
        ours.src, ours.dst, ours.packet.encode(), ident=int.from_bytes(datagram[4:6], "big")
    )
    pkt = IP(encoded)
    assert (pkt.src, pkt.dst, pkt.ttl, pkt.proto, pkt.tos) == (
        "192.0.2.1",
        "224.0.0.18",
        255,
        112,
        0x10,
    )
    assert pkt.flags == "DF"
    layer = scapy_carp(bytes(pkt.payload))
    assert _scapy_fields(layer) == _our_fields(ours.packet)
    assert layer.chksum == int.from_bytes(encoded[26:28], "big")
    assert _scapy_checksum(scapy_carp, ours.packet) == layer.chksum
    # scapy's IP header checksum equals the one build_ipv4 wrote.
    fresh = IP(encoded)
    del fresh.chksum
    assert IP(bytes(fresh)).chksum == pkt.chksum


carp_packets = st.builds(
    CarpPacket,
    vhid=st.integers(0, 255),
    advbase=st.integers(0, 255),
    advskew=st.integers(0, 255),
    counter=st.integers(0, 2**64 - 1),
    hmac=st.binary(min_size=20, max_size=20),
    demote=st.integers(0, 255),
    authlen=st.integers(0, 255),
)


@given(p=carp_packets)
def test_encode_decode_roundtrip(p: CarpPacket) -> None:
    wire = p.encode()
    assert len(wire) == 36
    assert internet_checksum(wire) == 0
    assert decode_carp(wire) == p


@given(p=carp_packets)
def test_scapy_decodes_our_encoding(scapy_carp, p: CarpPacket) -> None:  # type: ignore[no-untyped-def]
    from scapy.utils import checksum

    wire = p.encode()
    layer = scapy_carp(wire)
    assert _scapy_fields(layer) == _our_fields(p)
    assert layer.chksum == int.from_bytes(wire[6:8], "big")
    assert checksum(wire[:6] + b"\x00\x00" + wire[8:]) == layer.chksum
    assert _scapy_checksum(scapy_carp, p) == layer.chksum


@given(
    src=st.integers(0, 2**32 - 1),
    dst=st.integers(0, 2**32 - 1),
    ident=st.integers(0, 0xFFFF),
    tos=st.integers(0, 255),
    ttl=st.integers(0, 255),
    payload=st.binary(max_size=64),
)
def test_scapy_agrees_with_build_ipv4(
    src: int, dst: int, ident: int, tos: int, ttl: int, payload: bytes
) -> None:
    from scapy.layers.inet import IP

    ours = build_ipv4(
        ipaddress.IPv4Address(src),
        ipaddress.IPv4Address(dst),
        payload,
        ident=ident,
        tos=tos,
        ttl=ttl,
    )
    theirs = bytes(
        IP(
            src=str(ipaddress.IPv4Address(src)),
            dst=str(ipaddress.IPv4Address(dst)),
            id=ident,
            tos=tos,
            ttl=ttl,
            proto=112,
            flags="DF",
        )
        / payload
    )
    assert ours == theirs
    parsed = parse_ipv4(ours)
    assert (int(parsed.src), int(parsed.dst), parsed.ttl, parsed.payload) == (
        src,
        dst,
        ttl,
        payload,
    )
