"""conntrackd around the addresses: the connection table follows the role (issue 11).

- Becoming MASTER: commit the external cache (the peer's connections) into the kernel
  *before* the addresses come up (keepalived #2254: packets that arrive first meet an
  empty table and get RST or dropped), with a deadline after which the addresses go up
  anyway. Then, in the background: flush the external cache, resync the internal cache
  from the kernel, and bulk-send it to the peer (``-f``, ``-R``, ``-B``).
- Becoming BACKUP (and at start-up): in the background, make sure conntrackd runs, then
  schedule the kernel table's flush (``-t``) and ask the peer for a resync (``-n``).

Several vhids that change state together (a LAN and a WAN vhid) share one run of each:
a second request joins the run in flight.

pfsync's demotion: while conntrackd has not yet received the peer's table (at start-up,
and after carpd had to start conntrackd), the node is demoted by ``demotion_factor``, so
a node that comes back with preempt on never takes the role with an empty table. The
demotion is lifted when the peer's table (the external cache) has stopped growing for
BULK_QUIET seconds ("state sync bulk done"), or after ``bulk_timeout`` ("bulk fail").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from carpd.config.model import ConntrackdConfig
from carpd.core.actions import AddAddresses, RemoveAddresses
from carpd.core.model import State
from carpd.daemon.lanes import HostAction, Step
from carpd.daemon.view import VhidView
from carpd.linux.conntrackd import Conntrackd, ConntrackdStats, parse_stats

log = logging.getLogger("carpd")

BULK_POLL = 1.0  # seconds between two looks at the external cache during a bulk resync
BULK_QUIET = 3.0  # the external cache unchanged this long: the bulk resync is done
STATS_INTERVAL = 10.0  # seconds between two looks at conntrackd's statistics, for status

COMMIT = "conntrackd commit"
AS_MASTER = "conntrackd resync as master"
AS_BACKUP = "conntrackd resync as backup"


class Conntrack:
    def __init__(self, cfg: ConntrackdConfig, demote: Callable[[int, str], None]) -> None:
        self.cfg = cfg
        self.client = Conntrackd(cfg.binary, cfg.config)
        self.demote = demote  # (amount, why): the "state sync" demotion source
        self._running: dict[str, asyncio.Task[None]] = {}
        self._synced = False  # a bulk resync has ended since we last (re)started conntrackd
        self._bulk: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None
        self.stats: ConntrackdStats | None = None  # the last `conntrackd -s` that answered
        self.answering: bool | None = None  # None: not asked yet

    def report(self) -> dict[str, Any]:
        """For status: is conntrackd there, is the bulk resync done, its counters."""
        return {
            "running": self.answering,
            "bulk": "done" if self._synced else "running" if self._bulk else "not started",
            "stats": self.stats.to_json() if self.stats is not None else None,
        }

    async def close(self) -> None:
        for task in [self._bulk, self._poller, *self._running.values()]:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def before(self, action: HostAction, vhid: VhidView) -> Sequence[Step]:
        if self._poller is None:  # the first transition: the daemon runs
            self._poller = asyncio.ensure_future(self._poll())
        if isinstance(action, AddAddresses):
            return [Step(COMMIT, self._shared(COMMIT, self._commit), self.cfg.commit_timeout)]
        return ()

    def after(self, action: HostAction, vhid: VhidView) -> Sequence[Step]:
        if isinstance(action, AddAddresses):
            return [Step(AS_MASTER, self._shared(AS_MASTER, self._as_master), blocking=False)]
        if isinstance(action, RemoveAddresses) and vhid.state is State.BACKUP:
            return [Step(AS_BACKUP, self._shared(AS_BACKUP, self._as_backup), blocking=False)]
        return ()

    def _shared(
        self, name: str, work: Callable[[], Awaitable[None]]
    ) -> Callable[[], Awaitable[None]]:
        """A run of ``work`` that vhids stepping together share: joined while in flight."""

        async def run() -> None:
            task = self._running.get(name)
            if task is None or task.done():
                task = self._running[name] = asyncio.ensure_future(work())
            # Shielded: one vhid's lane giving up must not cancel the others' run.
            await asyncio.shield(task)

        return run

    async def _cmd(self, *args: str, timeout: float | None = None) -> bool:
        r = await self.client.run(*args, timeout=timeout or self.cfg.command_timeout)
        what = f"conntrackd {' '.join(args)}"
        if r.error is not None:
            raise RuntimeError(f"{what}: cannot run {self.cfg.binary}: {r.error}")
        if r.timed_out:
            raise RuntimeError(f"{what}: killed after {timeout or self.cfg.command_timeout} s")
        if not r.ok:
            tail = f": {r.output.strip()}" if r.output.strip() else ""
            log.warning("carp: %s failed with exit status %s%s", what, r.status, tail)
        return r.ok

    async def _commit(self) -> None:
        # commit_timeout is the lane's deadline (the addresses go up then); the commit
        # itself may finish later: connections committed late still survive.
        ok = await self._cmd("-c")
        if self.cfg.expectations:
            ok = await self._cmd("-c", "expect") and ok
        if not ok:
            raise RuntimeError("the commit failed: connections of the old master may break")

    async def _as_master(self) -> None:
        await self._cmd("-f")
        await self._check_flushed()
        for args in (("-R",), ("-B",)):
            await self._cmd(*args)

    async def _check_flushed(self) -> None:
        """conntrackd 1.4.7 refuses a flush right after a commit ("ignoring flush command,
        commit still in progress" in its own log) and still exits 0: look, don't trust."""
        stats = await self._look()
        if stats is not None and stats.external:
            log.warning(
                "carp: conntrackd kept %d entries of the peer's after -f (conntrackd 1.4.7 "
                "ignores a flush while it thinks a commit is in progress; see its log)",
                stats.external,
            )

    async def _as_backup(self) -> None:
        if not await self._cmd("-s"):
            log.warning("carp: conntrackd is not running: starting it")
            self._synced = False
            r = await self.client.start(self.cfg.command_timeout)
            if not r.ok:
                raise RuntimeError(f"cannot start conntrackd: {r.error or r.status}")
        self._start_bulk()
        for args in (("-t",), ("-n",)):
            await self._cmd(*args)

    def _start_bulk(self) -> None:
        """Demoted until the peer's table has arrived (once per (re)start of conntrackd)."""
        if not self._synced and (self._bulk is None or self._bulk.done()):
            self.demote(self.cfg.demotion_factor, "state sync bulk start")
            self._bulk = asyncio.ensure_future(self._watch_bulk())

    async def _look(self) -> ConntrackdStats | None:
        r = await self.client.run("-s", timeout=self.cfg.command_timeout)
        stats = parse_stats(r.output) if r.ok else None
        self.answering = stats is not None
        if stats is not None:
            self.stats = stats
        return stats

    async def _poll(self) -> None:
        """Look at conntrackd now and then. One that stops answering demotes the node (the
        peer takes over if it preempts: pfsync link down); one that answers again has
        lost its table, so it is demoted until the bulk resync from the peer is done."""
        while True:
            answered_before = self.answering
            stats = await self._look()
            if stats is None and answered_before:
                log.warning("carp: conntrackd does not answer")
                self._synced = False
                if self._bulk is not None and not self._bulk.done():
                    self._bulk.cancel()
                self.demote(self.cfg.demotion_factor, "state sync conntrackd down")
            elif stats is not None and answered_before is False:
                log.warning("carp: conntrackd answers again: asking the peer for its table")
                self._start_bulk()
                try:
                    await self._cmd("-n")
                except RuntimeError as e:  # logged; the bulk timeout still lifts it
                    log.error("carp: %s", e)
            await asyncio.sleep(STATS_INTERVAL)

    async def _watch_bulk(self) -> None:
        """Until the peer's table has stopped arriving, or bulk_timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.bulk_timeout
        last, since = -1, loop.time()
        while loop.time() < deadline:
            await asyncio.sleep(BULK_POLL)
            stats = await self._look()
            if stats is None:
                continue  # not answering (yet): the timeout decides
            if stats.external != last:
                last, since = stats.external, loop.time()
            elif loop.time() - since >= BULK_QUIET:
                self._synced = True
                self.demote(0, "state sync bulk done")
                return
        self._synced = True  # pretend, as pfsync does: a dead peer must not pin us down
        self.demote(0, "state sync bulk fail")
