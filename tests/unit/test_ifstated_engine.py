"""The ifstated engine: OpenBSD's example driven through its failover, ifstated.c's rules."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_ifstated_parse import EXAMPLE, PING

from carpd.ifstated.engine import (
    Engine,
    LoopStopped,
    Output,
    StartTests,
    StateEntered,
    StopTests,
)
from carpd.ifstated.parse import ExternalTest, LinkState, Run, parse

DEMOTE, UNDEMOTE = Run("ifconfig -g carp carpdemote"), Run("ifconfig -g carp -carpdemote")
MASTER = Run("logger -st ifstated 'carp0 is master'")
BACKUP = Run("logger -st ifstated 'carp0 is backup'")
EM2_DOWN = Run("logger -st ifstated 'interface to syslog server em2 is down'")
NO_SYSLOG = Run("logger -st ifstated 'could not reach syslog server'")
SYSLOG_OK = Run("logger -st ifstated 'syslog server is ok again'")


def engine(text: str, links: dict[str, LinkState] | None = None, **kw: Any) -> Engine:
    e = Engine(parse(text), **kw)
    for name, state in (links or {}).items():
        assert e.set_link(name, state) == []  # before start: recorded, nothing runs
    return e


def runs(out: list[Output]) -> list[str]:
    return [o.command for o in out if isinstance(o, Run)]


def test_openbsd_example_fails_over_and_back() -> None:
    e = engine(EXAMPLE, {"em2": "up", "carp0": "down"})
    assert e.link_names() == {"em2", "carp0"}
    assert e.external_tests() == (PING,)
    assert e.active_external_tests() == ()
    # The global body runs once at startup; then the first state's test runs at once.
    assert e.start() == [BACKUP, StateEntered("neutral", None), StartTests((PING,))]
    assert e.active_external_tests() == (PING,)
    assert e.set_external(PING, True) == []  # entry: neutral's init (none) and body
    assert e.set_external(PING, True) == []  # no change, no event
    # The ping fails: neutral demotes, demoted's init waits for its fresh ping.
    assert e.set_external(PING, False) == [
        NO_SYSLOG,
        StateEntered("demoted", "neutral"),
        StartTests((PING,)),
    ]
    assert e.current_state == "demoted"
    assert e.set_external(PING, False) == [DEMOTE]
    assert e.set_external(PING, False) == []
    # Both ok: back to neutral, whose fresh ping decides before its body runs.
    assert e.set_external(PING, True) == [
        SYSLOG_OK,
        UNDEMOTE,
        StateEntered("neutral", "demoted"),
        StartTests((PING,)),
    ]
    assert e.set_external(PING, True) == []
    assert e.current_state == "neutral"
    # The global scope sees carp0 whatever the state; the states do not.
    assert e.set_link("carp0", "up") == [MASTER]
    assert e.set_link("carp0", "up") == []
    assert e.set_link("carp0", "down") == [BACKUP]
    # em2 goes down: demoted, and stays while em2 is down even with the ping fine.
    assert e.set_link("em2", "down") == [
        EM2_DOWN,
        StateEntered("demoted", "neutral"),
        StartTests((PING,)),
    ]
    assert e.set_external(PING, True) == [DEMOTE]
    assert e.set_link("em2", "up") == [
        SYSLOG_OK,
        UNDEMOTE,
        StateEntered("neutral", "demoted"),
        StartTests((PING,)),
    ]


def test_init_state_runs_its_init_at_startup_after_its_tests() -> None:
    e = engine("init-state demoted\n" + EXAMPLE, {"em2": "down", "carp0": "up"})
    assert e.start() == [MASTER, StateEntered("demoted", None), StartTests((PING,))]
    assert e.set_link("em2", "down") == []
    assert e.set_external(PING, True) == [DEMOTE]


def test_unknown_is_not_up_and_unreported_links_make_every_test_false() -> None:
    text = "".join(
        f'if {name}.link.{state}\n\trun "{name} {state}"\n'
        for name in ("carp0", "gone")
        for state in ("up", "down", "unknown")
    )
    e = engine(text, {"carp0": "unknown"})
    # A vhid in INIT: OpenBSD's carp reports LINK_STATE_INVALID, neither up nor down.
    assert runs(e.start()) == ["carp0 unknown"]
    assert runs(e.set_link("carp0", "down")) == ["carp0 down"]
    assert runs(e.set_link("gone", "up")) == ["carp0 down", "gone up"]


def test_a_body_runs_whole_but_only_when_a_test_of_its_own_changes() -> None:
    text = """\
state a {
\trun "every event"
\tif em0.link.up
\t\trun "em0"
\tif em1.link.up
\t\trun "em1"
}
if em9.link.up
\trun "global"
"""
    e = engine(text, {"em0": "up", "em1": "up"})
    assert e.start() == [StateEntered("a", None), *map(Run, ["every event", "em0", "em1"])]
    # Level, not edge: em1 changing runs em0's block again too.
    assert runs(e.set_link("em1", "down")) == ["every event", "em0"]
    assert e.set_link("em9", "down") == []  # global scope: nothing true
    assert e.set_link("em5", "up") == []  # nobody's test
    assert runs(e.set_link("em9", "up")) == ["global"]


def test_set_state_finishes_the_body_last_one_wins_then_init_and_body() -> None:
    text = """\
