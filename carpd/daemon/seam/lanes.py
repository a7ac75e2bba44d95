"""A vhid's host lane: what a transition does to the host, in order, one step at a time.

The wire (adverts) never goes through here: it is sent the moment the core asks. The
host lane carries the address changes, the announcements and everything the effects
(hooks, and later conntrackd, followed interfaces, routes) add before or after them.

A *blocking* step is awaited before the next step starts. A *background* step (a hook,
an [[action]], conntrackd's resync) starts when the lane reaches it and runs after the
earlier background steps of its own *chain* (``Step.chain``: one per integration and
target), so each kind keeps the order of the transitions, but neither the lane nor the
other chains wait for it: a conntrackd resync that hangs never delays the up hook. A
step with a deadline that runs out is logged and counted, and the lane (or its chain)
goes on without it (availability first); the late step is not cancelled (a half-applied
netlink change or conntrackd commit is worse than a late one) and is still awaited by
``settle``. The order of the steps is written down in daemon/plan.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from carpd.core.actions import AddAddresses, Announce, RemoveAddresses, RunHook, StateChanged
from carpd.daemon.seam.view import VhidView

log = logging.getLogger("carpd")

HostAction = AddAddresses | RemoveAddresses | Announce | RunHook


@dataclass(frozen=True, slots=True)
class HostWork:
    """A host action with the transition it serves, from the same drain of the core
    (None: an announcement repeated while MASTER, no transition)."""

    action: HostAction
    cause: StateChanged | None = None


@dataclass(frozen=True, slots=True)
class Step:
    name: str  # for the log, status and a metric label
    run: Callable[[], Awaitable[None]]
    deadline: float | None = None  # seconds; on expiry: log, count, go on
    blocking: bool = True  # the lane waits for it before the next step
    # Background steps of one key: one still waiting when a newer one is queued is
    # skipped (last state wins: a pile-up of transitions runs only the latest hook).
    coalesce: str | None = None
    # The integration it belongs to; a background step runs behind the earlier ones of
    # its chain only (default: its coalesce key, else its name).
    chain: str | None = None

    @property
    def queue(self) -> str:
        return self.chain or self.coalesce or self.name


class Effect(Protocol):
    """Something that acts on the host around a host action (hooks, conntrackd, ...)."""

    def before(self, work: HostWork, vhid: VhidView) -> Sequence[Step]: ...

    def after(self, work: HostWork, vhid: VhidView) -> Sequence[Step]: ...

    async def close(self) -> None: ...  # stop what it runs by itself (at stop, on reload)


@runtime_checkable
class Exiting(Protocol):
    """An effect that does something when carpd exits, after the hand-over (the
    addresses gone, the last adverts sent) and never on a reload: conntrackd's, which
    stops the conntrackd carpd started only if told to."""

    async def at_exit(self) -> None: ...


@runtime_checkable
class Claimant(Protocol):
    """An effect that carries out one of the host's own steps itself, or forbids it (a
    pool's vhid: the pool puts up its buckets, and announces nothing): the host lane
    then plans none of its own for that action, and knows nothing of why."""

    def claims(self, action: HostAction, vhid: VhidView) -> bool: ...


@dataclass(slots=True)
class StepStats:
    """How a step of one name has done in this lane: read by status, never pushed."""

    runs: int = 0
    failed: int = 0
    late: int = 0  # its deadline ran out and the lane went on without it
    skipped: int = 0  # superseded by a newer step of its coalesce key before it started
    last_duration: float | None = None
    last_error: str | None = None


@dataclass(eq=False)
class Lane:
    name: str  # the vhid's name, for the log
    loop: asyncio.AbstractEventLoop
    stats: dict[str, StepStats] = field(default_factory=dict)
    _queue: deque[Step] = field(default_factory=deque)
    _runner: asyncio.Task[None] | None = None
    _background: dict[str, asyncio.Task[None]] = field(default_factory=dict)  # chain -> last
    _stragglers: set[asyncio.Task[None]] = field(default_factory=set)
    _newest: dict[str, int] = field(default_factory=dict)  # coalesce key -> its newest step

    def submit(self, steps: Sequence[Step]) -> None:
        self._queue.extend(steps)
        if self._runner is None and self._queue:
            self._runner = self.loop.create_task(self._run())

    async def settle(self) -> None:
        """Until every step submitted so far, late and background ones included, is done."""
        while True:
            pending = [t for t in (self._runner, *self._background.values()) if t is not None]
            pending += [t for t in self._stragglers if not t.done()]
            pending = [t for t in pending if not t.done()]
            if not pending:
                return
            await asyncio.gather(*pending, return_exceptions=True)

    @property
    def busy(self) -> bool:
        return self._runner is not None

    async def _run(self) -> None:
        me = asyncio.current_task()
        try:
            while self._queue and self._runner is me:
                step = self._queue.popleft()
                if not step.blocking:
                    self._start_background(step)
                    continue
                # The step runs inline; only a watchdog (not a task per step) watches its
                # deadline, and if it fires a new runner takes the lane over.
                watchdog = None
                if step.deadline is not None:
                    watchdog = self.loop.call_later(step.deadline, self._late, step, me)
                try:
                    await self._measured(step)
                finally:
                    if watchdog is not None:
                        watchdog.cancel()
        finally:
            if self._runner is me:
                self._runner = None

    def _late(self, step: Step, runner: asyncio.Task[None] | None) -> None:
        """``step`` ran past its deadline: the lane goes on in a new runner, and the old
        one ends once the step is done (awaited by settle, never cancelled)."""
        self._straggle(step, runner)
        self._runner = self.loop.create_task(self._run())

    def _straggle(self, step: Step, task: asyncio.Task[None] | None) -> None:
        self._stats(step).late += 1
        log.error(
            "%s: %s did not finish within %.1f s: going on without it",
            self.name,
            step.name,
            step.deadline,
        )
        if task is not None:
            self._stragglers.add(task)
            task.add_done_callback(self._stragglers.discard)

    def _start_background(self, step: Step) -> None:
        chain = step.queue
        previous = self._background.get(chain)
        number = 0
        if step.coalesce is not None:
            number = self._newest[step.coalesce] = self._newest.get(step.coalesce, 0) + 1

        async def chained() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            if step.coalesce is not None and self._newest[step.coalesce] != number:
                self._stats(step).skipped += 1
                log.info("%s: %s skipped: a later transition superseded it", self.name, step.name)
                return
            if step.deadline is None:
                await self._measured(step)
                return
            task = self.loop.create_task(self._measured(step))
            done, _ = await asyncio.wait({task}, timeout=step.deadline)
            if not done:  # late: the chain's next step may start
                self._straggle(step, task)

        task = self._background[chain] = self.loop.create_task(chained())
        task.add_done_callback(lambda t: self._forget(chain, t))

    def _forget(self, chain: str, task: asyncio.Task[None]) -> None:
        if self._background.get(chain) is task:  # the chain's last step is done
            del self._background[chain]

    async def _measured(self, step: Step) -> None:
        stats = self._stats(step)
        started = self.loop.time()
        try:
            await step.run()
        except Exception as e:  # a step's failure must not stop the lane or the daemon
            stats.failed += 1
            stats.last_error = str(e)
            log.error("%s: %s failed: %s", self.name, step.name, e)
        else:
            stats.last_error = None
        finally:
            stats.runs += 1
            stats.last_duration = self.loop.time() - started

    def _stats(self, step: Step) -> StepStats:
        stats = self.stats.get(step.name)
        if stats is None:
            stats = self.stats[step.name] = StepStats()
        return stats
