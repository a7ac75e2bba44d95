"""carpd.core.demotion's scoped sources (a [[track]] with vhids or groups): they demote
only the vhids they name and the members of their groups, show among those vhids'
reasons by name, and leave the node-wide sources alone."""

from __future__ import annotations

from carpd.core.demotion import MAINTENANCE, Demotion, group_source

# Three vhids as the runtime asks about them: (name, all its groups).
WEB = ("web", ("carp", "uplinks"))
MAIL = ("mail", ("carp",))
DNS = ("dns", ("carp", "dmz"))


def totals(ledger: Demotion) -> dict[str, int]:
    return {name: ledger.total(groups, name) for name, groups in (WEB, MAIL, DNS)}


def test_a_scoped_source_demotes_only_the_named_vhid() -> None:
    ledger = Demotion()
    assert ledger.set_scoped("track uplink", ["mail"], [], 50)
    assert totals(ledger) == {"web": 0, "mail": 50, "dns": 0}
    assert ledger.reasons(MAIL[1], "mail") == [("track uplink", 50)]
    assert ledger.reasons(WEB[1], "web") == []
    assert ledger.reasons(DNS[1], "dns") == []


def test_a_scoped_source_demotes_the_members_of_its_groups() -> None:
    ledger = Demotion()
    assert ledger.set_scoped("track dmz", [], ["dmz"], 30)
    assert totals(ledger) == {"web": 0, "mail": 0, "dns": 30}
    assert ledger.reasons(DNS[1], "dns") == [("track dmz", 30)]


def test_a_vhid_named_and_in_a_group_counts_the_source_once() -> None:
    ledger = Demotion()
    ledger.set_scoped("track uplink", ["web"], ["uplinks"], 40)
    assert ledger.reasons(WEB[1], "web") == [("track uplink", 40)]
    assert ledger.total(WEB[1], "web") == 40


def test_scoped_sources_add_to_node_wide_and_group_demotion_largest_first() -> None:
    ledger = Demotion()
    ledger.declare_groups(["uplinks", "dmz"])
    ledger.set_source(MAINTENANCE, 100)
    ledger.adjust_group("uplinks", 5)
    ledger.set_scoped("track a", ["web"], [], 20)
    ledger.set_scoped("track b", [], ["uplinks"], 200)
    assert ledger.reasons(WEB[1], "web") == [
        ("track b", 200),
        (MAINTENANCE, 100),
        ("track a", 20),
        (group_source("uplinks"), 5),
    ]
    assert totals(ledger) == {"web": 325, "mail": 100, "dns": 100}


def test_without_a_name_only_the_groups_match() -> None:
    ledger = Demotion()
    ledger.set_scoped("track a", ["web"], [], 20)
    ledger.set_scoped("track b", [], ["uplinks"], 7)
    assert ledger.total(WEB[1]) == 7
    assert ledger.reasons(WEB[1]) == [("track b", 7)]


def test_clearing_with_zero_removes_it_and_reports_the_change_once() -> None:
    ledger = Demotion()
    ledger.set_scoped("track uplink", ["mail"], ["dmz"], 50)
    assert ledger.set_scoped("track uplink", ["mail"], ["dmz"], 0)
    assert "track uplink" not in ledger.scoped
    assert totals(ledger) == {"web": 0, "mail": 0, "dns": 0}
    assert not ledger.set_scoped("track uplink", ["mail"], ["dmz"], 0)  # already clear
    assert not ledger.set_scoped("never set", [], ["dmz"], 0)


def test_the_same_setting_again_is_no_change_and_a_new_amount_is() -> None:
    ledger = Demotion()
    assert ledger.set_scoped("track uplink", ["mail"], [], 50)
    assert not ledger.set_scoped("track uplink", ("mail",), (), 50)  # any iterable
    assert ledger.set_scoped("track uplink", ["mail"], [], 60)
    assert ledger.total(MAIL[1], "mail") == 60


def test_a_change_of_scope_alone_is_a_change() -> None:
    ledger = Demotion()
    ledger.set_scoped("track uplink", ["mail"], [], 50)
    assert ledger.set_scoped("track uplink", ["web"], [], 50)
    assert totals(ledger) == {"web": 50, "mail": 0, "dns": 0}
    assert ledger.set_scoped("track uplink", ["web"], ["dmz"], 50)
    assert totals(ledger) == {"web": 50, "mail": 0, "dns": 50}


def test_node_wide_sources_are_untouched_by_scoped_ones() -> None:
    ledger = Demotion()
    ledger.set_source(MAINTENANCE, 100)
    ledger.set_source("track other", 9)
    ledger.set_scoped("track uplink", ["web"], [], 50)
    ledger.set_scoped("track uplink", ["web"], [], 0)
    assert ledger.sources == {MAINTENANCE: 100, "track other": 9}
    assert totals(ledger) == {"web": 109, "mail": 109, "dns": 109}
    # ... and clearing a node-wide source leaves the scoped ones.
    ledger.set_scoped("track uplink", ["web"], [], 50)
    assert ledger.set_source(MAINTENANCE, 0)
    assert ledger.scoped == {"track uplink": (frozenset({"web"}), frozenset(), 50)}
    assert totals(ledger) == {"web": 59, "mail": 9, "dns": 9}
