"""The VRRPv3 state machine (RFC 5798 6.4) on a virtual clock, and two routers talking."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Sequence

import pytest
from helpers_vrrp import (
    OWN4,
    OWN6,
    PEER4,
    PEER6,
    VIP4,
    VIP6,
    VRID,
    advert,
    captured_vrrp,
    kinds,
    make_router,
    sent,
)

from carpd.core.actions import (
    AddAddresses,
    Announce,
    RemoveAddresses,
    RunHook,
    SendVrrp,
    StateChanged,
)
from carpd.core.errors import OwnAdvert, UnknownVhid
from carpd.core.model import IPAddress, State
from carpd.core.vrrp import VRRP_GROUP_V4, VRRP_GROUP_V6, decode_vrrp
from carpd.core.vrrp_machine import (
    VrrpRouter,
    VrrpSettings,
    effective_priority,
    master_down_interval,
    skew_time,
)

TAKEOVER = [StateChanged, AddAddresses, Announce, SendVrrp, RunHook]
STEP_DOWN = [StateChanged, RemoveAddresses, RunHook]
# Master_Down_Interval and Skew_Time for a 1 s master, by our priority (all exact floats).
MDI_100, SKEW_100 = 3.609375, 0.609375  # (256 - 100) * 100 / 256 = 60.9375 cs
MDI_200, SKEW_200 = 3.21875, 0.21875  # (256 - 200) * 100 / 256 = 21.875 cs
MDI_150 = 3.4140625  # (256 - 150) * 100 / 256 = 41.40625 cs
TICK = 1 / 1024


def started(t0: float = 0.0, **settings: object) -> VrrpRouter:
    r = make_router(**settings)
    r.start(t0)
    r.drain()
    return r


def as_master(t0: float = 0.0, **settings: object) -> tuple[VrrpRouter, float]:
    r = started(t0, **settings)
    t = r.get_timer()
    assert t is not None
    r.handle_timer(t)
    assert r.state is State.MASTER
    r.drain()
    return r, t


def state(r: VrrpRouter) -> State:
    """The state, read through a call so mypy does not keep an earlier narrowing."""
    return r.state


def reason(actions: Sequence[object]) -> str:
    first = actions[0]
    assert isinstance(first, StateChanged)
    return first.reason


# -- settings and formulas --------------------------------------------------------------


def test_settings_defaults_follow_the_rfc() -> None:
    s = VrrpSettings(vrid=1, addresses=(VIP4,))
    assert (s.priority, s.interval_cs, s.preempt, s.accept, s.neutral) == (
        100,
        100,
        True,
        False,
        False,
    )
    assert s.families == frozenset({4})
    assert s.vhid == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"vrid": 0},
        {"vrid": 256},
        {"priority": 0},
        {"priority": 255},
        {"interval_cs": 0},
        {"interval_cs": 4096},
        {"families": frozenset()},
        {"families": frozenset({5})},
        {"families": frozenset({4, 6})},  # no IPv6 address
        {"addresses": ()},
        {"addresses": (VIP4, VIP6)},  # an IPv6 address on an IPv4-only VRID
    ],
)
def test_settings_refuse_nonsense(bad: dict[str, object]) -> None:
    kwargs: dict[str, object] = {"vrid": 1, "addresses": (VIP4,), **bad}
    with pytest.raises(ValueError):
        VrrpSettings(**kwargs)  # type: ignore[arg-type]


def test_addresses_of_a_family() -> None:
    s = VrrpSettings(vrid=1, families=frozenset({4, 6}), addresses=(VIP6, VIP4))
    assert s.addresses_of(4) == (VIP4,)
    assert s.addresses_of(6) == (VIP6,)


@pytest.mark.parametrize(
    ("priority", "interval_cs", "skew", "mdi"),
    [
        (100, 100, SKEW_100, MDI_100),
        (200, 100, SKEW_200, MDI_200),
        (254, 100, 0.0078125, 3.0078125),
        (1, 100, 0.99609375, 3.99609375),
        (100, 10, 0.0609375, 0.3609375),
        (100, 4095, 4095 * 156 / 256 / 100, (3 * 4095 + 4095 * 156 / 256) / 100),
    ],
)
def test_rfc_timer_formulas(priority: int, interval_cs: int, skew: float, mdi: float) -> None:
    assert skew_time(priority, interval_cs) == skew
    assert master_down_interval(priority, interval_cs) == mdi


def test_effective_priority() -> None:
    assert effective_priority(100, 0) == 100
    assert effective_priority(100, 30) == 70
    assert effective_priority(100, 99) == 1
    assert effective_priority(100, 1 << 20) == 1
    assert effective_priority(100, -5) == 100


def test_carp_only_fields() -> None:
    r = make_router(priority=200)
    assert (r.advskew, r.demote) == (0, 0)
    assert r.priority == 200
    assert r.advert_interval == 1.0
    assert r.master_down_interval == MDI_200


# -- start ------------------------------------------------------------------------------


def test_start_enters_backup() -> None:
    r = make_router()
    assert r.state is State.INIT
    assert r.get_timer() is None
    r.start(10.0)
    actions = r.drain()
    assert actions == [
        StateChanged(State.INIT, State.BACKUP, "initialization complete"),
        RemoveAddresses(),
        RunHook(State.BACKUP),
    ]
    assert r.get_timer() == 10.0 + MDI_100
    assert r.last_transition == 10.0
    r.start(11.0)
    assert r.drain() == []


def test_neutral_suppresses_the_first_down_hook_only() -> None:
    r, _ = as_master(0.0, neutral=True)
    r2 = make_router(neutral=True)
    r2.start(0.0)
    assert kinds(r2.drain()) == [StateChanged, RemoveAddresses]
    r.receive(advert(200), 4, PEER4, 10.0)
    assert kinds(r.drain()) == STEP_DOWN


# -- BACKUP: the Master_Down_Timer ------------------------------------------------------


@pytest.mark.parametrize(("priority", "mdi"), [(100, MDI_100), (200, MDI_200), (150, MDI_150)])
def test_takeover_exactly_at_master_down_interval(priority: int, mdi: float) -> None:
    r = started(0.0, priority=priority)
    assert r.get_timer() == mdi
    r.handle_timer(mdi - TICK)
    assert r.state is State.BACKUP
    assert r.drain() == []
    r.handle_timer(mdi)
    assert state(r) is State.MASTER
    assert r.last_transition == mdi


def test_takeover_actions() -> None:
    r = started(0.0)
    r.handle_timer(MDI_100)
    actions = r.drain()
    assert kinds(actions) == TAKEOVER
    assert reason(actions) == "master timed out"
    assert actions[3] == SendVrrp(
        4, advert(100, 100, addresses=(VIP4,))
    )  # our priority, interval, addresses
    assert actions[4] == RunHook(State.MASTER)
    assert r.master == OWN4
    assert r.get_timer() == MDI_100 + 1.0


def test_subsecond_interval() -> None:
    r = started(0.0, interval_cs=10)
    assert r.get_timer() == 0.3609375
    r.handle_timer(0.3609375)
    assert r.state is State.MASTER
    (adv,) = sent(r.drain())
    assert adv.packet.interval_cs == 10
    assert r.get_timer() == 0.3609375 + 0.1
    # Adverts every 0.1 s, scheduled from the deadline.
    t = 0.3609375
    for _ in range(20):
        t += 0.1
        assert r.get_timer() == t
        r.handle_timer(t)
        assert len(sent(r.drain())) == 1


def test_master_adverts_without_drift_and_delayed_announce() -> None:
    r, t = as_master(0.0)
    per_advert = []
    for k in range(1, 5):
        assert r.get_timer() == t + k
        r.handle_timer(t + k)
        per_advert.append(kinds(r.drain()))
    assert per_advert == [[SendVrrp], [SendVrrp, Announce], [SendVrrp], [SendVrrp]]


def test_a_deliberate_hold_moves_the_advert_schedule_and_lateness_does_not() -> None:
    """The runtime holds a deadline back (at most 1 ms) to share a wakeup with other
    vhids: the schedule moves with it, so they stay together. Lateness is made up."""
    r, t = as_master(0.0)
    r.handle_timer(t + 1 + 0.0007, held=0.0007)
    assert r.get_timer() == pytest.approx(t + 2 + 0.0007)
    r.handle_timer(t + 2 + 0.0007 + 0.004)  # 4 ms late: not moved
    assert r.get_timer() == pytest.approx(t + 3 + 0.0007)


def test_master_timer_resyncs_after_a_long_stall() -> None:
    r, t = as_master(0.0)
    r.handle_timer(t + 10.5)
    assert r.get_timer() == t + 11.5


def test_backup_accepting_an_advert_rearms_the_timer() -> None:
    r = started(0.0)
    r.receive(advert(150), 4, PEER4, 2.0)
    assert r.get_timer() == 2.0 + MDI_100
    assert r.master == PEER4
    assert r.drain() == []
    r.receive(advert(100), 4, PEER4, 3.0)  # equal priority is accepted too
    assert r.get_timer() == 3.0 + MDI_100
    assert r.state is State.BACKUP


def test_backup_adopts_the_masters_interval() -> None:
    r = started(0.0)
    r.receive(advert(150, interval_cs=50), 4, PEER4, 2.0)
    assert r.master_adver_interval(4) == 0.5
    assert r.get_timer() == 2.0 + 1.8046875  # 3 * 50 + 156 * 50 / 256 = 180.46875 cs
    r.receive(advert(150, interval_cs=300), 4, PEER4, 3.0)
    assert r.get_timer() == 3.0 + 10.828125  # 900 + 182.8125 cs
    # As MASTER it still sends its own interval.
    r.handle_timer(3.0 + 10.828125)
    (adv,) = sent(r.drain())
    assert adv.packet.interval_cs == 100
    assert r.get_timer() == 3.0 + 10.828125 + 1.0


def test_restart_forgets_the_learned_interval() -> None:
    r = started(0.0)
    r.receive(advert(150, interval_cs=300), 4, PEER4, 1.0)
    r.stop(2.0)
    r.start(3.0)
    assert r.master_adver_interval(4) == 1.0
    assert r.get_timer() == 3.0 + MDI_100


def test_preempt_discards_a_lower_priority_master_and_times_it_out() -> None:
    r = started(0.0, priority=200, preempt=True)
    for t in (1.0, 2.0, 3.0):
        r.receive(advert(100), 4, PEER4, t)
        assert r.get_timer() == MDI_200  # not rearmed
    r.handle_timer(MDI_200)
    actions = r.drain()
    assert kinds(actions) == TAKEOVER
    # Said as what it is: the master was heard all along (a flap does not count it).
    assert reason(actions) == "preempting a lower priority master"


def test_a_master_back_at_a_higher_priority_is_not_preempted_and_times_out_again() -> None:
    r = started(0.0, priority=200, preempt=True)
    r.receive(advert(100), 4, PEER4, 1.0)  # demoted: we would preempt it
    r.receive(advert(250), 4, PEER4, 2.0)  # back above us: we follow it again
    r.handle_timer(2.0 + MDI_200)
    assert reason(r.drain()) == "master timed out"


def test_preempt_off_stays_backup_under_a_lower_priority_master() -> None:
    r = started(0.0, priority=200, preempt=False)
    for t in (1.0, 2.0, 3.0, 4.0, 5.0):
        r.receive(advert(100), 4, PEER4, t)
    r.handle_timer(5.0 + MDI_200 - TICK)
    assert r.state is State.BACKUP
    assert r.get_timer() == 5.0 + MDI_200


def test_priority_zero_makes_the_backup_take_over_after_skew_time() -> None:
    r = started(0.0)
    r.receive(advert(200), 4, PEER4, 1.0)
    r.receive(advert(0), 4, PEER4, 1.5)
    assert r.get_timer() == 1.5 + SKEW_100
    r.handle_timer(1.5 + SKEW_100 - TICK)
    assert r.state is State.BACKUP
    r.handle_timer(1.5 + SKEW_100)
    actions = r.drain()
    assert kinds(actions) == TAKEOVER
    assert reason(actions) == "master released (priority 0)"


def test_priority_zero_skew_uses_the_learned_interval() -> None:
    r = started(0.0, priority=200)
    r.receive(advert(250, interval_cs=400), 4, PEER4, 1.0)
    r.receive(advert(0, interval_cs=400), 4, PEER4, 2.0)
    assert r.get_timer() == 2.0 + 0.875  # 56 * 400 / 256 = 87.5 cs


def test_priority_zero_with_preempt_does_not_learn() -> None:
    r = started(0.0, priority=200)
    r.receive(advert(0, interval_cs=50), 4, PEER4, 1.0)
    assert r.master_adver_interval(4) == 1.0


def test_better_backup_advert_after_release_cancels_our_takeover() -> None:
    r = started(0.0, priority=100)
    r.receive(advert(0), 4, PEER4, 1.0)
    r.receive(advert(200), 4, ipaddress.IPv4Address("192.0.2.3"), 1.2)
    assert r.get_timer() == 1.2 + MDI_100
    assert r.master == ipaddress.IPv4Address("192.0.2.3")


# -- MASTER receives --------------------------------------------------------------------


def test_master_steps_down_to_a_higher_priority() -> None:
    r, _ = as_master(0.0, priority=100)
    r.receive(advert(101, interval_cs=200), 4, PEER4, 10.0)
    actions = r.drain()
    assert kinds(actions) == STEP_DOWN
    assert reason(actions) == "higher priority master advertised"
    assert r.state is State.BACKUP
    assert r.master == PEER4
    # Master_Adver_Interval learned from the advert: 3 * 200 + 156 * 200 / 256 cs.
    assert r.get_timer() == 10.0 + 7.21875


def test_master_ignores_a_lower_priority() -> None:
    r, t = as_master(0.0, priority=100)
    r.receive(advert(99), 4, PEER4, t + 0.5)
    assert r.drain() == []
    assert r.state is State.MASTER
    assert r.get_timer() == t + 1.0


def test_master_answers_a_release_at_once() -> None:
    r, t = as_master(0.0, priority=100)
    r.receive(advert(0), 4, PEER4, t + 0.25)
    actions = r.drain()
    assert kinds(actions) == [SendVrrp]
    assert sent(actions)[0].packet.priority == 100
    assert r.get_timer() == t + 1.25
    assert r.state is State.MASTER


@pytest.mark.parametrize(
    ("own", "peer", "steps_down"),
    [
        ("192.0.2.2", "192.0.2.3", True),
        ("192.0.2.2", "192.0.2.1", False),
        # Network byte order: 192.0.3.1 is greater than 192.0.2.2 (ucarp's little-endian
        # order would say the opposite).
        ("192.0.2.2", "192.0.3.1", True),
        ("192.0.2.2", "10.0.0.255", False),
    ],
)
def test_equal_priority_tie_break_on_the_primary_address(
    own: str, peer: str, steps_down: bool
) -> None:
    r, _ = as_master(0.0, own_sources={4: ipaddress.IPv4Address(own)})
    r.receive(advert(100), 4, ipaddress.IPv4Address(peer), 10.0)
    actions = r.drain()
    if steps_down:
        assert kinds(actions) == STEP_DOWN
        assert reason(actions) == "equal priority master with a greater address advertised"
    else:
        assert actions == []
        assert r.state is State.MASTER


def test_equal_priority_tie_break_ipv6_link_local() -> None:
    r, _ = as_master(0.0, families={6}, own_sources={6: ipaddress.IPv6Address("fe80::2")})
    r.receive(advert(100, addresses=(VIP6,)), 6, ipaddress.IPv6Address("fe80::1"), 10.0)
    assert r.state is State.MASTER
    r.receive(advert(100, addresses=(VIP6,)), 6, ipaddress.IPv6Address("fe80::1:0"), 11.0)
    assert state(r) is State.BACKUP


def test_equal_priority_uses_the_effective_priority() -> None:
    r, _ = as_master(0.0, priority=120)
    r.set_demotion(20, 5.0)
    r.drain()
    r.receive(advert(100), 4, PEER4, 6.0)  # 192.0.2.1 < 192.0.2.2: we keep MASTER
    assert r.state is State.MASTER
    r.receive(advert(100), 4, ipaddress.IPv4Address("192.0.2.9"), 6.5)
    assert state(r) is State.BACKUP


def test_step_down_arms_every_family() -> None:
    r, _ = as_master(0.0, families={4, 6})
    r.receive(advert(200, interval_cs=200, addresses=(VIP6,)), 6, PEER6, 10.0)
    assert r.state is State.BACKUP
    # IPv6 learned 2 s; IPv4 still assumes our own 1 s: it fires first.
    assert r.get_timer() == 10.0 + MDI_100
    assert r.master_down_interval_for(6) == 7.21875


# -- families ---------------------------------------------------------------------------


def test_dual_stack_master_sends_one_advert_per_family() -> None:
    extra6 = ipaddress.IPv6Address("2001:db8::201")
    r = make_router(families={4, 6}, addresses=(VIP4, VIP6, extra6))
    r.start(0.0)
    r.handle_timer(MDI_100)
    adverts = sent(r.drain())
    assert [(a.family, a.packet.addresses) for a in adverts] == [
        (4, (VIP4,)),
        (6, (VIP6, extra6)),
    ]
    # What the runtime sends decodes back.
    ends: list[tuple[IPAddress, IPAddress]] = [(OWN4, VRRP_GROUP_V4), (OWN6, VRRP_GROUP_V6)]
    for a, (src, dst) in zip(adverts, ends, strict=True):
        raw = a.packet.encode(src, dst)
        assert dataclasses.replace(decode_vrrp(raw, src, dst), checksum=0) == a.packet


def test_ipv4_adverts_alone_do_not_keep_the_ipv6_timer_alive() -> None:
    r = started(0.0, families={4, 6})
    for t in (1.0, 2.0, 3.0, 4.0):
        r.receive(advert(200), 4, PEER4, t)
    assert r.get_timer() == MDI_100  # the IPv6 timer
    r.handle_timer(MDI_100)
    assert r.state is State.MASTER


def test_adverts_on_both_families_keep_backup() -> None:
    r = started(0.0, families={4, 6})
    for t in (1.0, 2.0, 3.0, 4.0):
        r.receive(advert(200), 4, PEER4, t)
        r.receive(advert(200, addresses=(VIP6,)), 6, PEER6, t)
    assert r.get_timer() == 4.0 + MDI_100
    assert r.master == PEER4  # the IPv4 source is shown for a dual-stack master


def test_advert_on_a_family_we_do_not_run_is_unknown() -> None:
    r = started(0.0)
    with pytest.raises(UnknownVhid):
        r.receive(advert(200, addresses=(VIP6,)), 6, PEER6, 1.0)
    assert r.counters.adverts_received == 0
    assert r.get_timer() == MDI_100


def test_advert_for_another_vrid_is_unknown() -> None:
    r = started(0.0)
    with pytest.raises(UnknownVhid):
        r.receive(advert(200, vrid=VRID + 1), 4, PEER4, 1.0)


def test_own_advert_is_refused() -> None:
    r = started(0.0)
    with pytest.raises(OwnAdvert):
        r.receive(advert(200), 4, OWN4, 1.0)
    assert r.counters.adverts_received == 0
    assert r.get_timer() == MDI_100


def test_mismatched_addresses_are_counted_and_still_processed() -> None:
    r = started(0.0)
    r.receive(advert(200, addresses=(ipaddress.IPv4Address("192.0.2.99"),)), 4, PEER4, 1.0)
    assert r.mismatched_addresses == 1
    assert r.get_timer() == 1.0 + MDI_100
    r.receive(advert(200, addresses=(VIP4, VIP4)), 4, PEER4, 2.0)
    assert r.mismatched_addresses == 2
    r.receive(advert(200), 4, PEER4, 3.0)
    assert r.mismatched_addresses == 2
    assert r.counters.adverts_received == 3


def test_address_order_does_not_matter() -> None:
    other = ipaddress.IPv4Address("192.0.2.201")
    r = started(0.0, addresses=(VIP4, other))
    r.receive(advert(200, addresses=(other, VIP4)), 4, PEER4, 1.0)
    assert r.mismatched_addresses == 0


# -- stop, demotion, levers -------------------------------------------------------------


def test_stop_as_master_sends_priority_zero_for_each_family() -> None:
    r, _ = as_master(0.0, families={4, 6})
    r.stop(20.0)
    actions = r.drain()
    assert kinds(actions) == [SendVrrp, SendVrrp, RemoveAddresses, RunHook, StateChanged]
    assert [(a.family, a.packet.priority, a.packet.addresses) for a in sent(actions)] == [
        (4, 0, (VIP4,)),
        (6, 0, (VIP6,)),
    ]
    assert actions[3] == RunHook(State.INIT)  # leaving the group, not a BACKUP
    assert actions[4] == StateChanged(State.MASTER, State.INIT, "shutdown")
    assert r.state is State.INIT
    assert r.get_timer() is None


def test_stop_as_backup_is_quiet() -> None:
    r = started(0.0)
    r.stop(1.0, reason="reload")
    assert r.drain() == [StateChanged(State.BACKUP, State.INIT, "reload")]
    assert r.get_timer() is None
    r.stop(2.0)
    assert r.drain() == []


def test_demotion_lowers_the_priority_and_a_master_advertises_at_once() -> None:
    r, t = as_master(0.0, priority=100)
    r.set_demotion(30, t + 0.5)
    actions = r.drain()
    assert kinds(actions) == [SendVrrp]
    assert sent(actions)[0].packet.priority == 70
    assert r.priority == 70
    assert r.demotion == 30
    assert r.get_timer() == t + 1.5
    r.set_demotion(30, t + 0.6)  # no change
    assert r.drain() == []
    r.set_demotion(1 << 20, t + 0.7)
    assert sent(r.drain())[0].packet.priority == 1
    r.set_demotion(1 << 21, t + 0.8)  # still priority 1: nothing new to say
    assert r.drain() == []
    r.set_demotion(0, t + 0.9)
    assert sent(r.drain())[0].packet.priority == 100


def test_demotion_lengthens_a_backups_skew() -> None:
    r = started(0.0, priority=100)
    r.set_demotion(30, 0.5)
    assert r.drain() == []
    r.receive(advert(200), 4, PEER4, 1.0)
    assert r.get_timer() == 1.0 + 3.7265625  # (256 - 70) * 100 / 256 = 72.65625 cs


def test_demoted_backup_with_preempt_accepts_a_master_it_used_to_beat() -> None:
    r = started(0.0, priority=150)
    r.set_demotion(100, 0.0)
    r.receive(advert(100), 4, PEER4, 1.0)
    assert r.get_timer() == 1.0 + r.master_down_interval_for(4)


def test_link_down_and_up() -> None:
    r, _ = as_master(0.0)
    r.link_changed(False, 5.0)
    actions = r.drain()
    assert kinds(actions) == [RemoveAddresses, RunHook, StateChanged]  # no advert possible
    assert r.state is State.INIT
    r.link_changed(False, 5.5)
    assert r.drain() == []
    r.link_changed(True, 6.0)
    actions = r.drain()
    assert actions[0] == StateChanged(State.INIT, State.BACKUP, "carpdev up")
    assert r.get_timer() == 6.0 + MDI_100


def test_start_with_link_down_waits() -> None:
    r = make_router()
    r.link_changed(False, 0.0)
    r.start(0.0)
    assert r.state is State.INIT
    r.link_changed(True, 1.0)
    assert state(r) is State.BACKUP


def test_admin_down_releases_and_admin_up_restarts() -> None:
    r, _ = as_master(0.0)
    r.admin_down(5.0)
    actions = r.drain()
    assert kinds(actions) == [SendVrrp, RemoveAddresses, RunHook, StateChanged]
    assert sent(actions)[0].packet.priority == 0
    assert not r.enabled
    r.start(6.0)
    assert r.state is State.INIT
    r.admin_up(7.0)
    assert r.drain()[0] == StateChanged(State.INIT, State.BACKUP, "user requested up")
    assert r.get_timer() == 7.0 + MDI_100


def test_force_state() -> None:
    r = started(0.0)
    r.force_state(State.MASTER, 1.0)
    actions = r.drain()
    assert kinds(actions) == TAKEOVER
    assert reason(actions) == "user requested"
    r.force_state(State.BACKUP, 2.0)
    actions = r.drain()
    assert kinds(actions) == [SendVrrp, *STEP_DOWN]
    assert sent(actions)[0].packet.priority == 0
    assert r.get_timer() == 2.0 + MDI_100
    r.stop(3.0)
    r.drain()
    r.force_state(State.MASTER, 4.0)  # not from INIT
    assert r.state is State.INIT
    assert r.drain() == []


def test_counters() -> None:
    r = started(0.0)
    r.receive(advert(200), 4, PEER4, 1.0)
    r.handle_timer(1.0 + MDI_100)
    r.handle_timer(2.0 + MDI_100)
    assert (r.counters.adverts_received, r.counters.transitions) == (1, 2)
    assert len(sent(r.drain())) == 2  # counted as adverts_sent once the kernel takes them


# -- the keepalived capture fed to a router ---------------------------------------------

CAPTURED = captured_vrrp()


def test_keepalived_master_keeps_us_backup() -> None:
    r = started(0.0, priority=100)
    t = 0.0
    for cap in CAPTURED:
        if cap.family != 4:
            continue
        t += 1.0
        r.receive(decode_vrrp(cap.payload, cap.src, cap.dst), 4, cap.src, t)
    assert r.state is State.BACKUP
    assert r.master == ipaddress.IPv4Address("192.0.2.1")
    assert r.mismatched_addresses == 0
    assert r.get_timer() == t + MDI_100


def test_keepalived_ipv6_master_wins_the_tie_on_its_link_local() -> None:
    r, _ = as_master(
        0.0,
        vrid=10,
        priority=200,
        families={6},
        own_sources={6: ipaddress.IPv6Address("fe80::2")},
    )
    cap = next(c for c in CAPTURED if c.family == 6)
    r.receive(decode_vrrp(cap.payload, cap.src, cap.dst), 6, cap.src, 10.0)
    assert r.state is State.BACKUP
    assert r.master == cap.src


def test_a_lifted_demotion_shortens_a_running_master_down_timer() -> None:
    # The daemon starts demoted (start-up) and lifts it a moment later: the backup's
    # takeover must follow the real priority, not the start-up one.
    r = make_router(priority=200)
    r.set_demotion(240, 0.0)
    r.start(0.0)
    assert r.get_timer() == pytest.approx(3 + 255 / 256)
    r.set_demotion(0, 0.01)
    assert r.get_timer() == pytest.approx(3 + 56 / 256)


def test_the_last_advert_heard_and_its_interval_are_kept() -> None:
    r = make_router(priority=100, interval_cs=100)
    r.start(0.0)
    r.receive(advert(priority=200, interval_cs=50), 4, PEER4, 2.5)
    assert (r.last_heard, r.heard_interval) == (2.5, 0.5)
