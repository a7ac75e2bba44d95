"""Demotion arithmetic, interface groups and their effect on the machine (virtual clock)."""

from __future__ import annotations

import pytest
from helpers_core import PEER_SRC, Peer, kinds, make_vhost, sent

from carpd.core.actions import (
    AddAddresses,
    Announce,
    RemoveAddresses,
    RunHook,
    SendAdvert,
    StateChanged,
)
from carpd.core.demotion import (
    DemoteRangeError,
    Demotion,
    demote_byte,
    demoted_advskew,
)
from carpd.core.machine import VirtualHost
from carpd.core.model import State

SERVICE = 1 << 20


def test_advskew_folding_is_capped_at_240_as_on_freebsd() -> None:
    assert demoted_advskew(0, 0) == 0
    assert demoted_advskew(100, 0) == 100
    assert demoted_advskew(0, 128) == 128
    assert demoted_advskew(100, 240) == 240
    assert demoted_advskew(0, SERVICE) == 240
    # Never more attractive than configured: 250 stays 250 when demoted.
    assert demoted_advskew(250, 1) == 250


def test_demote_byte_is_capped_at_255() -> None:
    assert demote_byte(0) == 0
    assert demote_byte(128) == 128
    assert demote_byte(SERVICE) == 255


def test_total_is_node_sources_plus_the_vhids_groups() -> None:
    d = Demotion()
    d.declare_groups(["lan", "wan"])
    d.set_source("service disruption", SERVICE)
    d.adjust_group("carp", 1)
    d.adjust_group("lan", 50)
    assert d.total(["carp", "lan"]) == SERVICE + 51
    assert d.total(["carp", "wan"]) == SERVICE + 1
    assert d.reasons(["carp", "lan", "lan"]) == [
        ("service disruption", SERVICE),
        ("group lan", 50),
        ("group carp", 1),
    ]
    d.set_source("service disruption", 0)
    assert d.total(["carp"]) == 1
    assert "service disruption" not in d.sources


def test_set_source_reports_changes() -> None:
    d = Demotion()
    assert d.set_source("maintenance", 240) is True
    assert d.set_source("maintenance", 240) is False
    assert d.set_source("maintenance", 0) is True
    assert d.set_source("maintenance", 0) is False


def test_carpdemote_adds_and_minus_carpdemote_takes_back() -> None:
    d = Demotion()
    assert d.adjust_group("carp", 128) == 128
    assert d.adjust_group("carp", -128) == 0


@pytest.mark.parametrize(("start", "delta"), [(200, 128), (0, -1), (255, 1)])
def test_group_counts_stay_in_0_to_255_as_on_openbsd(start: int, delta: int) -> None:
    d = Demotion()
    d.groups["carp"] = start
    with pytest.raises(DemoteRangeError, match="allowed range 0-255"):
        d.adjust_group("carp", delta)
    assert d.groups["carp"] == start  # a refused change changes nothing


def test_declaring_the_groups_again_keeps_counts_adds_and_drops() -> None:
    """What a reload does: the groups its vhids name now, counts kept where they remain."""
    d = Demotion()
    d.declare_groups(["lan", "wan"])
    d.adjust_group("lan", 10)
    d.adjust_group("carp", 2)
    d.declare_groups(["lan", "web"])
    assert d.groups == {"carp": 2, "lan": 10, "web": 0}
    assert d.adjust_group("web", 1) == 1
    with pytest.raises(DemoteRangeError, match="no interface group 'wan'"):
        d.adjust_group("wan", 1)


def test_unknown_group_is_refused_with_the_known_ones() -> None:
    d = Demotion()
    d.declare_groups(["lan"])
    with pytest.raises(DemoteRangeError, match=r"no interface group 'dmz' \(groups: carp, lan\)"):
        d.adjust_group("dmz", 1)


# -- the machine ----------------------------------------------------------------------


def master(advskew: int = 0, **settings: object) -> VirtualHost:
    vh = make_vhost(advskew=advskew, **settings)
    vh.start(0.0)
    vh.handle_timer(vh.get_timer())
    assert vh.state is State.MASTER
    vh.drain()
    return vh


def test_a_master_advertises_a_new_demotion_at_once() -> None:
    vh = master(advskew=10)
    vh.set_demotion(128, 3.5)
    [advert] = sent(vh.drain())
    assert (advert.advskew, advert.demote) == (138, 128)
    assert vh.get_timer() == pytest.approx(3.5 + 1 + 138 / 256)
    vh.set_demotion(128, 3.6)  # unchanged: nothing sent
    assert vh.drain() == []


