"""Unicast peers and replay protection in the CARP machine (virtual clock)."""

from __future__ import annotations

import dataclasses

import pytest
from helpers_core import PEER_SRC, Peer, ip, make_vhost

from carpd.core.errors import BadHMAC, NotAPeer, Replayed
from carpd.core.model import State


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
