"""The per-vhid state machine (spec section 4) on a virtual clock."""

from __future__ import annotations

import pytest
from helpers_core import OWN_SRC, PEER_SRC, VIP, Peer, ip, kinds, make_auth, make_vhost, sent

from carpd.core.actions import (
    AddAddresses,
    Announce,
    RemoveAddresses,
    RunHook,
    SendAdvert,
    StateChanged,
)
from carpd.core.errors import BadHMAC
from carpd.core.machine import VirtualHost
from carpd.core.model import State

TAKEOVER = [StateChanged, AddAddresses, Announce, SendAdvert, RunHook]
# A master yielding to a better one sends one last advert first (ucarp), then steps down.
STEP_DOWN = [SendAdvert, StateChanged, RemoveAddresses, RunHook]
TICK = 1 / 1024  # exact in binary floating point, smaller than any 1/256 step


def started(t0: float = 0.0, **settings: object) -> VirtualHost:
    vh = make_vhost(**settings)
    vh.start(t0)
    vh.drain()
    return vh


def as_master(t0: float = 0.0, **settings: object) -> tuple[VirtualHost, float]:
    """A vhost that became MASTER by timeout; returns it and the time it did."""
    vh = started(t0, **settings)
    t = vh.get_timer()
    assert t is not None
    vh.handle_timer(t)
    assert vh.state is State.MASTER
    vh.drain()
    return vh, t


def state_change(actions: list[object]) -> tuple[State, State]:
    [change] = [a for a in actions if isinstance(a, StateChanged)]
    return change.old, change.new


# -- start ----------------------------------------------------------------------------


def test_start_enters_backup() -> None:
    vh = make_vhost()
    assert vh.state is State.INIT
    assert vh.get_timer() is None
    vh.start(10.0)
    actions = vh.drain()
    assert actions == [
        StateChanged(State.INIT, State.BACKUP, actions[0].reason),  # type: ignore[union-attr]
        RemoveAddresses(),
        RunHook(State.BACKUP),
    ]
    assert vh.state is State.BACKUP
    assert vh.get_timer() == 13.0
    assert vh.last_transition == 10.0
    assert vh.counters.transitions == 1
    assert vh.drain() == []


def test_start_twice_is_a_no_op() -> None:
    vh = started(0.0)
    vh.start(1.0)
    assert vh.drain() == []
    assert vh.get_timer() == 3.0


def test_neutral_suppresses_down_hook_only_on_first_backup() -> None:
    vh = make_vhost(neutral=True, advskew=10)
    vh.start(0.0)
    assert kinds(vh.drain()) == [StateChanged, RemoveAddresses]
    vh.handle_timer(vh.get_timer())  # type: ignore[arg-type]
    assert vh.state is State.MASTER
    vh.drain()
    vh.receive(Peer().advert(advskew=0), 4, PEER_SRC, 5.0)
    actions = vh.drain()
    assert state_change(actions) == (State.MASTER, State.BACKUP)
    assert actions[-2:] == [RemoveAddresses(), RunHook(State.BACKUP)]


# -- master-down timer and takeover ---------------------------------------------------


@pytest.mark.parametrize(
    ("advbase", "advskew", "interval"),
    [(1, 0, 3.0), (1, 100, 3.390625), (2, 50, 6.1953125), (1, 254, 3.9921875), (5, 1, 15.00390625)],
)
def test_takeover_exactly_at_master_down_interval(
    advbase: int, advskew: int, interval: float
) -> None:
    # interval = 3 * advbase + advskew / 256 (FreeBSD / ucarp, spec 4.1), written out.
    t0 = 100.0
    vh = started(t0, advbase=advbase, advskew=advskew)
    assert vh.master_down_interval == interval
    assert vh.get_timer() == t0 + interval
    vh.handle_timer(t0 + interval - TICK)
    assert vh.state is State.BACKUP
    assert vh.drain() == []
    assert vh.get_timer() == t0 + interval
    vh.handle_timer(t0 + interval)
    assert vh.state is State.MASTER
    assert vh.last_transition == t0 + interval