state a {
\tif em0.link.up {
\t\tset-state b
\t\trun "still a"
\t\tset-state c
\t}
\tif em0.link.up
\t\trun "rest of a"
}
state b {
\trun "b"
}
state c {
\tinit {
\t\trun "init c"
\t\tset-state d
\t}
\trun "body c"
}
state d {
\tinit
\t\trun "init d"
\tif em0.link.up
\t\tset-state d
}
"""
    e = engine(text)
    assert runs(e.start()) == []
    out = e.set_link("em0", "up")
    assert out == [
        Run("still a"),
        Run("rest of a"),
        StateEntered("c", "a"),
        Run("init c"),
        Run("body c"),  # set-state in init: the body still runs first
        StateEntered("d", "c"),
        Run("init d"),  # set-state to the current state: nothing
    ]
    assert e.current_state == "d"


LOOP = """\
state a {
\tif em0.link.up
\t\tset-state b
}
state b {
\trun "b"
\tif em0.link.up
\t\tset-state c
}
state c {
\tif em0.link.up
\t\tset-state a
\tif em0.link.down
\t\tset-state b
}
"""


def test_set_state_loop_stops_instead_of_spinning() -> None:
    e = engine(LOOP, {"em0": "up"})
    out = e.start()
    assert out == [
        StateEntered("a", None),
        StateEntered("b", "a"),
        Run("b"),
        StateEntered("c", "b"),
        LoopStopped(("a", "b", "c", "a")),
    ]
    assert e.current_state == "c"
    # A later event starts a fresh chain: c -> b is fine, b -> c would go round.
    assert e.set_link("em0", "down") == [StateEntered("b", "c"), Run("b")]
    assert e.set_link("em0", "up") == [
        Run("b"),
        StateEntered("c", "b"),
        StateEntered("a", "c"),
        LoopStopped(("b", "c", "a", "b")),
    ]


def test_external_tests_are_deduplicated_and_follow_the_current_state() -> None:
    text = """\
g = '"global" every 5'
state a {
\tif "t1" every 10 && "t1" every 10 || "t1" every 20
\t\tset-state b
\tif $g
\t\trun "g in a"
}
state b {
\tif ! "t1" every 10 || $g
\t\tset-state a
}
if $g
\trun "g"
"""
    t10, t20, g = ExternalTest("t1", 10), ExternalTest("t1", 20), ExternalTest("global", 5)
    e = engine(text)
    assert e.external_tests() == (g, t10, t20)
    assert e.start() == [StartTests((g,))]
    assert e.set_external(t10, True) == []  # not running yet: ignored
    assert e.set_external(g, False) == [StateEntered("a", None), StartTests((t10, t20, g))]
    assert e.active_external_tests() == (g, t10, t20)
    assert e.set_external(t10, True) == []
    assert e.set_external(t20, False) == []
    assert e.set_external(g, False) == [
        StopTests((t20,)),  # b does not need it; t10 and g go on (t10 restarts)
        StateEntered("b", "a"),
        StartTests((t10, g)),
    ]
    assert e.set_external(t10, True) == []
    # g is global and b's: its change runs the global body, then b's entry goes on.
    assert e.set_external(g, True) == [
        Run("g"),
        StateEntered("a", "b"),
        StartTests((t10, t20, g)),
    ]


def test_leaving_a_state_stops_its_tests_and_ignores_their_late_results() -> None:
    text = """\
