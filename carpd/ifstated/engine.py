"""ifstated(8)'s state machine, sans-IO, after OpenBSD's usr.sbin/ifstated/ifstated.c.

Evaluation is level-triggered but only on events (do_action, eval_state): when a test
named in a scope changes value, that scope's whole body runs and every `if` whose
expression is true at that moment fires. The global scope goes first, then the current
state (scan_ifstate). Tests of other states do not wake anything.

`set-state` only records the next state; the rest of the body still runs and the last
`set-state` wins. Then the state changes: its external tests run once right away, then
its `init`, then its body (state_change, load_config), and so on while bodies keep
changing state. ifstated runs the entry tests synchronously; here the engine returns
`StartTests` and waits for every one of them to report before it runs `init`.
ifstated loops forever when set-state goes round in a circle; the engine stops before
re-entering a state already entered for the same event, unless that state has tests
to wait for (their fresh results may break the circle; ifstated, too, then goes round
at the pace of the tests). With no new value, it could only go round again. It stays
in the last state entered and says so with `LoopStopped`.

Link states: `up`, `down` or `unknown`, each true only for itself. The daemon reports
an ordinary interface up or down (Linux's operstate UNKNOWN, as on loopback, is already
usable, so up: OpenBSD's LINK_STATE_IS_UP counts LINK_STATE_UNKNOWN as up too), and a
vhid MASTER up, BACKUP down, INIT unknown (OpenBSD's carp reports INIT as
LINK_STATE_INVALID, which is neither up nor down). An interface never reported makes all
three of its tests false. An external test is false until its first result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias, get_args

from carpd.ifstated.parse import (
    Action,
    Expr,
    ExternalTest,
    If,
    LinkState,
    LinkTest,
    Not,
    Or,
    Program,
    Run,
    SetState,
    tests_of,
)


@dataclass(frozen=True)
class StateEntered:
    name: str
    previous: str | None


@dataclass(frozen=True)
class StartTests:
    """Run each test now and report it with `set_external`, then again every `every`
    seconds; a test already scheduled starts over (external_exec kills its last run)."""

    tests: tuple[ExternalTest, ...]


@dataclass(frozen=True)
class StopTests:
    """Stop these tests' schedules and kill their runs: no result of theirs counts now."""

    tests: tuple[ExternalTest, ...]


@dataclass(frozen=True)
class LoopStopped:
    """set-state went round: `states` is the chain, ending with the one it would re-enter."""

    states: tuple[str, ...]


Output: TypeAlias = Run | StateEntered | StartTests | StopTests | LoopStopped
_Phase = Literal["new", "global", "entering", "running"]