def test_a_demoted_master_loses_to_an_undemoted_skew_only_peer() -> None:
    # ucarp / FreeBSD send demote byte 0 and their own advskew: the folded skew decides,
    # and the byte rule (a less demoted peer wins) decides even first.
    vh = master(advskew=0)
    vh.set_demotion(SERVICE, 3.5)
    vh.drain()
    vh.receive(Peer().advert(advskew=200), 4, PEER_SRC, 3.6)
    assert vh.state is State.BACKUP


def test_a_demoted_backup_does_not_preempt() -> None:
    vh = make_vhost(advskew=0, preempt=True)
    vh.start(0.0)
    vh.set_demotion(240, 0.5)
    vh.receive(Peer().advert(advskew=100), 4, PEER_SRC, 1.0)
    assert vh.state is State.BACKUP


def test_recovery_lets_a_preempting_backup_take_the_role_back() -> None:
    vh = make_vhost(advskew=0, preempt=True)
    vh.start(0.0)
    vh.set_demotion(240, 0.5)
    vh.receive(Peer().advert(advskew=100), 4, PEER_SRC, 1.0)
    vh.set_demotion(0, 1.5)
    vh.receive(Peer().advert(advskew=100), 4, PEER_SRC, 2.0)
    assert vh.state is State.MASTER


def test_master_down_interval_ignores_demotion_as_on_freebsd() -> None:
    vh = make_vhost(advskew=0)
    vh.start(0.0)
    vh.set_demotion(240, 0.0)
    vh.drain()
    assert vh.get_timer() == 3.0


def test_an_outranking_master_slower_than_our_timeout_gets_its_own_intervals() -> None:
    """Demoted, advbase 1 (master-down 3 s), against a less demoted master with advbase
    4: rule 3 would take it for dead at once and its next advert would take the role
    back. Instead the backup waits deadratio x its interval, and still takes over when
    it stops."""
    vh = make_vhost(advskew=0)
    vh.start(0.0)
    vh.set_demotion(1, 0.0)
    vh.drain()
    vh.receive(Peer().advert(advbase=4), 4, PEER_SRC, 1.0)
    assert vh.state is State.BACKUP
    assert vh.get_timer() == 1.0 + 3 * 4
    vh.handle_timer(13.0)
    assert vh.state is State.MASTER


def test_an_outranking_master_within_our_timeout_changes_nothing() -> None:
    vh = make_vhost(advskew=0)
    vh.start(0.0)
    vh.set_demotion(1, 0.0)
    vh.drain()
    vh.receive(Peer().advert(advbase=2), 4, PEER_SRC, 1.0)
    assert vh.get_timer() == 1.0 + 3.0  # our own master-down interval, as ever


def test_undemoted_rule_3_still_takes_over_a_master_that_will_time_out() -> None:
    vh = make_vhost(advskew=0)
    vh.start(0.0)
    vh.receive(Peer().advert(advbase=4), 4, PEER_SRC, 1.0)
    assert vh.state is State.MASTER


def test_link_down_as_master_releases_without_a_bow_out_and_link_up_restarts() -> None:
    vh = master()
    vh.link_changed(False, 4.0)
    actions = vh.drain()
    assert kinds(actions) == [RemoveAddresses, RunHook, StateChanged]
    assert not sent(actions)  # the link is down: nothing can be sent
    assert vh.state is State.INIT and vh.get_timer() is None
    vh.link_changed(True, 5.0)
    assert vh.state is State.BACKUP
    assert vh.get_timer() == 8.0


def test_admin_down_bows_out_and_stays_down_until_up() -> None:
    vh = master()
    vh.admin_down(4.0)
    actions = vh.drain()
    assert kinds(actions) == [SendAdvert, RemoveAddresses, RunHook, StateChanged]
    assert sent(actions)[0].is_bow_out
    vh.link_changed(False, 4.5)
    vh.link_changed(True, 5.0)  # link back, but still administratively down
    assert vh.state is State.INIT
    vh.admin_up(6.0)
    assert vh.state is State.BACKUP


def test_force_master_and_force_backup() -> None:
    vh = make_vhost()
    vh.start(0.0)
    vh.drain()
    vh.force_state(State.MASTER, 0.5)
    assert kinds(vh.drain()) == [StateChanged, AddAddresses, Announce, SendAdvert, RunHook]
    vh.force_state(State.BACKUP, 1.0)
    actions = vh.drain()
    assert sent(actions)[0].is_bow_out
    assert kinds(actions) == [SendAdvert, StateChanged, RemoveAddresses, RunHook]
    assert vh.state is State.BACKUP