def test_takeover_actions() -> None:
    vh = started(0.0, advskew=100)
    vh.handle_timer(3.390625)
    actions = vh.drain()
    assert kinds(actions) == TAKEOVER
    assert state_change(actions) == (State.BACKUP, State.MASTER)
    assert actions[-1] == RunHook(State.MASTER)
    [advert] = sent(actions)
    assert (advert.vhid, advert.advbase, advert.advskew, advert.demote) == (7, 1, 100, 0)
    make_auth().verify(advert.counter_bytes, advert.hmac)
    # The next advert is due one advert interval later; no master-down timer remains.
    assert vh.get_timer() == 3.390625 + 1.390625
    assert vh.master == OWN_SRC


def test_late_timer_still_takes_over() -> None:
    vh = started(0.0)
    vh.handle_timer(7.5)  # the runtime was late
    assert vh.state is State.MASTER
    assert vh.get_timer() == 8.5


# -- MASTER: advert schedule -----------------------------------------------------------


@pytest.mark.parametrize(("advbase", "advskew"), [(1, 0), (1, 100), (3, 17)])
def test_master_adverts_without_drift(advbase: int, advskew: int) -> None:
    vh, t_master = as_master(0.0, advbase=advbase, advskew=advskew)
    interval = advbase + advskew / 256
    lateness = [0.0, 0.3 * interval, 0.0, 0.9 * interval, 0.01, 0.0, 0.5 * interval]
    for k, late in enumerate(lateness, start=1):
        due = t_master + k * interval
        assert vh.get_timer() == due
        vh.handle_timer(due - TICK)  # too early: nothing
        assert vh.drain() == []
        vh.handle_timer(due + late)
        assert SendAdvert in kinds(vh.drain())
    # Lateness did not accumulate: the schedule is still anchored at t_master.
    assert vh.get_timer() == t_master + (len(lateness) + 1) * interval
    assert vh.state is State.MASTER


def test_master_timer_resyncs_after_a_long_stall() -> None:
    vh, t = as_master(0.0)
    vh.handle_timer(t + 10.25)  # ten adverts missed: send one, not a burst
    assert kinds(vh.drain()).count(SendAdvert) == 1
    assert vh.get_timer() == t + 11.25


def test_master_adverts_carry_our_timing_and_increment_counter() -> None:
    vh, t = as_master(0.0, advskew=42, counter_start=500)
    adverts = []
    for k in range(1, 4):
        vh.handle_timer(t + k * (1 + 42 / 256))
        adverts += sent(vh.drain())
    assert [(a.advbase, a.advskew, a.vhid) for a in adverts] == [(1, 42, 7)] * 3
    # counter_start 500; the takeover advert carried 501.
    assert [a.counter for a in adverts] == [502, 503, 504]


def test_counter_wraps_at_64_bits() -> None:
    vh = started(0.0, counter_start=2**64 - 1)
    vh.handle_timer(3.0)
    [advert] = sent(vh.drain())
    assert advert.counter == 0
    make_auth().verify(advert.counter_bytes, advert.hmac)


def test_delayed_announce_after_two_more_adverts() -> None:
    vh, t = as_master(0.0)
    per_advert = []
    for k in range(1, 5):
        vh.handle_timer(t + k)
        per_advert.append(kinds(vh.drain()))
    assert per_advert == [
        [SendAdvert],
        [SendAdvert, Announce],
        [SendAdvert],
        [SendAdvert],
    ]


def test_delayed_announce_rearmed_on_each_takeover() -> None:
    vh, t = as_master(0.0, advskew=100)
    vh.handle_timer(t + 1.390625)
    vh.drain()
    # Step down after one advert (the delayed announce is still pending), then take over.
    vh.receive(Peer().advert(advskew=0), 4, PEER_SRC, 5.0)
    assert vh.state is State.BACKUP
    vh.handle_timer(vh.get_timer())  # type: ignore[arg-type]
    t2 = vh.last_transition
    assert t2 == 5.0 + 3.390625
    vh.drain()
    vh.handle_timer(t2 + 1.390625)
    assert kinds(vh.drain()) == [SendAdvert]
    vh.handle_timer(t2 + 2 * 1.390625)
    assert kinds(vh.drain()) == [SendAdvert, Announce]