state a {
\tif "ta" every 10
\t\tset-state b
}
state b {
\tif em0.link.down
\t\tset-state a
}
"""
    ta = ExternalTest("ta", 10)
    e = engine(text, {"em0": "up"})
    assert e.start() == [StateEntered("a", None), StartTests((ta,))]
    assert e.set_external(ta, False) == []
    assert e.set_external(ta, True) == [StopTests((ta,)), StateEntered("b", "a")]
    assert e.active_external_tests() == ()
    assert e.set_external(ta, False) == []  # killed run: no longer counts
    assert e.set_link("em0", "down") == [StateEntered("a", "b"), StartTests((ta,))]
    assert e.set_link("em0", "up") == []
    assert e.set_external(ta, True) == [StopTests((ta,)), StateEntered("b", "a")]


def test_a_circle_through_a_state_with_tests_goes_round_at_their_pace() -> None:
    text = 'state a {\n\tif "ta" every 10\n\t\tset-state b\n}\nstate b {\n\tset-state a\n}\n'
    ta = ExternalTest("ta", 10)
    e = engine(text)
    assert e.start() == [StateEntered("a", None), StartTests((ta,))]
    flap = [StopTests((ta,)), StateEntered("b", "a"), StateEntered("a", "b"), StartTests((ta,))]
    assert e.set_external(ta, True) == flap  # no LoopStopped: a waits for a fresh ta
    assert e.set_external(ta, True) == flap
    assert e.set_external(ta, False) == []
    assert e.current_state == "a"


def test_changes_while_waiting_for_entry_tests_are_folded_into_the_entry() -> None:
    text = 'state a {\n\tif "t" every 3 && em0.link.up\n\t\trun "both"\n}\n'
    t = ExternalTest("t", 3)
    e = engine(text)
    assert e.start() == [StateEntered("a", None), StartTests((t,))]
    assert e.set_link("em0", "up") == []  # init and body wait for t
    assert e.set_external(t, True) == [Run("both")]


def test_inhibit_ignores_initial_link_states_until_they_change() -> None:
    text = 'if em0.link.up\n\trun "up"\nif em0.link.down\n\trun "down"\n'
    assert runs(engine(text, {"em0": "up"}).start()) == ["up"]
    e = engine(text, {"em0": "up"}, inhibit=True)
    assert e.start() == []
    assert e.set_link("em0", "up") == []
    assert runs(e.set_link("em0", "down")) == ["down"]
    assert runs(e.set_link("em0", "up")) == ["up"]


def test_a_file_without_states_runs_its_global_scope() -> None:
    e = engine('run "always"\nif em0.link.up\n\trun "up"\n')
    assert runs(e.start()) == ["always"]
    assert e.current_state is None
    assert runs(e.set_link("em0", "up")) == ["always", "up"]


def test_misuse_is_refused() -> None:
    e = engine(EXAMPLE)
    with pytest.raises(ValueError, match="sideways"):
        e.set_link("em2", "sideways")  # type: ignore[arg-type]
    e.start()
    with pytest.raises(RuntimeError):
        e.start()


# -- properties -------------------------------------------------------------------------

NAMES = ["e0", "e1", "e2"]
COMMANDS = ["c0", "c1"]
FLAT = st.lists(
    st.tuples(
        st.booleans(),  # a `!` before the term
        st.one_of(
            st.tuples(st.sampled_from(NAMES), st.sampled_from(["up", "down", "unknown"])),
            st.sampled_from(COMMANDS),
        ),
        st.sampled_from(["&&", "||"]),
    ),
    min_size=1,
    max_size=7,
)


@given(
    FLAT,
    st.fixed_dictionaries({n: st.sampled_from(["up", "down", "unknown", None]) for n in NAMES}),
    st.fixed_dictionaries({c: st.booleans() for c in COMMANDS}),
    st.data(),
)
def test_expressions_match_a_left_to_right_reference(
    terms: list[Any], links: dict[str, Any], results: dict[str, bool], data: st.DataObject
) -> None:
    """Random `!`, `&&`, `||` and brackets around prefixes, against ifstated's own rule:
    one precedence, left to right, `!` binding to the term."""
    text, value = "", False
    for i, (negate, term, _) in enumerate(terms):
        if isinstance(term, tuple):
            source = f"{term[0]}.link.{term[1]}"
            link = links[term[0]]
            truth = link == term[1]
        else:
            source, truth = f'"{term}" every 1', results[term]
        source, truth = ("! " + source, not truth) if negate else (source, truth)
        if i == 0:
            text, value = source, truth
        else:
            prev_op = terms[i - 1][2]
            text = f"{text} {prev_op} {source}"
            value = (value and truth) if prev_op == "&&" else (value or truth)
        if data.draw(st.booleans()):  # brackets around what is there already change nothing
            text = f"({text})"
    e = engine(f'if {text}\n\trun "hit"\n', {n: s for n, s in links.items() if s})
    out = e.start()
    if tests := e.external_tests():  # the global body waits for its tests' first results
        assert out == [StartTests(tests)]
        for test in tests:
            out = e.set_external(test, results[test.command])
    assert runs(out) == (["hit"] if value else [])


EVENTS = st.lists(
    st.one_of(
        st.tuples(
            st.just("link"),
            st.sampled_from(["em2", "carp0"]),
            st.sampled_from(["up", "down", "unknown"]),
        ),
        st.tuples(st.just("ping"), st.booleans()),
    ),
    max_size=30,
)


@given(EVENTS)
def test_outputs_track_the_active_tests_and_states(events: list[Any]) -> None:
    """A daemon following StartTests/StopTests/StateEntered agrees with the engine."""
    e = engine(EXAMPLE)
    running: set[ExternalTest] = set()
    state = None

    def follow(out: list[Output]) -> None:
        nonlocal state
        for o in out:
            if isinstance(o, StartTests):
                running.update(o.tests)
            elif isinstance(o, StopTests):
                running.difference_update(o.tests)
            elif isinstance(o, StateEntered):
                assert o.previous == state
                state = o.name
            assert not isinstance(o, LoopStopped)

    follow(e.start())
    for event in events:
        follow(e.set_link(*event[1:]) if event[0] == "link" else e.set_external(PING, event[1]))
        assert running == set(e.active_external_tests()) == {PING}
        assert state == e.current_state in ("neutral", "demoted")
