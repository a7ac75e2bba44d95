"""What makes a forged advert cheap to refuse (issue 32): the checksum and HMAC shortcuts
agree with the plain constructions, and copies of refused datagrams are skipped unread
while a genuine advert among them still gets through."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carpd.config import load_config
from carpd.core.auth import Authenticator, hashed_addresses
from carpd.core.checksum import internet_checksum
from carpd.core.errors import PacketError
from carpd.core.model import State
from carpd.core.packet import CARP_GROUP_V4, CarpPacket, build_ipv4, checksum_ok
from carpd.core.receive import bad_hmac_v4, ipv4_datagram
from carpd.daemon.runtime.intake import Bucket, Inlet, Intake
from carpd.daemon.runtime.receiver import Receiver
from carpd.daemon.runtime.vhost import Carpdev, Vhost, make_router
from carpd.daemon.seam.lanes import Lane
from carpd.daemon.seam.ratelimit import RateLimiter
from carpd.linux.netlink import Link
from carpd.linux.sockets import AdvertSocketV4, Announcer


@given(st.binary(max_size=64).map(lambda b: b + b"\x00" * (len(b) % 2)))
def test_the_checksum_shortcut_agrees_with_rfc_1071(data: bytes) -> None:
    assert checksum_ok(data) == (internet_checksum(data) == 0)


@pytest.mark.parametrize("data", [bytes(36), b"\xff" * 36, b"\xff\xff" + bytes(34)])
def test_the_checksum_shortcut_at_its_edges(data: bytes) -> None:
    assert checksum_ok(data) == (internet_checksum(data) == 0)


ADDRESSES = [ipaddress.ip_address(a) for a in ("192.0.2.100", "2001:db8::1", "fe80::1")]


@given(
    password=st.binary(max_size=19),
    vhid=st.integers(1, 255),
    counter=st.binary(min_size=8, max_size=8),
)
def test_the_precomputed_hmac_is_hmac_sha1(password: bytes, vhid: int, counter: bytes) -> None:
    for variant, with_ll in (("openbsd", False), ("freebsd", True)):
        auth = Authenticator(password, vhid, ADDRESSES, variant)  # type: ignore[arg-type]
        message = bytes((2, 1, vhid)) + hashed_addresses(ADDRESSES, with_link_local=with_ll)
        want = hmac.new(password, message + counter, hashlib.sha1).digest()
        assert auth.sign(counter) == want
        auth.verify(counter, want)


@pytest.fixture
def memo_socket() -> Iterator[tuple[AdvertSocketV4, socket.socket]]:
    """An advert socket reading one end of a datagram socketpair (no privileges)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    s = AdvertSocketV4.__new__(AdvertSocketV4)
    s.sock = ours
    s._init_memo()
    yield s, theirs
    ours.close()
    theirs.close()


def test_copies_of_a_refused_datagram_are_skipped_and_counted(
    memo_socket: tuple[AdvertSocketV4, socket.socket],
) -> None:
    s, peer = memo_socket
    s.refuse([b"forged"])
    s.skips = 10
    for d in (b"forged", b"forged", b"genuine", b"forged"):
        peer.send(d)
    assert s.recv() == b"genuine"
    assert s.repeats == 2
    with pytest.raises(BlockingIOError):
        s.recv()
    assert s.repeats == 3  # counted even when the queue ran dry meanwhile
    assert s.skips == 10 - 3
    assert s.take_recent() == [b"genuine"]


def test_copies_are_skipped_only_while_the_skips_last(
    memo_socket: tuple[AdvertSocketV4, socket.socket],
) -> None:
    s, peer = memo_socket
    s.refuse([b"forged"])
    s.skips = 5
    for _ in range(8):
        peer.send(b"forged")
    assert s.recv() == b"forged"  # after 5 copies: one, for the slow path
    assert s.recv() == b"forged"
    assert (s.repeats, s.skips) == (5, 0)


CONFIG = """
[[carp]]
name = "c1"
vhid = 1
carpdev = "eth0"
pass = "secret"
advskew = 100
addresses = ["192.0.2.100/24"]
"""
OWN = ipaddress.IPv4Address("192.0.2.2")
MASTER = ipaddress.IPv4Address("192.0.2.1")