# -- BACKUP receives (spec 4.4) --------------------------------------------------------


def test_backup_hearing_better_master_rearms_timer() -> None:
    vh = started(0.0, advskew=100)
    peer = Peer()
    for t in (1.0, 2.0, 3.0, 4.0):
        vh.receive(peer.advert(advskew=0), 4, PEER_SRC, t)
        assert vh.state is State.BACKUP
        assert vh.get_timer() == t + 3.390625
        assert vh.drain() == []
    vh.handle_timer(3.390625)  # the original deadline has passed, but was re-armed
    vh.handle_timer(7.390625 - TICK)
    assert vh.state is State.BACKUP
    assert vh.drain() == []
    assert vh.master == PEER_SRC
    vh.handle_timer(7.390625)  # silence for a whole master-down interval
    assert vh.state is State.MASTER


def test_backup_hearing_equal_master_stays_backup() -> None:
    vh = started(0.0, advskew=50, preempt=True)
    vh.receive(Peer().advert(advskew=50), 4, PEER_SRC, 1.0)
    assert vh.state is State.BACKUP
    assert vh.get_timer() == 1.0 + 3 + 50 / 256


def test_preempt_off_stays_backup_under_slower_master() -> None:
    vh = started(0.0, advskew=0, preempt=False)
    vh.receive(Peer().advert(advskew=100), 4, PEER_SRC, 1.0)
    assert vh.state is State.BACKUP
    assert vh.drain() == []
    assert vh.get_timer() == 4.0


def test_preempt_on_takes_over_from_slower_master_at_once() -> None:
    vh = started(0.0, advskew=0, preempt=True)
    vh.receive(Peer().advert(advskew=100), 4, PEER_SRC, 1.0)
    assert vh.state is State.MASTER
    actions = vh.drain()
    assert kinds(actions) == TAKEOVER
    assert vh.last_transition == 1.0
    assert vh.get_timer() == 2.0


def test_preempt_compares_advbase_first() -> None:
    # (1, 200) is more frequent than (2, 0): advbase dominates advskew.
    vh = started(0.0, advbase=1, advskew=200, preempt=True)
    vh.receive(Peer().advert(advbase=2, advskew=0), 4, PEER_SRC, 1.0)
    assert vh.state is State.MASTER
    vh2 = started(0.0, advbase=2, advskew=0, preempt=True)
    vh2.receive(Peer().advert(advbase=1, advskew=200), 4, PEER_SRC, 1.0)
    assert vh2.state is State.BACKUP


@pytest.mark.parametrize(
    ("ours", "theirs", "takes_over"),
    [
        ((1, 0), (3, 0), False),  # ptimeout (3, 0) == theirs: not less
        ((1, 0), (3, 1), True),
        ((1, 0), (4, 0), True),  # peer advbase > 3 * ours
        ((1, 0), (84, 0), True),
        ((1, 100), (3, 100), False),
        ((1, 100), (3, 101), True),
        ((2, 0), (6, 0), False),
        ((2, 0), (7, 0), True),
    ],
)
def test_rule3_master_will_time_out(
    ours: tuple[int, int], theirs: tuple[int, int], takes_over: bool
) -> None:
    vh = started(0.0, advbase=ours[0], advskew=ours[1], preempt=False)
    vh.receive(Peer().advert(*theirs), 4, PEER_SRC, 1.0)
    assert (vh.state is State.MASTER) is takes_over
    if takes_over:
        assert kinds(vh.drain()) == TAKEOVER


def test_rule3_uses_deadratio() -> None:
    vh = started(0.0, advbase=1, deadratio=5)
    vh.receive(Peer().advert(advbase=5), 4, PEER_SRC, 1.0)
    assert vh.state is State.BACKUP
    vh.receive(Peer().advert(advbase=6), 4, PEER_SRC, 1.5)
    assert vh.state is State.MASTER


