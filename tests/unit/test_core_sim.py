"""Two VirtualHosts exchanging adverts through an in-memory segment on a virtual clock."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from helpers_core import make_vhost

from carpd.core.actions import SendAdvert, StateChanged
from carpd.core.machine import VirtualHost, ip
from carpd.core.model import IPAddress, State
from carpd.core.packet import CARP_GROUP_V4, build_ipv4
from carpd.core.receive import decode_ipv4_advert, lookup_vhid

DELAY = 0.001


@dataclass
class Node:
    name: str
    src: IPAddress
    vh: VirtualHost
    alive: bool = True
    transitions: list[tuple[float, State]] = field(default_factory=list)
    last_heard: float | None = None


class Segment:
    """Delivers every SendAdvert, as a full IPv4 datagram, to the other nodes DELAY later."""

    def __init__(self, *nodes: Node) -> None:
        self.nodes = nodes
        self.now = 0.0
        self._queue: list[tuple[float, int, Node, Node, bytes]] = []
        self._seq = 0
        self.max_masters_seen = 0

    def _collect(self, node: Node, now: float) -> None:
        for action in node.vh.drain():
            if isinstance(action, StateChanged):
                node.transitions.append((now, action.new))
            elif isinstance(action, SendAdvert) and node.alive:
                datagram = build_ipv4(node.src, CARP_GROUP_V4, action.payload, ident=self._seq)
                for other in self.nodes:
                    if other is not node:
                        self._seq += 1
                        heapq.heappush(self._queue, (now + DELAY, self._seq, node, other, datagram))
        masters = sum(n.alive and n.vh.state is State.MASTER for n in self.nodes)
        self.max_masters_seen = max(self.max_masters_seen, masters)

    def start(self, node: Node, at: float) -> None:
        self.run_until(at)
        node.vh.start(at)
        self._collect(node, at)

    def stop(self, node: Node, at: float) -> None:
        """A graceful stop: what the node sends while stopping is still delivered."""
        self.run_until(at)
        node.vh.stop(at)
        self._collect(node, at)

    def run_until(self, end: float) -> None:
        for _ in range(100_000):
            timers = [(t, n) for n in self.nodes if n.alive and (t := n.vh.get_timer()) is not None]
            next_timer = min(timers, key=lambda x: x[0], default=None)
            next_rx = self._queue[0][0] if self._queue else None
            if (
                next_rx is not None
                and next_rx <= end
                and (next_timer is None or next_rx <= next_timer[0])
            ):
                t, _, sender, receiver, datagram = heapq.heappop(self._queue)
                # A dead node's adverts, even those already in flight, are lost.
                if sender.alive and receiver.alive:
                    rx = decode_ipv4_advert(datagram)
                    vh = lookup_vhid({receiver.vh.settings.vhid: receiver.vh}, rx.packet)
                    vh.receive(rx.packet, rx.family, rx.src, t)
                    receiver.last_heard = t
                    self._collect(receiver, t)
            elif next_timer is not None and next_timer[0] <= end:
                t, node = next_timer
                node.vh.handle_timer(t)
                self._collect(node, t)
            else:
                self.now = end
                return
        raise AssertionError("simulation did not settle: a timer is not advancing")


def node(name: str, last_octet: int, **settings: object) -> Node:
    src = ip(f"192.0.2.{last_octet}")
    return Node(name, src, make_vhost(own_sources={4: src}, **settings))


def masters(seg: Segment) -> list[str]:
    return [n.name for n in seg.nodes if n.alive and n.vh.state is State.MASTER]


def test_advskew_0_wins_and_backup_takes_over_when_it_dies() -> None:
    a = node("a", 1, advskew=0)
    b = node("b", 2, advskew=100)
    seg = Segment(a, b)
    seg.start(a, 0.0)
    seg.start(b, 0.0)
    seg.run_until(10.0)

    assert masters(seg) == ["a"]
    assert b.vh.state is State.BACKUP
    assert a.transitions == [(0.0, State.BACKUP), (3.0, State.MASTER)]
    assert b.transitions == [(0.0, State.BACKUP)]
    assert seg.max_masters_seen == 1
    # a adverts at 3, 4, ..., 10; b received each 1 ms later.
    assert a.vh.counters.adverts_sent == 8
    assert b.vh.counters.adverts_received == 7  # the 10.0 one is still in flight
    assert b.last_heard == 9.001

    a.alive = False  # killed: no bow-out, its in-flight advert is lost too
    b_mdi = 3 + 100 / 256
    seg.run_until(10.0 + b_mdi)
    assert b.vh.state is State.MASTER
    took_over_at, state = b.transitions[-1]
    assert state is State.MASTER
    assert took_over_at == 9.001 + b_mdi  # exactly one master-down after the last advert
    assert 10.0 < took_over_at <= 10.0 + b_mdi


def test_graceful_stop_hands_over_within_one_delay() -> None:
    a = node("a", 1, advskew=0)
    b = node("b", 2, advskew=100)
    seg = Segment(a, b)
    seg.start(a, 0.0)
    seg.start(b, 0.0)
    seg.run_until(10.5)
    assert masters(seg) == ["a"]
    seg.stop(a, 10.5)  # sends the 255/255 bow-out before leaving
    seg.run_until(10.5 + 2 * DELAY)
    assert a.vh.state is State.INIT
    assert masters(seg) == ["b"]
    assert b.transitions[-1] == (10.5 + DELAY, State.MASTER)


def test_late_starter_without_preempt_leaves_the_master_alone() -> None:
    a = node("a", 1, advskew=0, preempt=False)
    b = node("b", 2, advskew=100)
    seg = Segment(a, b)
    seg.start(b, 0.0)
    seg.start(a, 5.0)
    seg.run_until(20.0)
    assert masters(seg) == ["b"]
    assert a.transitions == [(5.0, State.BACKUP)]
    assert seg.max_masters_seen == 1


def test_late_starter_with_preempt_takes_over() -> None:
    a = node("a", 1, advskew=0, preempt=True)
    b = node("b", 2, advskew=100)
    seg = Segment(a, b)
    seg.start(b, 0.0)
    seg.start(a, 5.0)
    seg.run_until(20.0)
    assert masters(seg) == ["a"]
    # b is MASTER from 3 + 100/256, adverts every 1 + 100/256; the first one a hears
    # after starting at 5.0 is the one sent at 3.390625 + 2 * 1.390625 = 6.171875.
    assert a.transitions == [(5.0, State.BACKUP), (6.171875 + DELAY, State.MASTER)]
    assert b.transitions[-1] == (6.171875 + DELAY + DELAY, State.BACKUP)


def test_equal_nodes_ucarp_tiebreak_converges_on_lower_little_endian_source() -> None:
    # Both time out at the same instant and both become MASTER; the tie-break settles it.
    a = node("a", 1, advskew=0, tiebreak="ucarp")
    b = node("b", 2, advskew=0, tiebreak="ucarp")
    seg = Segment(a, b)
    seg.start(a, 0.0)
    seg.start(b, 0.0)
    seg.run_until(10.0)
    # 192.0.2.1 is 0x010200c0 little-endian, below 192.0.2.2 (0x020200c0).
    assert masters(seg) == ["a"]
    assert b.transitions == [(0.0, State.BACKUP), (3.0, State.MASTER), (3.0 + DELAY, State.BACKUP)]
