"""carpd.core.tracker: rise and fall per target, the quorum across them, the weight."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from carpd.core.tracker import Target, Tracker


def test_the_first_result_sets_a_target_at_once() -> None:
    t = Target(rise=3, fall=3)
    assert t.observe(False) and t.up is False
    u = Target(rise=3, fall=3)
    assert u.observe(True) and u.up is True


def test_one_failure_in_ten_does_not_move_a_target_with_fall_three() -> None:
    t = Target(rise=3, fall=3)
    t.observe(True)
    for i in range(30):
        assert not t.observe(i % 10 != 9)
    assert t.up is True


def test_fall_failures_in_a_row_take_it_down_and_rise_successes_bring_it_back() -> None:
    t = Target(rise=2, fall=3)
    t.observe(True)
    assert [t.observe(False) for _ in range(3)] == [False, False, True] and t.up is False
    assert not t.observe(True)
    assert not t.observe(False)  # the streak starts again
    assert [t.observe(True) for _ in range(2)] == [False, True] and t.up is True


def tracker(targets: int = 3, quorum: int = 2, weight: int = 50) -> Tracker:
    names = tuple(f"198.51.100.{i}" for i in range(1, targets + 1))
    return Tracker("uplink", names, rise=1, fall=1, quorum=quorum, weight=weight)


def test_no_verdict_until_every_target_has_a_first_result() -> None:
    t = tracker()
    assert not t.observe("198.51.100.1", False)
    assert not t.observe("198.51.100.2", False)
    assert t.up is None and t.demotion == 0
    assert t.observe("198.51.100.3", True) and t.up is False and t.demotion == 50


def test_a_quorum_of_two_of_three_survives_one_lost_target_not_two() -> None:
    t = tracker()
    for name in t.targets:
        t.observe(name, True)
    assert t.up is True
    assert not t.observe("198.51.100.1", False, "no echo reply")
    assert t.up is True and t.demotion == 0
    assert t.observe("198.51.100.2", False, "no echo reply")
    assert t.up is False and t.demotion == 50
    assert t.why() == "track uplink: 2 of 3 targets lost"
    assert t.observe("198.51.100.2", True)
    assert t.up is True and t.demotion == 0


def test_one_target_says_why_in_its_own_words() -> None:
    t = Tracker("web", ("http://192.0.2.80/",), rise=1, fall=1, quorum=1, weight=7)
    t.observe("http://192.0.2.80/", False, "HTTP 503")
    assert t.why() == "track web: down (HTTP 503)" and t.demotion == 7


@given(st.lists(st.booleans(), max_size=60), st.integers(1, 5), st.integers(1, 5))
def test_a_target_changes_only_after_rise_or_fall_alike_results(
    results: list[bool], rise: int, fall: int
) -> None:
    t = Target(rise=rise, fall=fall)
    history: list[bool] = []
    for ok in results:
        before = t.up
        changed = t.observe(ok)
        history.append(ok)
        if before is None:
            assert changed and t.up is ok
        elif changed:
            need = rise if ok else fall
            assert history[-need:] == [ok] * need and t.up is ok
        else:
            assert t.up is before


def test_a_targets_words_are_kept_short() -> None:
    t = Target(rise=1, fall=1)
    t.observe(False, "x" * 10_000)
    assert len(t.last_detail) == 200
    t.observe(False, "HTTP 500\ncarp: forged line")
    assert t.last_detail == "HTTP 500?carp: forged line"