def test_a_flood_from_the_masters_source_is_remembered_and_its_adverts_still_heard(
    tmp_path: Path, memo_socket: tuple[AdvertSocketV4, socket.socket]
) -> None:
    dev, vh = _backup(tmp_path)
    cfg = vh.cfg
    assert vh.machine.state is State.BACKUP
    intake = Intake(Receiver(RateLimiter(), lambda: 1.0, lambda v: None))
    s, peer = memo_socket
    inlet = Inlet(dev, 4, s, s, Bucket(1.0, 1.0, 1.0, 0.0), frozenset({MASTER}))
    # (Pinned, the master is known from the start: no kernel filter to swap on a socketpair.)

    def advert(counter: int, digest: bytes) -> bytes:
        return build_ipv4(MASTER, CARP_GROUP_V4, CarpPacket(1, 1, 0, counter, digest).encode(), 1)

    forged = advert(1, bytes(20))
    for _ in range(10):
        peer.send(forged)
    assert intake._read(inlet, s, 4, 100, now=1.0) == 4  # decoded, refused: remembered
    assert vh.machine.counters.dropped == {"bad_hmac": 4}
    sign = Authenticator("secret", 1, [a.ip for a in cfg.addresses]).sign
    genuine = advert(2, sign((2).to_bytes(8, "big")))
    peer.send(genuine)
    for _ in range(5):
        peer.send(forged)
    # The six copies cost a set lookup each; the master's advert is decoded and heard.
    assert intake._read(inlet, s, 4, 100, now=1.5) == 6 + 1 + 5
    assert vh.machine.counters.adverts_received == 1
    assert vh.machine.counters.dropped == {"bad_hmac": 4}
    assert dev.dropped == {"repeated": 11}
    # Forgotten after MEMO_SECONDS: a copy is decoded again.
    peer.send(forged)
    assert intake._read(inlet, s, 4, 100, now=2.5) == 1
    assert vh.machine.counters.dropped == {"bad_hmac": 5}


def _backup(tmp_path: Path, extra: str = "") -> tuple[Carpdev, Vhost]:
    path = tmp_path / "carpd.toml"
    path.write_text(CONFIG + extra)
    cfg = load_config(path).carp[0]
    dev = Carpdev(
        link=cast(Link, SimpleNamespace(name="eth0", index=2)),
        src4=OWN,
        src6=None,
        announcer=cast(Announcer, None),
    )
    vh = Vhost(cfg, make_router(cfg, {4: OWN}), dev, cast(Lane, None))
    dev.by_family[4][1] = vh
    vh.machine.start(0.0)
    return dev, vh


def _advert(counter: int, digest: bytes, vhid: int = 1) -> bytes:
    return build_ipv4(MASTER, CARP_GROUP_V4, CarpPacket(vhid, 1, 0, counter, digest).encode(), 1)


def _key(vh: Vhost) -> Authenticator:
    return Authenticator("secret", 1, [a.ip for a in vh.cfg.addresses])


@given(counter=st.integers(0, 2**64 - 1), flip=st.integers(0, 55), bit=st.integers(0, 7))
def test_the_screen_refuses_only_what_the_full_path_refuses_as_bad_hmac(
    tmp_path_factory: pytest.TempPathFactory, counter: int, flip: int, bit: int
) -> None:
    dev, vh = _backup(tmp_path_factory.mktemp("c"))
    key = _key(vh)
    genuine = _advert(counter, key.sign(counter.to_bytes(8, "big")))
    assert bad_hmac_v4(genuine, dev.by_family[4], {vh: key}.get) is None
    mutated = bytearray(genuine)
    mutated[flip] ^= 1 << bit
    receiver = Receiver(RateLimiter(), lambda: 1.0, lambda v: None)
    judged = bad_hmac_v4(bytes(mutated), dev.by_family[4], {vh: key}.get)
    try:
        accepted = receiver._datagram(dev, ipv4_datagram(bytes(mutated)))
    except PacketError:
        accepted = False
    if judged is not None:
        assert judged is vh
        assert not accepted and vh.machine.counters.dropped == {"bad_hmac": 1}


def test_after_one_genuine_advert_forged_ones_are_refused_before_decoding(
    tmp_path: Path, memo_socket: tuple[AdvertSocketV4, socket.socket]
) -> None:
    dev, vh = _backup(tmp_path)
    intake = Intake(Receiver(RateLimiter(), lambda: 1.0, lambda v: None))
    s, peer = memo_socket
    inlet = Inlet(dev, 4, s, s, Bucket(1.0, 1.0, 1.0, 0.0), frozenset({MASTER}))
    sign = _key(vh).sign
    peer.send(_advert(1, bytes(20)))
    peer.send(_advert(2, sign((2).to_bytes(8, "big"))))
    assert intake._read(inlet, s, 64, 100, now=1.0) == 2
    assert list(inlet.keys) == [vh]  # learnt from the advert that verified
    # Every forged advert different (its own counter): the memo cannot help, the screen does.
    for c in range(3, 13):
        peer.send(_advert(c, bytes(20)))
    peer.send(_advert(13, sign((13).to_bytes(8, "big"))))
    assert intake._read(inlet, s, 64, 100, now=1.1) == 11
    assert vh.machine.counters.adverts_received == 2
    assert vh.machine.counters.dropped == {"bad_hmac": 1 + 10}
    assert s.take_recent() == []  # the screened ones never reached the receive path
    assert len(s.refused) == 10  # and are remembered: a copy costs a set lookup


