"""Unicast peers and replay protection in the CARP machine (virtual clock)."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from helpers_core import PEER_SRC, Peer, ip, make_vhost

from carpd.config import load_config
from carpd.core.errors import BadHMAC, Duplicate, NotAPeer, Replayed
from carpd.core.model import State
from carpd.core.packet import VRRP_TOS, build_ipv4
from carpd.core.receive import Datagram, ipv4_datagram
from carpd.core.vrrp import VrrpPacket
from carpd.daemon.runtime.receiver import Receiver
from carpd.daemon.runtime.vhost import Carpdev, Vhost, make_router
from carpd.daemon.seam.lanes import Lane
from carpd.daemon.seam.ratelimit import RateLimiter
from carpd.linux.netlink import Link
from carpd.linux.sockets import Announcer


def test_with_peers_only_their_adverts_count() -> None:
    vh = make_vhost(advskew=100, peers=frozenset({PEER_SRC}))
    vh.start(0.0)
    vh.drain()
    with pytest.raises(NotAPeer):
        vh.receive(Peer().advert(advskew=0), 4, ip("192.0.2.77"), 1.0)
    assert vh.get_timer() == 3.0 + 100 / 256  # the stranger did not re-arm the timer
    vh.receive(Peer().advert(advskew=0), 4, PEER_SRC, 1.0)
    assert vh.get_timer() == 4.0 + 100 / 256


def test_replay_protection_refuses_a_counter_that_does_not_increase() -> None:
    vh = make_vhost(advskew=50, replay_protection=True)
    vh.start(0.0)
    vh.handle_timer(vh.get_timer())  # MASTER
    assert vh.state is State.MASTER
    peer = Peer()
    old = peer.advert(advskew=100)  # a genuine, worse advert we hear (and an attacker records)
    vh.receive(old, 4, PEER_SRC, 3.5)
    assert vh.state is State.MASTER
    replay = dataclasses.replace(old, advskew=0)  # advskew is not covered by the HMAC
    with pytest.raises(Replayed):
        vh.receive(replay, 4, PEER_SRC, 3.6)
    assert vh.state is State.MASTER
    # A fresh advert from the same peer still counts.
    vh.receive(peer.advert(advskew=0), 4, PEER_SRC, 3.7)
    assert vh.state is State.BACKUP


def test_the_last_advert_heard_twice_is_a_duplicate_refused_without_a_replays_alarm() -> None:
    """A frame delivered twice (a switch; carpd's two sockets while a new peer moves to
    its own): refused, as a replay of it would keep a dead master alive, but as a
    duplicate. A copy of it with another advskew is still a replay."""
    vh = make_vhost(advskew=100, replay_protection=True)
    vh.start(0.0)
    vh.drain()
    advert = Peer().advert(advskew=0)
    vh.receive(advert, 4, PEER_SRC, 1.0)
    timer = vh.get_timer()
    with pytest.raises(Duplicate):
        vh.receive(advert, 4, PEER_SRC, 3.0)
    assert vh.get_timer() == timer  # it refreshed nothing
    with pytest.raises(Replayed):
        vh.receive(dataclasses.replace(advert, advskew=1), 4, PEER_SRC, 3.1)


def test_without_replay_protection_the_same_replay_moves_the_master() -> None:
    vh = make_vhost(advskew=50)
    vh.start(0.0)
    vh.handle_timer(vh.get_timer())
    old = Peer().advert(advskew=100)
    vh.receive(old, 4, PEER_SRC, 3.5)
    vh.receive(dataclasses.replace(old, advskew=0), 4, PEER_SRC, 3.6)
    assert vh.state is State.BACKUP  # what CARP v2 cannot prevent on its own


def test_a_forged_counter_does_not_poison_the_record() -> None:
    vh = make_vhost(advskew=50, replay_protection=True)
    vh.start(0.0)
    peer = Peer()
    forged = dataclasses.replace(peer.advert(), counter=2**64 - 1)
    with pytest.raises(BadHMAC):
        vh.receive(forged, 4, PEER_SRC, 0.5)
    vh.receive(peer.advert(advskew=100), 4, PEER_SRC, 0.6)  # still accepted
    assert vh.counters.adverts_received == 1


# -- unicast peers keep the TTL rule unless said to be routed (issue 26, item 3) -------

V9 = """
[[carp]]
name = "v9"
protocol = "vrrp3"
vhid = 9
carpdev = "eth0"
peers = ["192.0.2.50"]
addresses = ["192.0.2.200/24"]
"""
OWN = ipaddress.IPv4Address("192.0.2.1")
PEER = ipaddress.IPv4Address("192.0.2.50")
VIP = ipaddress.IPv4Address("192.0.2.200")


def vrrp_master(tmp_path: Path, extra: str = "") -> tuple[Receiver, Carpdev, Vhost]:
    """A VRRPv3 MASTER of vhid 9 with a unicast peer, behind the daemon's receive path."""
    path = tmp_path / "carpd.toml"
    path.write_text(V9 + extra)
    cfg = load_config(path).carp[0]
    dev = Carpdev(
        link=cast(Link, SimpleNamespace(name="eth0")),
        src4=OWN,
        src6=None,
        announcer=cast(Announcer, None),
    )
    vh = Vhost(cfg, make_router(cfg, {4: OWN}), dev, cast(Lane, None))
    dev.by_family[4][9] = vh
    vh.machine.start(0.0)
    vh.machine.handle_timer(cast(float, vh.machine.get_timer()))
    assert vh.machine.state is State.MASTER
    return Receiver(RateLimiter(), lambda: 1.0, lambda v: None), dev, vh


def spoofed(ttl: int) -> Datagram:
    """The peer's address, a better priority, and a TTL that crossed a router."""
    payload = VrrpPacket(vrid=9, priority=254, interval_cs=100, addresses=(VIP,)).encode(PEER, OWN)
    return ipv4_datagram(build_ipv4(PEER, OWN, payload, 1, ttl=ttl, tos=VRRP_TOS))


def test_a_unicast_peer_spoofed_from_off_link_is_dropped_as_bad_ttl(tmp_path: Path) -> None:
    receiver, dev, vh = vrrp_master(tmp_path)
    for _ in range(6):
        receiver._datagram(dev, spoofed(64))
    assert vh.machine.state is State.MASTER
    assert dev.dropped == {"bad_ttl": 6}
    assert vh.machine.counters.adverts_received == 0
    receiver._datagram(dev, spoofed(255))  # the same advert on the link still counts
    assert vh.machine.state is State.BACKUP


def test_peers_routed_accepts_the_peer_through_a_router(tmp_path: Path) -> None:
    receiver, dev, vh = vrrp_master(tmp_path, "peers_routed = true\n")
    receiver._datagram(dev, spoofed(64))
    assert dev.dropped == {}
    assert vh.machine.state is State.BACKUP