class Engine:
    """Feed it link states (before `start` too) and test results; run what it returns.

    `inhibit` is ifstated's -i, "ignore initial interface states": links reported before
    `start` make no test true until they change. (ifstated.c's scan_ifstate_single
    never lets them change at all under -i, which looks like a bug.)
    """

    def __init__(self, program: Program, *, inhibit: bool = False) -> None:
        self.program = program
        self._inhibit = inhibit
        self._states = {state.name: state for state in program.states}
        scopes: dict[str | None, tuple[Action, ...]] = {None: program.body}
        scopes |= {state.name: state.init + state.body for state in program.states}
        self._links_in = {
            scope: frozenset(t.interface for t in tests_of(acts) if isinstance(t, LinkTest))
            for scope, acts in scopes.items()
        }
        self._tests_in = {
            scope: tuple(dict.fromkeys(t for t in tests_of(acts) if isinstance(t, ExternalTest)))
            for scope, acts in scopes.items()
        }
        self._links: dict[str, LinkState] = {}
        self._unseen: set[str] = set()  # under inhibit: reported before start, unchanged
        self._results: dict[ExternalTest, bool] = {}
        self._waiting: set[ExternalTest] = set()  # started, no result yet
        self._phase: _Phase = "new"
        self._current: str | None = None

    @property
    def current_state(self) -> str | None:
        """None before the first state is entered, or for ever if the file has none."""
        return self._current

    def test_results(self) -> dict[ExternalTest, bool]:
        """The last result of each external test that has one (for status)."""
        return dict(self._results)

    def link_names(self) -> frozenset[str]:
        return frozenset().union(*self._links_in.values())

    def external_tests(self) -> tuple[ExternalTest, ...]:
        return tuple(dict.fromkeys(t for tests in self._tests_in.values() for t in tests))

    def active_external_tests(self) -> tuple[ExternalTest, ...]:
        """The global scope's tests and the current state's: the ones that should run."""
        if self._phase == "new":
            return ()
        mine = self._tests_in[self._current] if self._current is not None else ()
        return tuple(dict.fromkeys(self._tests_in[None] + mine))

    def start(self) -> list[Output]:
        """Global tests first, then the global body, then enter the first state."""
        if self._phase != "new":
            raise RuntimeError("the engine has already started")
        self._phase = "global"
        out: list[Output] = []
        if tests := self._tests_in[None]:
            self._waiting = set(tests)
            out.append(StartTests(tests))
        else:
            self._global_ready(out)
        return out

    def set_link(self, name: str, state: LinkState) -> list[Output]:
        if state not in get_args(LinkState):
            raise ValueError(f"link state {state!r} is not up, down or unknown")
        if self._links.get(name) == state:
            return []
        self._links[name] = state
        if self._phase == "new":
            if self._inhibit:
                self._unseen.add(name)
            return []
        self._unseen.discard(name)
        out: list[Output] = []
        if self._phase != "global" and name in self._links_in[None]:
            self._run(self.program.body, out)
        current = self._current
        if self._phase == "running" and current is not None and name in self._links_in[current]:
            self._evaluate(out)
        return out

    def set_external(self, test: ExternalTest, ok: bool) -> list[Output]:
        """A run of `test` ended; `ok` is exit status 0 (report a killed run as False)."""
        if test not in self.active_external_tests():
            return []  # stopped, or not ours: a late result
        changed = self._results.get(test) != ok
        self._results[test] = ok
        self._waiting.discard(test)
        out: list[Output] = []
        if self._phase == "global":
            if not self._waiting:
                self._global_ready(out)
            return out
        if changed and test in self._tests_in[None]:
            self._run(self.program.body, out)
        if self._phase == "entering":
            if not self._waiting:
                self._phase = "running"
                self._follow(self._init_and_body(out), out, [str(self._current)])
        elif changed and self._current is not None and test in self._tests_in[self._current]:
            self._evaluate(out)
        return out

    def _global_ready(self, out: list[Output]) -> None:
        self._phase = "running"
        self._run(self.program.body, out)
        if self.program.init_state is not None:
            self._follow(self.program.init_state, out, [])

    def _evaluate(self, out: list[Output]) -> None:
        current = str(self._current)
        self._follow(self._run(self._states[current].body, out), out, [current])

    def _follow(self, target: str | None, out: list[Output], chain: list[str]) -> None:
        """Change state while bodies ask to, until one waits for tests or goes round."""
        while target is not None and target != self._current:
            if target in chain and not self._tests_in[target]:
                out.append(LoopStopped((*chain, target)))
                return
            chain.append(target)
            self._enter(target, out)
            if self._waiting:
                self._phase = "entering"
                return
            target = self._init_and_body(out)

    def _enter(self, name: str, out: list[Output]) -> None:
        previous = self._current
        if previous is not None:
            keep = self._tests_in[None] + self._tests_in[name]
            if stop := tuple(t for t in self._tests_in[previous] if t not in keep):
                out.append(StopTests(stop))
        out.append(StateEntered(name, previous))
        self._current = name
        if tests := self._tests_in[name]:
            self._waiting = set(tests)
            out.append(StartTests(tests))

    def _init_and_body(self, out: list[Output]) -> str | None:
        state = self._states[str(self._current)]
        after_init = self._run(state.init, out)
        return self._run(state.body, out) or after_init

    def _run(self, actions: tuple[Action, ...], out: list[Output]) -> str | None:
        """do_action: commands in order; returns the last set-state reached, if any."""
        target = None
        for action in actions:
            if isinstance(action, Run):
                out.append(action)
            elif isinstance(action, SetState):
                target = action.state
            elif isinstance(action, If) and self._true(action.test):
                target = self._run(action.body, out) or target
        return target

    def _true(self, expr: Expr) -> bool:
        if isinstance(expr, LinkTest):
            link = None if expr.interface in self._unseen else self._links.get(expr.interface)
            return link == expr.state
        if isinstance(expr, ExternalTest):
            return self._results.get(expr, False)
        if isinstance(expr, Not):
            return not self._true(expr.operand)
        if isinstance(expr, Or):
            return self._true(expr.left) or self._true(expr.right)
        return self._true(expr.left) and self._true(expr.right)
