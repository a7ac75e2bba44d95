"""ifstated inside carpd: an OpenBSD ifstated.conf run as it is, without its blocking.

ifstated runs ``system()`` in its only loop, so one hanging command stops it. Here the
engine (carpd.ifstated, sans-IO) is fed from the runtime's events, and what it asks for
runs beside the protocol: ``run`` commands one at a time in order, in a queue of their
own (each killed at ``[ifstated] timeout``), external tests on their own schedules. A
vhid is an interface by its name: ``lan.link.up`` while MASTER, ``.down`` while BACKUP,
``.unknown`` in INIT; other interfaces through the daemon's link service. Each command's
result is published like an action's (target "ifstated"): `carpctl events`, status.

A Subscriber of the runtime (RoleChanged, Lifecycle) beside it, never inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from carpd.config.model import IfstatedConfig
from carpd.core.model import State
from carpd.daemon.seam.events import ActionRan, Event, Lifecycle, RoleChanged
from carpd.daemon.seam.view import NodeView
from carpd.ifstated import (
    Engine,
    ExternalTest,
    LoopStopped,
    Output,
    Program,
    Run,
    StartTests,
    StateEntered,
    StopTests,
    parse,
)
from carpd.ifstated.parse import LinkState
from carpd.linux import process
from carpd.linux.linkwatch import LinkEvent, LinkService

log = logging.getLogger("carpd")

LINK: dict[State, LinkState] = {State.MASTER: "up", State.BACKUP: "down", State.INIT: "unknown"}
SHELL = "/bin/sh"


def read_program(cfg: IfstatedConfig) -> tuple[str, Program]:
    """The file's text and what it says (OSError, IfstatedError)."""
    assert cfg.file is not None
    text = cfg.file.read_text()
    return text, parse(text, str(cfg.file), cfg.defines)


@dataclass(frozen=True, slots=True)
class IfstatedTest:
    test: str  # its command
    every: int
    ok: bool
    active: bool  # the current state runs it


@dataclass(frozen=True, slots=True)
class IfstatedReport:
    """For status: the file, the state, each test's last result."""

    file: str
    state: str | None  # None: before it starts
    tests: tuple[IfstatedTest, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "state": self.state,
            "tests": [
                {"test": t.test, "every": t.every, "ok": t.ok, "active": t.active}
                for t in self.tests
            ],
        }

    def lines(self) -> list[str]:
        tests = ", ".join(
            f'"{t.test}" {"ok" if t.ok else "FAILING"}' for t in self.tests if t.active
        )
        return [f"ifstated: state {self.state}{'; ' + tests if tests else ''}"]