def test_infinite_advert_makes_backup_take_over_at_once() -> None:
    vh = started(0.0, advskew=200, preempt=False)
    vh.receive(Peer().advert(advbase=255, advskew=255), 4, PEER_SRC, 0.5)
    assert vh.state is State.MASTER
    assert kinds(vh.drain()) == TAKEOVER
    assert vh.last_transition == 0.5


def test_infinite_advert_with_slow_own_advbase() -> None:
    # With advbase 100, 3 * 100 > 255 so rule 3 alone would not fire; the bow-out does.
    vh = started(0.0, advbase=100, preempt=False)
    vh.receive(Peer().advert(advbase=255, advskew=255), 4, PEER_SRC, 0.5)
    assert vh.state is State.MASTER


def test_infinite_advert_is_ignored_by_master() -> None:
    vh, t = as_master(0.0)
    timer = vh.get_timer()
    vh.receive(Peer().advert(advbase=255, advskew=255), 4, PEER_SRC, t + 0.5)
    assert vh.state is State.MASTER
    assert vh.drain() == []
    assert vh.get_timer() == timer


def test_advbase_255_without_skew_255_is_not_a_bow_out_for_master() -> None:
    # Only 255/255 is the bow-out; a merely slow peer is answered with our advert.
    vh, t = as_master(0.0)
    vh.receive(Peer().advert(advbase=255, advskew=254), 4, PEER_SRC, t + 0.5)
    assert vh.state is State.MASTER
    assert kinds(vh.drain()) == [SendAdvert, Announce]


# -- MASTER receives (spec 4.3) --------------------------------------------------------


def test_master_steps_down_to_more_frequent_advert() -> None:
    vh, t = as_master(0.0, advskew=100)
    vh.receive(Peer().advert(advskew=99), 4, PEER_SRC, t + 0.5)
    assert vh.state is State.BACKUP
    actions = vh.drain()
    assert kinds(actions) == STEP_DOWN
    assert state_change(actions) == (State.MASTER, State.BACKUP)
    assert actions[-1] == RunHook(State.BACKUP)
    # No more adverts: only the master-down timer is left.
    assert vh.get_timer() == t + 0.5 + 3.390625
    assert vh.master == PEER_SRC


def test_master_steps_down_to_smaller_advbase() -> None:
    vh, t = as_master(0.0, advbase=2, advskew=0)
    vh.receive(Peer().advert(advbase=1, advskew=255), 4, PEER_SRC, t + 0.5)
    assert vh.state is State.BACKUP


def test_master_reasserts_against_less_frequent_advert() -> None:
    vh, t = as_master(0.0, advskew=0)
    timer = vh.get_timer()
    vh.receive(Peer().advert(advskew=1), 4, PEER_SRC, t + 0.5)
    assert vh.state is State.MASTER
    actions = vh.drain()
    assert kinds(actions) == [SendAdvert, Announce]
    assert vh.get_timer() == timer  # the regular schedule is unchanged


def test_tie_bsd_master_steps_down_on_equal_advert() -> None:
    vh, t = as_master(0.0, advskew=10, tiebreak="bsd")
    vh.receive(Peer().advert(advskew=10), 4, ip("192.0.2.254"), t + 0.5)
    assert vh.state is State.BACKUP
    # Silently, as the BSDs do: a last advert would make the other master, which also
    # yields to an equal advert, step down too (tests/unit/test_sim_properties.py).
    assert kinds(vh.drain()) == STEP_DOWN[1:]


def test_tie_bsd_master_yielding_to_a_less_demoted_advert_still_sends_a_last_one() -> None:
    # Not a tie: the other master stays MASTER on our (more demoted) last advert and
    # re-announces, which is what the last advert is for.
    vh, t = as_master(0.0, advskew=10, tiebreak="bsd")
    vh.set_demotion(1, t)
    vh.drain()
    vh.receive(Peer().advert(advskew=11, demote=0), 4, ip("192.0.2.254"), t + 0.5)
    assert vh.state is State.BACKUP
    assert kinds(vh.drain()) == STEP_DOWN


