"""Two nodes on SimNet's segment with a fixed 1 ms delay: the exact timelines of CARP
and VRRPv3 elections, takeovers and hand-overs, through the daemon's receive path."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from simnet import LinkParams, NodeSpec, SimNet

from carpd.core.model import State
from carpd.core.vrrp import VRRP_PRIORITY_RELEASE, VrrpPacket

DELAY = 0.001
FIXED = LinkParams(delay_min=DELAY, delay_max=DELAY)  # no jitter: exact timelines

# VRRPv3 Master_Down_Interval and Skew_Time at 1 s adverts, per priority (RFC 5798 6.1).
MDI_100, SKEW_100 = 3.609375, 0.609375
MDI_150 = 3.4140625
MDI_200 = 3.21875


def pair(protocol: str, a: dict[str, Any], b: dict[str, Any]) -> SimNet:
    specs = [NodeSpec("a", 1, protocol, **a), NodeSpec("b", 2, protocol, **b)]  # type: ignore[arg-type]
    return SimNet(specs, network=FIXED)


def both(sim: SimNet) -> None:
    sim.start("a")
    sim.start("b")


def history(sim: SimNet, name: str) -> list[tuple[float, State]]:
    return [(t.at, t.new) for t in sim.node(name).history]


# -- CARP ---------------------------------------------------------------------------


def test_carp_advskew_0_wins_and_the_backup_takes_over_when_it_dies() -> None:
    sim = pair("carp", {"advskew": 0}, {"advskew": 100})
    both(sim)
    sim.run_until(9.5)
    assert sim.masters() == ["a"]
    assert history(sim, "a") == [(0.0, State.BACKUP), (3.0, State.MASTER)]
    assert history(sim, "b") == [(0.0, State.BACKUP)]
    assert sim.max_masters == 1
    # a adverts at 3, 4, ..., 9; b received each 1 ms later.
    a, b = sim.node("a"), sim.node("b")
    assert a.adverts_sent == 7
    assert b.machine.counters.adverts_received == 7
    assert b.last_heard == 9.001

    sim.crash("a")  # kill -9: no bow-out
    b_mdi = 3 + 100 / 256
    sim.run_until(9.5 + b_mdi)
    assert sim.masters() == ["b"]
    assert history(sim, "b")[-1] == (9.001 + b_mdi, State.MASTER)  # one master-down later


def test_carp_graceful_stop_hands_over_within_one_delay() -> None:
    sim = pair("carp", {"advskew": 0}, {"advskew": 100})
    both(sim)
    sim.run_until(10.5)
    assert sim.masters() == ["a"]
    sim.stop("a")  # sends the 255/255 bow-out before leaving
    sim.run_until(10.5 + 2 * DELAY)
    assert sim.node("a").state is State.INIT
    assert sim.masters() == ["b"]
    assert history(sim, "b")[-1] == (10.5 + DELAY, State.MASTER)


@pytest.mark.parametrize("protocol", ["carp", "vrrp"])
def test_a_late_starter_without_preempt_leaves_the_master_alone(protocol: str) -> None:
    better = {"advskew": 0} if protocol == "carp" else {"priority": 200}
    worse = {"advskew": 100} if protocol == "carp" else {"priority": 100}
    sim = pair(protocol, {**better, "preempt": False}, worse)
    sim.start("b")
    sim.run_until(5.0)
    sim.start("a")
    sim.run_until(30.0)
    assert sim.masters() == ["b"]
    assert history(sim, "a") == [(5.0, State.BACKUP)]
    assert sim.max_masters == 1


def test_carp_late_starter_with_preempt_takes_over() -> None:
    sim = pair("carp", {"advskew": 0, "preempt": True}, {"advskew": 100})
    sim.start("b")
    sim.run_until(5.0)
    sim.start("a")
    sim.run_until(20.0)
    assert sim.masters() == ["a"]
    # b is MASTER from 3 + 100/256, adverts every 1 + 100/256; the first one a hears
    # after starting at 5.0 is the one sent at 3.390625 + 2 * 1.390625 = 6.171875.
    assert history(sim, "a") == [(5.0, State.BACKUP), (6.171875 + DELAY, State.MASTER)]
    assert history(sim, "b")[-1] == (6.171875 + DELAY + DELAY, State.BACKUP)


def test_carp_equal_nodes_ucarp_tiebreak_converges_on_lower_little_endian_source() -> None:
    # Both time out at the same instant and both become MASTER; the tie-break settles it.
    sim = pair("carp", {"tiebreak": "ucarp"}, {"tiebreak": "ucarp"})
    both(sim)
    sim.run_until(10.0)
    # 192.0.2.1 is 0x010200c0 little-endian, below 192.0.2.2 (0x020200c0).
    assert sim.masters() == ["a"]
    assert history(sim, "b") == [
        (0.0, State.BACKUP),
        (3.0, State.MASTER),
        (3.0 + DELAY, State.BACKUP),
    ]


# -- VRRPv3 -------------------------------------------------------------------------


def test_vrrp_higher_priority_wins_and_the_backup_takes_over_when_it_dies() -> None:
    sim = pair("vrrp", {"priority": 200}, {"priority": 100})
    both(sim)
    sim.run_until(9.5)
    assert sim.masters() == ["a"]
    assert history(sim, "a") == [(0.0, State.BACKUP), (MDI_200, State.MASTER)]
    assert history(sim, "b") == [(0.0, State.BACKUP)]
    assert sim.max_masters == 1
    # a adverts at 3.21875, 4.21875, ..., 9.21875; b heard each 1 ms later.
    a, b = sim.node("a"), sim.node("b")
    assert a.adverts_sent == 7
    assert b.machine.counters.adverts_received == 7
    assert b.last_heard == pytest.approx(9.21975)

    sim.crash("a")  # killed: no release
    sim.run_until(20.0)
    assert sim.masters() == ["b"]
    assert history(sim, "b")[-1] == (b.last_heard + MDI_100, State.MASTER)


def test_vrrp_graceful_stop_hands_over_after_skew_time() -> None:
    sim = pair("vrrp", {"priority": 200}, {"priority": 100})
    both(sim)
    sim.run_until(10.5)
    sim.stop("a")
    sim.run_until(10.5 + DELAY + SKEW_100 + DELAY)
    b = sim.node("b")
    assert sim.node("a").state is State.INIT
    assert isinstance(b.last_packet, VrrpPacket)
    assert b.last_packet.priority == VRRP_PRIORITY_RELEASE
    assert sim.masters() == ["b"]
    assert history(sim, "b")[-1] == (10.5 + DELAY + SKEW_100, State.MASTER)


def test_vrrp_late_starter_with_preempt_takes_over_after_master_down_interval() -> None:
    sim = pair("vrrp", {"priority": 200, "preempt": True}, {"priority": 100})
    sim.start("b")
    sim.run_until(5.0)
    sim.start("a")
    sim.run_until(20.0)
    assert sim.masters() == ["a"]
    # a discards b's lower-priority adverts, so its timer from start runs out.
    assert history(sim, "a") == [(5.0, State.BACKUP), (5.0 + MDI_200, State.MASTER)]
    assert history(sim, "b")[-1] == (5.0 + MDI_200 + DELAY, State.BACKUP)
    assert sim.max_masters == 2  # until b hears a


def test_vrrp_equal_priority_converges_on_the_greater_address() -> None:
    sim = pair("vrrp", {}, {})
    both(sim)
    sim.run_until(10.0)
    assert sim.masters() == ["b"]  # 192.0.2.2 > 192.0.2.1
    assert history(sim, "a") == [
        (0.0, State.BACKUP),
        (MDI_100, State.MASTER),
        (MDI_100 + DELAY, State.BACKUP),
    ]
    assert history(sim, "b") == [(0.0, State.BACKUP), (MDI_100, State.MASTER)]


def test_vrrp_demoted_master_loses_to_a_preempting_backup() -> None:
    sim = pair("vrrp", {"priority": 200}, {"priority": 150, "preempt": True})
    both(sim)
    sim.run_until(10.5)
    assert sim.masters() == ["a"]
    b = sim.node("b")
    heard = b.last_heard
    assert heard is not None
    sim.set_demotion("a", 100)  # a now advertises priority 100 at once; b discards it
    sim.run_until(20.0)
    assert isinstance(b.last_packet, VrrpPacket)
    assert b.last_packet.priority == 100
    assert sim.masters() == ["b"]
    assert history(sim, "b")[-1] == (heard + MDI_150, State.MASTER)
    assert history(sim, "a")[-1] == (heard + MDI_150 + DELAY, State.BACKUP)


def test_vrrp_dual_stack_runs_one_timer_per_family() -> None:
    dual = frozenset({4, 6})
    sim = pair("vrrp", {"priority": 200, "families": dual}, {"priority": 100, "families": dual})
    both(sim)
    sim.run_until(10.0)
    b = sim.node("b")
    assert sim.masters() == ["a"]
    assert b.machine.counters.adverts_received == 14  # 7 rounds, 2 families
    assert b.machine.master == ipaddress.IPv4Address("192.0.2.1")
    # Lose IPv6 on the segment: b's IPv6 timer runs out although IPv4 adverts go on.
    sim.carried = frozenset({4})
    last6 = b.last_heard
    assert last6 is not None
    sim.run_until(20.0)
    assert history(sim, "b")[1] == (last6 + MDI_100, State.MASTER)