class Ifstated:
    name = "ifstated"  # its key in status

    def __init__(
        self,
        cfg: IfstatedConfig,
        publish: Callable[[Event], None],
        text: str,
        program: Program,
        links: LinkService | None = None,
    ) -> None:
        self.cfg = cfg
        self.publish = publish
        self.links = links  # the daemon's link watch (None, as in a test: none watched)
        self.text = text
        self.engine = Engine(program)
        self._queue: asyncio.Queue[Run] = asyncio.Queue()
        self._tests: dict[ExternalTest, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._vhids: set[str] = set()
        self._unwatch: Callable[[], None] = lambda: None
        self._started = False

    @classmethod
    async def open(
        cls,
        cfg: IfstatedConfig,
        publish: Callable[[Event], None],
        links: LinkService | None = None,
    ) -> Ifstated:
        """A runner for ``cfg``'s file, read and parsed in a thread: a long file, or macros
        near their bounds (tenths of a second), never hold up the adverts."""
        text, program = await asyncio.to_thread(read_program, cfg)
        return cls(cfg, publish, text, program, links)

    def report(self) -> IfstatedReport:
        active = set(self.engine.active_external_tests())
        return IfstatedReport(
            file=str(self.cfg.file),
            state=self.engine.current_state,
            tests=tuple(
                IfstatedTest(t.command, t.every, ok, t in active)
                for t, ok in self.engine.test_results().items()
            ),
        )

    # -- events from the runtime ------------------------------------------------------

    def unchanged(self) -> bool:
        """Is the file still what this runner runs? (SIGHUP reads it again, as ifstated)"""
        assert self.cfg.file is not None
        try:
            return self.cfg.file.read_text() == self.text
        except OSError:
            return False

    def begin(self, view: NodeView) -> None:
        """Start (when the daemon is ready, or on a reload that brings a new file)."""
        if not self._started:
            self._started = True
            self._spawn(self._start(view))

    def notify(self, event: Event, view: NodeView) -> None:
        if isinstance(event, Lifecycle) and event.phase == "ready":
            self.begin(view)
        elif (
            isinstance(event, RoleChanged)
            and self._started
            and event.name in self.engine.link_names()
        ):
            self._apply(self.engine.set_link(event.name, LINK[event.new]))

    async def _start(self, view: NodeView) -> None:
        """The vhids' states and the interfaces' link states first, then the engine."""
        names = self.engine.link_names()
        self._vhids = {v.name for v in view.vhids}
        for v in view.vhids:
            if v.name in names:
                self.engine.set_link(v.name, LINK[v.state])
        others = names - self._vhids
        if others and self.links is not None:
            await self.links.start()
            self._unwatch = self.links.watch(others, self._link_changed)
            for name in others:
                up = self.links.is_up(name)
                if up is not None:
                    self.engine.set_link(name, "up" if up else "down")
        self._spawn(self._runner())
        log.info("ifstated: %s loaded", self.cfg.file)
        self._apply(self.engine.start())

    def _link_changed(self, event: LinkEvent) -> None:
        if event.name not in self._vhids:
            self._apply(self.engine.set_link(event.name, "up" if event.up else "down"))

    # -- what the engine asks for -----------------------------------------------------

    def _apply(self, outputs: list[Output]) -> None:
        for out in outputs:
            if isinstance(out, Run):
                self._queue.put_nowait(out)
            elif isinstance(out, StateEntered):
                log.info("ifstated: changing state to %s", out.name)
            elif isinstance(out, StartTests):
                for test in out.tests:
                    self._stop_test(test)
                    self._tests[test] = self._spawn(self._schedule(test))
            elif isinstance(out, StopTests):
                for test in out.tests:
                    self._stop_test(test)
            elif isinstance(out, LoopStopped):
                log.error(
                    "ifstated: set-state goes round (%s): staying in %s",
                    " -> ".join(out.states),
                    self.engine.current_state,
                )

    async def _runner(self) -> None:
        """``run`` commands one at a time, in the order the engine asked for them."""
        while True:
            run = await self._queue.get()
            at = time.time()
            outcome = await process.run(
                [SHELL, "-c", run.command],
                timeout=self.cfg.timeout,
                capture="stderr",
                leftovers="leave",
                label="ifstated: run",
            )
            state = self.engine.current_state or ""
            self.publish(ActionRan("ifstated", run.command, state, state, at, outcome))

    async def _schedule(self, test: ExternalTest) -> None:
        """Now, then every ``every`` seconds (ifstated's external test timer); a run is
        killed at the next one or at the timeout, whichever comes first, and counts as
        failed."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            outcome = await process.run(
                [SHELL, "-c", test.command],
                timeout=min(test.every, self.cfg.timeout),
                capture="stderr",
                leftovers="leave",
                label="ifstated: test",
            )
            self._apply(self.engine.set_external(test, outcome.ok))
            await asyncio.sleep(max(0.0, started + test.every - loop.time()))

    def _stop_test(self, test: ExternalTest) -> None:
        task = self._tests.pop(test, None)
        if task is not None:
            task.cancel()  # process.run kills a run in progress

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("ifstated: %s", task.exception())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._unwatch()