@pytest.mark.parametrize(
    ("peer", "steps_down"),
    [
        ("10.9.0.2", False),  # little-endian 0x0200090a > own 0x0100090a
        ("10.200.0.0", True),  # little-endian 0x0000c80a < own: numerically higher, wins
        ("10.9.0.0", True),
        ("9.9.0.1", True),  # same last octet, decided by the next one up
        ("11.9.0.1", False),
        ("255.255.255.0", True),
    ],
)
def test_tie_ucarp_little_endian_source_order(peer: str, steps_down: bool) -> None:
    own = ip("10.9.0.1")
    vh, t = as_master(0.0, tiebreak="ucarp", own_sources={4: own})
    vh.receive(Peer().advert(), 4, ip(peer), t + 0.5)
    assert (vh.state is State.BACKUP) is steps_down
    assert kinds(vh.drain()) == (STEP_DOWN if steps_down else [SendAdvert, Announce])


def test_tie_ucarp_applies_only_to_equal_adverts() -> None:
    own = ip("10.9.0.1")
    vh, t = as_master(0.0, advskew=5, tiebreak="ucarp", own_sources={4: own})
    # 10.200.0.0 wins ties, but this advert is less frequent: stay MASTER.
    vh.receive(Peer().advert(advskew=6), 4, ip("10.200.0.0"), t + 0.5)
    assert vh.state is State.MASTER
    # 10.9.0.2 loses ties, but this advert is more frequent: step down.
    vh.receive(Peer().advert(advskew=4), 4, ip("10.9.0.2"), t + 0.6)
    assert vh.state is State.BACKUP


# -- demote byte (OpenBSD) --------------------------------------------------------------


def test_backup_takes_over_from_more_demoted_master_without_preempt() -> None:
    vh = started(0.0, advskew=100, preempt=False)
    # The peer is more frequent, but more demoted: rule 2.
    vh.receive(Peer().advert(advskew=0, demote=1), 4, PEER_SRC, 1.0)
    assert vh.state is State.MASTER
    assert kinds(vh.drain()) == TAKEOVER


def test_backup_equal_demote_does_not_take_over() -> None:
    vh = started(0.0, advskew=100, preempt=False)
    vh.demotion = 3
    vh.receive(Peer().advert(advskew=0, demote=3), 4, PEER_SRC, 1.0)
    assert vh.state is State.BACKUP


def test_backup_does_not_preempt_a_less_demoted_master() -> None:
    # Rule 1 needs dm_theirs >= dm_ours: being faster is not enough when we are demoted.
    vh = started(0.0, advskew=0, preempt=True)
    vh.demotion = 1
    vh.receive(Peer().advert(advskew=100, demote=0), 4, PEER_SRC, 1.0)
    assert vh.state is State.BACKUP
    assert vh.get_timer() == 4.0


def test_master_steps_down_to_less_demoted_peer() -> None:
    vh, t = as_master(0.0, advskew=0)
    vh.demotion = 2
    vh.receive(Peer().advert(advskew=200, demote=1), 4, PEER_SRC, t + 0.5)
    assert vh.state is State.BACKUP
    assert kinds(vh.drain()) == STEP_DOWN


def test_master_keeps_role_against_more_demoted_faster_peer() -> None:
    vh, t = as_master(0.0, advskew=100)
    vh.receive(Peer().advert(advskew=0, demote=1), 4, PEER_SRC, t + 0.5)
    assert vh.state is State.MASTER


def test_sent_adverts_carry_our_demote_byte() -> None:
    vh, t = as_master(0.0)
    vh.demotion = 9
    vh.handle_timer(t + 1)
    [advert] = sent(vh.drain())
    assert advert.demote == 9
    assert advert.advskew == 9  # folded into advskew too, for FreeBSD and ucarp


# -- stop -----------------------------------------------------------------------------