def test_a_vhid_with_unicast_peers_is_left_to_the_full_path(
    tmp_path: Path, memo_socket: tuple[AdvertSocketV4, socket.socket]
) -> None:
    dev, vh = _backup(tmp_path, 'peers = ["192.0.2.1"]\n')
    intake = Intake(Receiver(RateLimiter(), lambda: 1.0, lambda v: None))
    s, peer = memo_socket
    inlet = Inlet(dev, 4, s, s, Bucket(1.0, 1.0, 1.0, 0.0), frozenset({MASTER}))
    peer.send(_advert(2, _key(vh).sign((2).to_bytes(8, "big"))))
    assert intake._read(inlet, s, 64, 100, now=1.0) == 1
    assert vh.machine.counters.adverts_received == 1
    assert inlet.keys == {}  # not_a_peer comes before the HMAC: not the screen's to judge


def test_forged_adverts_the_screen_refuses_are_logged_and_diagnosed_as_the_full_path_does(
    tmp_path: Path,
    memo_socket: tuple[AdvertSocketV4, socket.socket],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Rule 4: counted, logged (rate-limited), and the hint in status: the screen skips
    the decoding, not the operator's view of the attack."""
    dev, vh = _backup(tmp_path)
    intake = Intake(Receiver(RateLimiter(), lambda: 1.0, lambda v: None))
    s, peer = memo_socket
    inlet = Inlet(dev, 4, s, s, Bucket(1.0, 1.0, 1.0, 0.0), frozenset({MASTER}))
    peer.send(_advert(2, _key(vh).sign((2).to_bytes(8, "big"))))
    assert intake._read(inlet, s, 64, 100, now=1.0) == 1
    assert list(inlet.keys) == [vh]
    caplog.set_level(logging.WARNING, logger="carpd")
    for c in range(3, 8):
        peer.send(_advert(c, bytes(20)))
    assert intake._read(inlet, s, 64, 100, now=1.1) == 5
    assert s.take_recent() == []  # refused by the screen, not the full path
    assert vh.machine.counters.dropped == {"bad_hmac": 5}
    lines = [m for m in caplog.messages if "bad_hmac" in m]
    assert lines == [f"carp: bad_hmac from {MASTER} on eth0: incorrect hash"]
    assert "bad_hmac" in vh.diagnostics
    assert (
        f"adverts from {MASTER} for vhid 1 fail the HMAC check" in vh.diagnostics["bad_hmac"].text
    )


def test_adverts_the_kernel_dropped_from_the_known_peers_queue_are_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Lost before carpd could read them, they may be the master's own adverts: counted
    as overflow on the carpdev, from the socket's own drop count, and logged."""
    dev, _ = _backup(tmp_path)
    intake = Intake(Receiver(RateLimiter(), lambda: 1.0, lambda v: None))
    ours = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 0)  # the kernel's least
        ours.bind(("127.0.0.1", 0))
        ours.setblocking(False)
        s = AdvertSocketV4.__new__(AdvertSocketV4)
        s.sock = ours
        s._init_memo()
        inlet = Inlet(dev, 4, s, s, Bucket(1.0, 1.0, 1.0, 0.0), frozenset({MASTER}))
        for _ in range(200):
            sender.sendto(bytes(56), ours.getsockname())
        drops = s.queue_drops()
        assert drops > 0  # the queue overflowed
        caplog.set_level(logging.WARNING, logger="carpd")
        intake._read(inlet, s, 0, 0, now=1.0)
        assert dev.dropped == {"overflow": drops}
        assert caplog.messages == [
            f"carp: eth0: the known peers' queue was full, {drops} of their adverts dropped "
            "unread so far (a flood forging a peer's own address?)"
        ]
    finally:
        ours.close()
        sender.close()


def test_a_vhid_added_or_changed_by_a_reload_forgets_what_was_refused(
    tmp_path: Path, memo_socket: tuple[AdvertSocketV4, socket.socket]
) -> None:
    """A VRRPv3 advert repeats itself byte for byte: one refused before a reload must not
    be skipped as a copy after the reload that makes it acceptable."""
    dev, _ = _backup(tmp_path)
    intake = Intake(Receiver(RateLimiter(), lambda: 1.0, lambda v: None))
    s, _ = memo_socket
    inlet = Inlet(dev, 4, s, s, Bucket(1.0, 1.0, 1.0, 0.0), frozenset({MASTER}))
    intake._inlets[("eth0", 4)] = inlet
    s.refuse([b"advert of a vhid not configured yet"])
    intake.open(dev, 4, frozenset(), s)  # the reload's new vhid on this carpdev
    assert not s.refused
