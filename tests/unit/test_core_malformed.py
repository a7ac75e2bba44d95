"""Every way a received packet is refused, each with its own typed error."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress

import pytest
from helpers_core import (
    OWN_SRC,
    PEER_SRC,
    UCARP_PCAP,
    VECTORS,
    Peer,
    ip,
    ipv4_datagrams,
    make_vhost,
    read_pcap,
)
from hypothesis import given
from hypothesis import strategies as st

from carpd.core.checksum import internet_checksum
from carpd.core.errors import (
    DROP_REASONS,
    BadChecksum,
    BadHMAC,
    BadIpHeader,
    BadLength,
    BadTTL,
    BadType,
    BadVersion,
    OwnAdvert,
    PacketError,
    TooShort,
    UnknownVhid,
)
from carpd.core.machine import VirtualHost
from carpd.core.model import State
from carpd.core.packet import (
    CARP_GROUP_V4,
    CARP_VERSION,
    CarpPacket,
    build_ipv4,
    decode_carp,
    parse_ipv4,
)
from carpd.core.receive import (
    Member,
    VhidClash,
    classify,
    decode_ipv4_advert,
    decode_ipv6_advert,
    ipv4_datagram,
)
from carpd.core.vrrp import VRRP_VERSION

VALID_DATAGRAM = ipv4_datagrams(UCARP_PCAP)[0]
VALID_CARP = VALID_DATAGRAM[20:]
V6_SRC = ipaddress.IPv6Address("fe80::1")
V6_DST = ipaddress.IPv6Address("ff02::12")


def fix_checksum(carp: bytes) -> bytes:
    """Recompute the CARP checksum so that only the intended defect remains."""
    zeroed = carp[:6] + b"\x00\x00" + carp[8:]
    return zeroed[:6] + internet_checksum(zeroed).to_bytes(2, "big") + zeroed[8:]


def ipv4(payload: bytes, *, ttl: int = 255, proto: int = 112) -> bytes:
    return build_ipv4(PEER_SRC, CARP_GROUP_V4, payload, ident=1, ttl=ttl, proto=proto)


def test_valid_baseline_decodes() -> None:
    # The base every mutation below starts from is itself accepted.
    assert fix_checksum(VALID_CARP) == VALID_CARP
    decode_carp(VALID_CARP)
    decode_ipv4_advert(VALID_DATAGRAM)
    decode_ipv4_advert(ipv4(VALID_CARP))


def test_drop_reasons_are_distinct_and_complete() -> None:
    import carpd.core.errors as errors

    classes = [
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, PacketError) and c is not PacketError
    ]
    assert {c.reason for c in classes} == set(DROP_REASONS)
    assert len(set(DROP_REASONS)) == len(DROP_REASONS) == len(classes)
    assert {
        TooShort,
        BadLength,
        BadIpHeader,
        BadTTL,
        BadVersion,
        BadType,
        BadChecksum,
        UnknownVhid,
        BadHMAC,
        OwnAdvert,
    } <= set(classes)


# -- length ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 8, 35])
def test_short_carp_payload(n: int) -> None:
    with pytest.raises(TooShort):
        decode_carp(VALID_CARP[:n])
    with pytest.raises(TooShort):
        decode_ipv4_advert(ipv4(VALID_CARP[:n]))
    with pytest.raises(TooShort):
        decode_ipv6_advert(VALID_CARP[:n], V6_SRC, V6_DST, 255)


@pytest.mark.parametrize("n", [0, 1, 19])
def test_short_ip_datagram(n: int) -> None:
    with pytest.raises(TooShort):
        decode_ipv4_advert(VALID_DATAGRAM[:n])


def test_ip_datagram_cut_inside_carp_header() -> None:
    # The IP header still claims 56 bytes, only 50 arrived.
    with pytest.raises(BadIpHeader):
        decode_ipv4_advert(VALID_DATAGRAM[:50])


@pytest.mark.parametrize("extra", [1, 4, 100])
def test_too_long_carp_payload(extra: int) -> None:
    longer = VALID_CARP + b"\x00" * extra
    with pytest.raises(BadLength):
        decode_carp(longer)
    with pytest.raises(BadLength):
        decode_ipv4_advert(ipv4(longer))
    with pytest.raises(BadLength):
        decode_ipv6_advert(longer, V6_SRC, V6_DST, 255)


def test_keepalived_vrrp3_adverts_are_refused() -> None:
    """Real VRRPv3 (same protocol number 112) on a vhid that runs CARP: decoded as VRRP
    and refused as a clash (counted bad_version, and named in the diagnosis)."""
    for frame in read_pcap(VECTORS / "keepalived-vrrp3.pcap"):
        ethertype = int.from_bytes(frame[12:14], "big")
        if ethertype == 0x0800:
            with pytest.raises(VhidClash):
                decode_ipv4_advert(frame[14:])
        else:
            assert ethertype == 0x86DD
            ip6 = frame[14:]
            src = ipaddress.IPv6Address(ip6[8:24])
            dst = ipaddress.IPv6Address(ip6[24:40])
            with pytest.raises(VhidClash):
                decode_ipv6_advert(ip6[40:], src, dst, ip6[7])


# -- IP header ------------------------------------------------------------------------


def _with_ip_checksum(header_and_payload: bytearray) -> bytes:
    h = header_and_payload
    ihl = (h[0] & 0x0F) * 4
    h[10:12] = b"\x00\x00"
    h[10:12] = internet_checksum(bytes(h[:ihl])).to_bytes(2, "big")
    return bytes(h)


@pytest.mark.parametrize(
    ("offset", "value", "why"),
    [
        (0, 0x65, "IP version 6"),
        (0, 0x44, "header length 16 < 20"),
        (0, 0x40, "header length 0"),
        (0, 0x4F, "header length 60 > total length 56"),
        (2, 0x01, "total length 312 > 56 bytes received"),  # byte 2 is the high byte
    ],
)
def test_bad_ip_header(offset: int, value: int, why: str) -> None:
    d = bytearray(VALID_DATAGRAM)
    d[offset] = value
    with pytest.raises(BadIpHeader):
        decode_ipv4_advert(_with_ip_checksum(d))


def test_total_length_shorter_than_header() -> None:
    d = bytearray(VALID_DATAGRAM)
    d[2:4] = (19).to_bytes(2, "big")
    with pytest.raises(BadIpHeader):
        parse_ipv4(bytes(d))


@pytest.mark.parametrize("proto", [0, 6, 17, 111, 113])
def test_wrong_ip_protocol(proto: int) -> None:
    with pytest.raises(BadIpHeader):
        decode_ipv4_advert(ipv4(VALID_CARP, proto=proto))


def test_ip_options_are_skipped() -> None:
    # A 24-byte header (one word of options, here 4 NOPs) still delivers the CARP payload.
    d = bytearray(VALID_DATAGRAM[:20] + b"\x01\x01\x01\x01" + VALID_CARP)
    d[0] = 0x46
    d[2:4] = len(d).to_bytes(2, "big")
    rx = decode_ipv4_advert(_with_ip_checksum(d))
    assert rx.packet == decode_carp(VALID_CARP)


# -- TTL ------------------------------------------------------------------------------


@pytest.mark.parametrize("ttl", [0, 1, 64, 128, 254])
def test_bad_ttl_ipv4(ttl: int) -> None:
    with pytest.raises(BadTTL) as exc:
        decode_ipv4_advert(ipv4(VALID_CARP, ttl=ttl))
    assert exc.value.ttl == ttl


@pytest.mark.parametrize("hoplimit", [0, 1, 64, 254])
def test_bad_hop_limit_ipv6(hoplimit: int) -> None:
    with pytest.raises(BadTTL) as exc:
        decode_ipv6_advert(VALID_CARP, V6_SRC, V6_DST, hoplimit)
    assert exc.value.ttl == hoplimit


def test_a_forwarded_packet_is_refused_whatever_its_payload() -> None:
    # The TTL rule applies once the vhid is known (unicast peers may be routed), so a
    # forwarded advert is refused for its TTL, and forwarded garbage for what it is.
    with pytest.raises(BadTTL):
        decode_ipv4_advert(ipv4(VALID_CARP, ttl=64))
    with pytest.raises(BadVersion):
        decode_ipv4_advert(ipv4(b"garbage", ttl=64))
    with pytest.raises(BadVersion):
        decode_ipv6_advert(b"garbage", V6_SRC, V6_DST, 64)


# -- CARP header ----------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1, 3, 4, 15])
def test_bad_version(version: int) -> None:
    carp = bytearray(VALID_CARP)
    carp[0] = (version << 4) | 1
    bad = fix_checksum(bytes(carp))
    with pytest.raises(BadVersion) as exc:
        decode_carp(bad)
    assert exc.value.version == version
    # Version 3 is VRRPv3's: the receive path decodes it as such (and its checksum,
    # which covers a pseudo-header, fails).
    with pytest.raises(BadChecksum if version == 3 else BadVersion):
        decode_ipv4_advert(ipv4(bad))


@pytest.mark.parametrize("type_", [0, 2, 3, 15])
def test_bad_type(type_: int) -> None:
    carp = bytearray(VALID_CARP)
    carp[0] = 0x20 | type_
    bad = fix_checksum(bytes(carp))
    with pytest.raises(BadType) as exc:
        decode_carp(bad)
    assert exc.value.type == type_
    with pytest.raises(BadType):
        decode_ipv4_advert(ipv4(bad))


@pytest.mark.parametrize("offset", [1, 2, 3, 4, 5, 6, 7, 8, 15, 16, 35])
def test_bad_checksum(offset: int) -> None:
    carp = bytearray(VALID_CARP)
    carp[offset] ^= 0x01
    with pytest.raises(BadChecksum):
        decode_carp(bytes(carp))
    with pytest.raises(BadChecksum):
        decode_ipv4_advert(ipv4(bytes(carp)))


def test_zeroed_checksum_is_refused() -> None:
    # A sender that forgot to fill in the checksum (or relies on offload) is refused.
    carp = bytearray(VALID_CARP)
    carp[6:8] = b"\x00\x00"
    with pytest.raises(BadChecksum):
        decode_carp(bytes(carp))


# -- vhid lookup ----------------------------------------------------------------------


def test_unknown_vhid() -> None:
    vh7 = make_vhost(vhid=7)
    carp = Member(CARP_VERSION, check_ttl=True)
    found, _ = classify(
        ipv4_datagram(ipv4(Peer(vhid=7).advert().encode())), {7: vh7}, lambda v: carp
    )
    assert found is vh7
    for vhosts in ({7: vh7}, {}):
        with pytest.raises(UnknownVhid) as exc:
            classify(ipv4_datagram(ipv4(Peer(vhid=8).advert().encode())), vhosts, lambda v: carp)
        assert exc.value.vhid == 8


# -- the daemon's receive path: classify ---------------------------------------------

CARP7 = Member(CARP_VERSION, check_ttl=True)


def classified(datagram: bytes, vhids: dict[int, Member]) -> object:
    _, pkt = classify(ipv4_datagram(datagram), vhids, lambda m: m)
    return pkt


def test_classify_finds_the_vhid_and_checks_what_it_runs() -> None:
    pkt = classified(VALID_DATAGRAM, {7: CARP7})
    assert isinstance(pkt, CarpPacket) and pkt.vhid == 7
    with pytest.raises(UnknownVhid):
        classified(VALID_DATAGRAM, {8: CARP7})
    # A CARP advert for a vhid that runs VRRPv3: refused as bad_version, and the vhid
    # is named so the daemon can diagnose the clash.
    with pytest.raises(VhidClash) as exc:
        classified(VALID_DATAGRAM, {7: Member(VRRP_VERSION, check_ttl=True)})
    assert (exc.value.reason, exc.value.vhid, exc.value.version) == ("bad_version", 7, 2)
    with pytest.raises(BadVersion):
        classified(ipv4(bytes([0x41]) + VALID_CARP[1:]), {7: CARP7})


def test_classify_applies_the_ttl_rule_unless_peers_are_unicast() -> None:
    routed = ipv4(VALID_CARP, ttl=63)
    with pytest.raises(BadTTL):
        classified(routed, {7: CARP7})
    assert classified(routed, {7: Member(CARP_VERSION, check_ttl=False)}) is not None


# -- refusals inside the state machine: nothing may change -----------------------------


def snapshot(vh: VirtualHost) -> tuple[object, ...]:
    c = vh.counters
    return (
        vh.state,
        vh.get_timer(),
        vh.master,
        c.adverts_sent,
        c.adverts_received,
        c.transitions,
        dict(c.dropped),
        vh.last_transition,
    )


def backup_vhost(**settings: object) -> VirtualHost:
    vh = make_vhost(**settings)
    vh.start(0.0)
    vh.drain()
    assert vh.state is State.BACKUP
    return vh


def master_vhost(**settings: object) -> VirtualHost:
    vh = backup_vhost(**settings)
    vh.handle_timer(vh.get_timer())  # type: ignore[arg-type]
    vh.drain()
    assert vh.state is State.MASTER
    return vh


def assert_refused(vh: VirtualHost, exc: type[PacketError], *args: object) -> None:
    before = snapshot(vh)
    with pytest.raises(exc):
        vh.receive(*args)  # type: ignore[arg-type]
    assert snapshot(vh) == before
    assert vh.drain() == []


@pytest.mark.parametrize(
    "forger",
    [
        Peer(password="wrong"),
        Peer(vhid=8),  # a vhid 8 key, packet relabelled as vhid 7 below
        Peer(addrs=[ip("192.0.2.101")]),
    ],
    ids=["password", "vhid", "addresses"],
)
def test_bad_hmac_backup_no_takeover(forger: Peer) -> None:
    """A forged bow-out would make a BACKUP take over at once; forged, it changes nothing."""
    vh = backup_vhost()
    pkt = dataclasses.replace(forger.advert(advbase=255, advskew=255), vhid=7)
    assert_refused(vh, BadHMAC, pkt, 4, PEER_SRC, 1.0)
    # The genuine one does take over (so the refusal above is what prevented it).
    vh.receive(Peer().advert(advbase=255, advskew=255), 4, PEER_SRC, 1.0)
    assert vh.state is State.MASTER


def test_bad_hmac_master_no_step_down() -> None:
    vh = master_vhost(advskew=100)
    assert_refused(vh, BadHMAC, Peer(password="wrong").advert(advskew=0), 4, PEER_SRC, 3.5)
    vh.receive(Peer().advert(advskew=0), 4, PEER_SRC, 3.5)
    assert vh.state is State.BACKUP


def test_bad_hmac_tampered_digest() -> None:
    vh = backup_vhost()
    good = Peer().advert()
    bad = dataclasses.replace(good, hmac=bytes([good.hmac[0] ^ 1]) + good.hmac[1:])
    assert_refused(vh, BadHMAC, bad, 4, PEER_SRC, 1.0)


def test_own_advert_looped_back_backup() -> None:
    vh = backup_vhost(advskew=100, preempt=True)
    # Our own key, our own source: validly signed, would otherwise preempt (ours < theirs).
    looped = Peer().advert(advskew=200)
    assert_refused(vh, OwnAdvert, looped, 4, OWN_SRC, 1.0)
    vh.receive(looped, 4, PEER_SRC, 1.0)
    assert vh.state is State.MASTER


def test_own_advert_looped_back_master() -> None:
    # With the BSD tie-break an equal advert makes a master step down: our own echo must not.
    vh = master_vhost(tiebreak="bsd")
    timer = vh.get_timer()
    echo = Peer().advert(advbase=1, advskew=0)
    assert_refused(vh, OwnAdvert, echo, 4, OWN_SRC, 3.5)
    assert vh.get_timer() == timer
    vh.receive(echo, 4, PEER_SRC, 3.5)
    assert vh.state is State.BACKUP


def test_own_advert_any_family() -> None:
    own6 = ip("2001:db8::2")
    vh = backup_vhost(own_sources={4: OWN_SRC, 6: own6}, families={4, 6})
    assert_refused(vh, OwnAdvert, Peer().advert(255, 255), 6, own6, 1.0)
    assert_refused(vh, OwnAdvert, Peer().advert(255, 255), 4, OWN_SRC, 1.0)


def test_init_state_ignores_adverts() -> None:
    vh = make_vhost()
    vh.receive(Peer().advert(255, 255), 4, PEER_SRC, 1.0)
    assert vh.state is State.INIT
    assert vh.get_timer() is None
    assert vh.drain() == []


# -- properties: nothing but PacketError, whatever the input --------------------------


def _decode_all(data: bytes) -> None:
    for fn in (decode_carp, decode_ipv4_advert, parse_ipv4):
        with contextlib.suppress(PacketError):
            fn(data)
    with contextlib.suppress(PacketError):
        decode_ipv6_advert(data, V6_SRC, V6_DST, 255)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_packet_errors(data: bytes) -> None:
    _decode_all(data)


@given(st.binary(min_size=36, max_size=36))
def test_arbitrary_36_bytes_raise_only_packet_errors(data: bytes) -> None:
    _decode_all(data)
    _decode_all(fix_checksum(data))


@given(
    mutations=st.lists(st.tuples(st.integers(0, 55), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, 60),
    tail=st.binary(max_size=8),
    fix=st.booleans(),
)
def test_mutated_frame_raises_only_packet_errors(
    mutations: list[tuple[int, int]], cut: int, tail: bytes, fix: bool
) -> None:
    d = bytearray(VALID_DATAGRAM)
    for offset, value in mutations:
        d[offset] = value
    if fix:
        d[20:56] = fix_checksum(bytes(d[20:56]))
    data = bytes(d[:cut]) + tail
    _decode_all(data)
    _decode_all(bytes(d))
    _decode_all(bytes(d[20:]))


@given(st.lists(st.tuples(st.integers(0, 35), st.integers(1, 255)), min_size=1, max_size=4))
def test_any_unfixed_corruption_of_the_carp_header_is_refused(
    flips: list[tuple[int, int]],
) -> None:
    """Corruption that leaves the checksum as it was is always caught by some check."""
    carp = bytearray(VALID_CARP)
    for offset, mask in flips:
        carp[offset] ^= mask
    if bytes(carp) == VALID_CARP or internet_checksum(bytes(carp)) == 0:
        return  # flips cancelled out, or (rarely) an undetectable one's-complement change
    with pytest.raises(PacketError):
        decode_carp(bytes(carp))