def test_stop_as_master_bows_out() -> None:
    vh, t = as_master(0.0, advskew=30)
    vh.stop(t + 0.25)
    actions = vh.drain()
    assert kinds(actions) == [SendAdvert, RemoveAddresses, RunHook, StateChanged]
    [bow_out] = sent(actions)
    assert (bow_out.advbase, bow_out.advskew, bow_out.vhid) == (255, 255, 7)
    assert bow_out.is_bow_out
    make_auth().verify(bow_out.counter_bytes, bow_out.hmac)
    assert actions[2] == RunHook(State.INIT)  # leaving the group, not a BACKUP
    assert state_change(actions[3:]) == (State.MASTER, State.INIT)
    assert vh.state is State.INIT
    assert vh.get_timer() is None
    vh.handle_timer(t + 100)  # no further adverts after the bow-out
    assert vh.drain() == []


def test_stop_as_backup() -> None:
    vh = started(0.0)
    vh.stop(1.0)
    actions = vh.drain()
    assert kinds(actions) == [StateChanged]
    assert state_change(actions) == (State.BACKUP, State.INIT)
    assert vh.get_timer() is None
    vh.handle_timer(10.0)
    assert vh.state is State.INIT
    assert vh.drain() == []


def test_stop_in_init_is_silent() -> None:
    vh = make_vhost()
    vh.stop(0.0)
    assert vh.drain() == []
    assert vh.counters.transitions == 0


def test_restart_after_stop() -> None:
    vh, t = as_master(0.0)
    vh.stop(t + 1)
    vh.drain()
    vh.start(t + 2)
    assert vh.state is State.BACKUP
    assert vh.get_timer() == t + 2 + 3.0


def test_bow_out_of_one_node_promotes_the_other() -> None:
    a, t = as_master(0.0, own_sources={4: ip("192.0.2.1")})
    b = started(0.0, advskew=100, own_sources={4: ip("192.0.2.2")})
    a.stop(t + 0.5)
    [bow_out] = sent(a.drain())
    b.receive(bow_out, 4, ip("192.0.2.1"), t + 0.501)
    assert b.state is State.MASTER


# -- counters and authentication ------------------------------------------------------


def test_counters_advance() -> None:
    vh = started(0.0, advskew=100)
    assert vh.counters.adverts_received == 0
    peer = Peer()
    vh.receive(peer.advert(), 4, PEER_SRC, 1.0)
    vh.receive(peer.advert(), 4, PEER_SRC, 2.0)
    assert vh.counters.adverts_received == 2
    vh.handle_timer(2.0 + 3.390625)  # takeover: one advert
    vh.handle_timer(2.0 + 3.390625 + 1.390625)  # one more
    assert vh.counters.transitions == 2  # INIT->BACKUP, BACKUP->MASTER
    with pytest.raises(BadHMAC):
        vh.receive(Peer(password="nope").advert(), 4, PEER_SRC, 7.0)
    assert vh.counters.adverts_received == 2
    # The core asks for adverts; what went out is counted where they are sent.
    assert sum(isinstance(a, SendAdvert) for a in vh.drain()) == 2


def test_sent_adverts_verify_with_a_peer_authenticator() -> None:
    addrs = [ip("192.0.2.100"), ip("192.0.2.101")]
    vh, t = as_master(0.0, addrs=addrs)
    for k in range(1, 4):
        vh.handle_timer(t + k)
    vh.stop(t + 3.5)
    adverts = sent(vh.drain())
    assert len(adverts) == 4
    # Same password, same addresses given in another order: verifies.
    peer_auth = make_auth(addrs=list(reversed(addrs)))
    wrong_pw = make_auth(password="other")
    wrong_addrs = make_auth(addrs=[VIP])
    for a in adverts:
        peer_auth.verify(a.counter_bytes, a.hmac)
        with pytest.raises(BadHMAC):
            wrong_pw.verify(a.counter_bytes, a.hmac)
        with pytest.raises(BadHMAC):
            wrong_addrs.verify(a.counter_bytes, a.hmac)
    assert len({a.counter for a in adverts}) == 4  # a fresh counter per advert


def test_two_vhosts_accept_each_others_adverts() -> None:
    a, t = as_master(0.0, own_sources={4: ip("192.0.2.1")})
    b = started(0.0, advskew=100, own_sources={4: ip("192.0.2.2")})
    a.handle_timer(t + 1)
    [advert] = sent(a.drain())
    b.receive(advert, 4, ip("192.0.2.1"), t + 1.001)
    assert b.counters.adverts_received == 1
    assert b.get_timer() == t + 1.001 + 3.390625


# -- per-family master-down timers ----------------------------------------------------


def dual_stack(**settings: object) -> VirtualHost:
    return started(
        0.0,
        families={4, 6},
        own_sources={4: OWN_SRC, 6: ip("fe80::2")},
        **settings,
    )


def test_ipv4_adverts_alone_do_not_keep_ipv6_timer_alive() -> None:
    vh = dual_stack()
    assert vh.get_timer() == 3.0
    vh.receive(Peer().advert(), 4, PEER_SRC, 2.0)
    assert vh.get_timer() == 3.0  # the IPv6 deadline is still the earliest
    vh.handle_timer(3.0 - TICK)
    assert vh.state is State.BACKUP
    vh.handle_timer(3.0)
    assert vh.state is State.MASTER


def test_ipv6_adverts_alone_do_not_keep_ipv4_timer_alive() -> None:
    vh = dual_stack()
    vh.receive(Peer().advert(), 6, ip("fe80::1"), 2.0)
    assert vh.get_timer() == 3.0
    vh.handle_timer(3.0)
    assert vh.state is State.MASTER


def test_adverts_on_both_families_keep_backup() -> None:
    vh = dual_stack()
    peer = Peer()
    for t in (1.0, 2.0, 3.0, 4.0, 5.0):
        vh.receive(peer.advert(), 4, PEER_SRC, t)
        vh.receive(peer.advert(), 6, ip("fe80::1"), t + 0.01)
        vh.handle_timer(t + 0.5)
        assert vh.state is State.BACKUP
    assert vh.get_timer() == 8.0


def test_step_down_arms_every_family() -> None:
    vh, t = as_master(0.0, families={4, 6}, own_sources={4: OWN_SRC, 6: ip("fe80::2")}, advskew=50)
    vh.receive(Peer().advert(), 4, PEER_SRC, t + 0.5)
    assert vh.state is State.BACKUP
    # Only IPv4 adverts keep coming: the IPv6 timer from the step-down still fires.
    deadline = t + 0.5 + 3 + 50 / 256
    vh.receive(Peer().advert(), 4, PEER_SRC, t + 1.5)
    assert vh.get_timer() == deadline
    vh.handle_timer(deadline)
    assert vh.state is State.MASTER


def test_the_last_advert_heard_and_its_interval_are_kept() -> None:
    """For the transition history: when the silence before a takeover began. A rejected
    advert (bad HMAC) does not count as heard."""
    vh = make_vhost(advbase=1, advskew=0)
    vh.start(0.0)
    assert vh.last_heard is None
    vh.receive(Peer().advert(advbase=2, advskew=64), 4, PEER_SRC, 5.0)
    assert (vh.last_heard, vh.heard_interval) == (5.0, 2.25)
    forged = Peer(password="wrong").advert()
    with pytest.raises(BadHMAC):
        vh.receive(forged, 4, PEER_SRC, 6.0)
    assert vh.last_heard == 5.0


def test_a_master_forced_to_backup_knows_no_master_until_it_hears_one() -> None:
    """Status names the master a BACKUP hears: never the node itself, from its own
    time as MASTER."""
    vh, t = as_master(0.0)
    assert vh.master == OWN_SRC
    vh.force_state(State.BACKUP, t + 0.5)
    assert vh.state is State.BACKUP and vh.master is None
    vh.receive(Peer().advert(advskew=100), 4, PEER_SRC, t + 1.0)
    assert vh.master == PEER_SRC
