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

pfsync's demotion (the "state sync" source, ``demotion_factor``) is raised while any of
these holds, so a node never takes the role (preempt on) without the peer's table:
- the bulk resync has not ended: from start-up, and again whenever conntrackd had to be
  started or answers again, or the sync link came back. It ends when the peer has been
  heard and the external cache has settled, changed by at most BULK_SETTLED of its size
  in BULK_QUIET seconds ("state sync bulk done": a busy table never stands still), or
  after ``bulk_timeout`` ("bulk fail": pfsync's pretence, so a dead peer cannot pin the
  node down);
- conntrackd does not answer (looked at every STATS_INTERVAL seconds);
- the sync interface is down (pfsync link down).

A stall, conntrackd answering and the link up but nothing from the peer's conntrackd for
STATS_INTERVAL seconds (FTFW sends a keep-alive a second when idle), is logged and shown
in status by name, but does not demote: the peer may simply be gone.

With ``external_cache = false`` (conntrackd's ``DisableExternalCache On``) the BACKUP's
conntrackd writes the peer's connections straight into its kernel table: nothing to
commit on becoming MASTER (the addresses go up at once), no ``-t`` on becoming BACKUP
(its scheduled flush would delete the peer's connections from the kernel table), and
the peer's table is what conntrackd injected ("external inject" in ``-s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from carpd.config.model import ConntrackdConfig
from carpd.core.actions import AddAddresses, RemoveAddresses
from carpd.core.model import State
from carpd.daemon.seam.integration import Sample
from carpd.daemon.seam.lanes import HostWork, Step
from carpd.daemon.seam.roles import HostRoles
from carpd.daemon.seam.view import VhidView
from carpd.linux.conntrackd import (
    Conntrackd,
    ConntrackdStats,
    Started,
    lock_file,
    parse_stats,
    running,
)
from carpd.linux.linkwatch import LinkEvent, LinkService

log = logging.getLogger("carpd")

BULK_POLL = 1.0  # seconds between two looks at the external cache during a bulk resync
BULK_QUIET = 3.0  # the external cache settled this long: the bulk resync is done
# ... settled: changed by at most this share of it in BULK_QUIET (see _watch_bulk)
BULK_SETTLED = 0.01
# The commit's deadline grows with the peer's table: commit_timeout, plus a second per
# COMMIT_RATE of the peer's connections (measured: 250,000 in 1.8 s, 500,000 in 7 s on a
# kernel hash of 262,144 buckets; half the slowest rate, so a commit that runs is waited
# for: addresses up over a half-committed table drop the rest's packets as invalid).
COMMIT_RATE = 50_000
STATS_INTERVAL = 10.0  # seconds between two looks at conntrackd's statistics, for status

COMMIT = "conntrackd commit"
AS_MASTER = "conntrackd resync as master"
AS_BACKUP = "conntrackd resync as backup"
ENSURE = "conntrackd running"
CHAIN = "conntrackd"  # its steps' chain in the lane (see lanes.Step.chain)

# Why the node is demoted, each with the words of its log line.
BULK = "state sync bulk start"
DOWN = "state sync conntrackd down"
LINK = "state sync link down"


_INJECT = re.compile(
    r"external inject:\s*\nconnections created:\s*(\d+)\s+failed:\s*\d+\s*\n"
    r"connections updated:\s*(\d+)\s+failed:\s*\d+\s*\n"
    r"connections destroyed:\s*(\d+)"
)


def read_stats(text: str) -> tuple[ConntrackdStats | None, tuple[int, ...] | None]:
    """``conntrackd -s``, with or without an external cache. Without one
    (DisableExternalCache On) the peer's table is what conntrackd injected into the
    kernel: created less destroyed stands for the external cache; returns the inject
    counts (created, updated, destroyed) too (a restarted conntrackd's resync updates the
    entries the kernel kept rather than creating them)."""
    m = _INJECT.search(text)
    if m is None:
        return parse_stats(text), None
    created, updated, destroyed = (int(g) for g in m.groups())
    held = f"cache external:\ncurrent active connections: {max(0, created - destroyed)}"
    return parse_stats(text.replace("external inject:", held, 1)), (created, updated, destroyed)


@dataclass(frozen=True, slots=True)
class StateSyncReport:
    """For status: is conntrackd there, is the bulk resync done, its counters."""

    running: bool | None  # None: not asked yet
    bulk: str  # "done", "running" or "not started"
    link: str | None  # the sync link: "up", "down"; None: not configured, or not seen
    stall: str | None  # why the peer seems silent, while it does
    demoted_by: tuple[str, ...]
    stats: ConntrackdStats | None
    started_by_carpd: int | None  # the pid of the conntrackd this carpd started
    stop_with_carpd: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "bulk": self.bulk,
            "link": self.link,
            "stall": self.stall,
            "demoted_by": list(self.demoted_by),
            "stats": self.stats.to_json() if self.stats is not None else None,
            "started_by_carpd": self.started_by_carpd,
            "stop_with_carpd": self.stop_with_carpd,
        }

    def samples(self) -> Iterator[Sample]:
        yield Sample(
            "carpd_state_sync_up", "1 while conntrackd answers", "gauge", int(bool(self.running))
        )
        yield Sample(
            "carpd_state_sync_bulk_done",
            "1 once the peer's table has arrived",
            "gauge",
            int(self.bulk == "done"),
        )
        yield Sample(
            "carpd_state_sync_stalled",
            "1 while nothing comes from the peer's conntrackd",
            "gauge",
            int(bool(self.stall)),
        )
        s = self.stats
        if s is None:
            return
        for key, doc, value in (
            ("internal", "ours", s.internal),
            ("external", "the peer's", s.external),
        ):
            yield Sample(
                f"carpd_state_sync_{key}_connections",
                f"Connections in conntrackd's {key} cache ({doc})",
                "gauge",
                value,
            )
        for key, doc, value in (
            ("lost", "Messages from the peer that never arrived", s.lost),
            ("malformed", "Messages from the peer that made no sense", s.malformed),
            ("send_errors", "Errors sending to the peer", s.send_errors),
            ("recv_errors", "Errors receiving from the peer", s.recv_errors),
        ):
            yield Sample(f"carpd_state_sync_{key}", doc, "counter", value)

    def lines(self) -> list[str]:
        running = {True: "running", False: "NOT RUNNING", None: "not asked yet"}[self.running]
        line = f"state sync: conntrackd {running}, bulk resync {self.bulk}"
        if self.link:
            line += f", sync link {self.link}"
        if self.stall:
            line += f"; STALLED: {self.stall}"
        if self.demoted_by:
            line += f"; demoted for: {', '.join(self.demoted_by)}"
        s = self.stats
        if s is not None:
            line += (
                f"; ours {s.internal}, the peer's {s.external}; lost {s.lost}, "
                f"malformed {s.malformed}, send errors {s.send_errors}, "
                f"receive errors {s.recv_errors}"
            )
        if not self.started_by_carpd:
            return [line]
        return [line, "\t" + self._started(self.started_by_carpd)]

    def _started(self, pid: int) -> str:
        """What becomes of the conntrackd carpd started when carpd stops, and why."""
        if self.stop_with_carpd:
            return (
                f"conntrackd (pid {pid}) was started by carpd and stops with it (stop_with_carpd)"
            )
        return (
            f"conntrackd (pid {pid}) was started by carpd and keeps running when carpd stops, "
            "so a restart keeps the connection table ([conntrackd] stop_with_carpd = true "
            "stops it)"
        )


class Conntrack:
    name = "state_sync"  # its key in status

    def __init__(
        self,
        cfg: ConntrackdConfig,
        demote: Callable[[int, str], None],
        synced: bool = False,
        started: Started | None = None,
        links: LinkService | None = None,
        roles: HostRoles | None = None,
    ) -> None:
        self.cfg = cfg
        self.links = links  # the daemon's link watch (None, as in a test: no sync link watch)
        self.roles = roles or HostRoles()  # which vhids are MASTER on the host
        # The conntrackd this carpd started (a reload hands it on): it outlives carpd
        # unless stop_with_carpd, and no other is ever stopped.
        self.started = started
        self.client = Conntrackd(cfg.binary, cfg.config)
        self.demote = demote  # (amount, why): the "state sync" demotion source
        self._running: dict[str, asyncio.Task[None]] = {}
        self._reasons: set[str] = set()
        self._synced = synced  # a bulk resync has ended since conntrackd last (re)started
        self._bulk: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []  # the poller and the link watch
        self.stats: ConntrackdStats | None = None  # the last `conntrackd -s` that answered
        self.answering: bool | None = None  # None: not asked yet
        self.link_up: bool | None = None  # None: no sync interface configured, or not seen
        self.stall: str | None = None  # why the peer seems silent, while it does
        if not synced:  # at start-up: demoted before any vhid can preempt
            self._raise(BULK)
        else:  # a reload that changed the table: what the old one demoted for, we'll see
            self.demote(0, "state sync reconfigured")
        with contextlib.suppress(RuntimeError):  # a reload: the loop runs already
            asyncio.get_running_loop()
            self._start_watching()

    @property
    def synced(self) -> bool:
        return self._synced

    def report(self) -> StateSyncReport:
        return StateSyncReport(
            running=self.answering,
            bulk="done" if self._synced else "running" if self._bulk else "not started",
            link=None if self.link_up is None else "up" if self.link_up else "down",
            stall=self.stall,
            demoted_by=tuple(sorted(self._reasons)),
            stats=self.stats,
            started_by_carpd=self._started_pid(),
            stop_with_carpd=self.cfg.stop_with_carpd,
        )

    def _started_pid(self) -> int | None:
        """The pid of the conntrackd this carpd started, while it runs."""
        return self.started.pid if self.started is not None and self.started.alive() else None

    async def close(self) -> None:
        for task in [self._bulk, *self._tasks, *self._running.values()]:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def at_exit(self) -> None:
        """carpd exits (after the hand-over: the addresses are gone, the last adverts
        sent): the conntrackd it started keeps running, or with stop_with_carpd is
        stopped; one that carpd did not start is left alone either way."""
        started, self.started = self.started, None
        if started is None or not started.alive():
            if self.cfg.stop_with_carpd:
                log.info(
                    "carp: conntrackd was not started by this carpd: left running "
                    "(stop_with_carpd stops only the one carpd started)"
                )
            if started is not None:
                started.close()
            return
        try:
            if not self.cfg.stop_with_carpd:
                log.info(
                    "carp: conntrackd (pid %d), started by carpd, keeps running: a restart "
                    "of carpd keeps the connection table (the unit's KillMode=process); "
                    "[conntrackd] stop_with_carpd = true stops it with carpd",
                    started.pid,
                )
            elif not started.terminate():
                log.info("carp: conntrackd (pid %d) had exited already", started.pid)
            elif await self._exited(started):
                log.info(
                    "carp: conntrackd (pid %d) stopped with carpd (stop_with_carpd)", started.pid
                )
            else:
                log.warning(
                    "carp: conntrackd (pid %d) still runs %g s after SIGTERM",
                    started.pid,
                    self.cfg.command_timeout,
                )
        finally:
            started.close()

    async def _exited(self, started: Started) -> bool:
        """Until it has exited (its pidfd turns readable), at most command_timeout."""
        loop = asyncio.get_running_loop()
        gone: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not gone.done():
                gone.set_result(None)

        loop.add_reader(started.fd, readable)
        try:
            await asyncio.wait_for(gone, self.cfg.command_timeout)
        except TimeoutError:
            return False
        finally:
            loop.remove_reader(started.fd)
        return True

    # -- the demotion -------------------------------------------------------------

    def _raise(self, reason: str) -> None:
        self._reasons.add(reason)
        self.demote(self.cfg.demotion_factor, reason)

    def _lift(self, reason: str, why: str) -> None:
        """``why`` is the log line's reason when this was the last one."""
        if reason not in self._reasons:
            return
        self._reasons.discard(reason)
        if not self._reasons:
            self.demote(0, why)
        else:
            log.warning("carp: %s; still demoted (%s)", why, ", ".join(sorted(self._reasons)))

    # -- transitions ----------------------------------------------------------------

    def _start_watching(self) -> None:
        if not self._tasks:
            self._tasks.append(asyncio.ensure_future(self._poll()))
            if self.cfg.interface is not None and self.links is not None:
                self._tasks.append(asyncio.ensure_future(self._watch_link(self.cfg.interface)))

    def before(self, work: HostWork, vhid: VhidView) -> Sequence[Step]:
        self._start_watching()  # at the first transition: the daemon runs
        if isinstance(work.action, AddAddresses) and self.cfg.external_cache:
            run = self._shared(COMMIT, self._commit)
            return [Step(COMMIT, run, self.commit_deadline(), chain=CHAIN)]
        return ()  # no external cache: the peer's connections are in the kernel already

    def commit_deadline(self) -> float:
        """commit_timeout, plus the time a commit of the peer's table (as last counted)
        takes at COMMIT_RATE."""
        external = self.stats.external if self.stats is not None else 0
        return self.cfg.commit_timeout + external / COMMIT_RATE

    def after(self, work: HostWork, vhid: VhidView) -> Sequence[Step]:
        # Its own chain: a resync that hangs (each command up to command_timeout) holds
        # only the next resync, never a hook, an action or a followed interface.
        if isinstance(work.action, AddAddresses):
            run = self._shared(AS_MASTER, self._as_master)
            return [Step(AS_MASTER, run, blocking=False, chain=CHAIN)]
        # Into BACKUP, not a stop (INIT): the transition this removal serves.
        cause = work.cause
        if isinstance(work.action, RemoveAddresses) and cause and cause.new is State.BACKUP:
            run = self._shared(AS_BACKUP, self._as_backup)
            return [Step(AS_BACKUP, run, blocking=False, chain=CHAIN)]
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
        if r.timed_out:  # before error, which says "killed after" too
            raise RuntimeError(f"{what}: killed after {timeout or self.cfg.command_timeout} s")
        if r.error is not None:
            raise RuntimeError(f"{what}: cannot run {self.cfg.binary}: {r.error}")
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
        if self.cfg.external_cache:
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
        await self._shared(ENSURE, self._ensure_running)()
        self._start_bulk()
        # -t schedules a flush of the kernel table (conntrackd's PurgeTimeout later): the
        # old master's own entries go; without an external cache it would take the
        # peer's connections, injected there, with them.
        commands = (("-t",), ("-n",)) if self.cfg.external_cache else (("-n",),)
        for args in commands:
            await self._cmd(*args)

    async def _ensure_running(self) -> None:
        """primary-backup.sh's "backup": if conntrackd does not answer, remove its stale
        lock (a killed conntrackd leaves it, and then refuses to start) and start it."""
        if await self._look() is not None:
            return
        pids = running(self.cfg.config)
        if pids:
            raise RuntimeError(
                f"conntrackd (pid {', '.join(map(str, pids))}) runs but does not answer on "
                "its socket: not starting another beside it"
            )
        log.warning("carp: conntrackd is not running: starting it")
        self._synced = False
        lock = lock_file(self.cfg.config)
        if lock is not None:
            if lock.exists():
                log.warning("carp: removing conntrackd's stale lock file %s", lock)
                lock.unlink(missing_ok=True)
            lock.parent.mkdir(parents=True, exist_ok=True)  # a run_dir under /run
        r = await self.client.start(self.cfg.command_timeout)
        if not r.ok:
            raise RuntimeError(f"cannot start conntrackd: {r.error or r.status}")
        if self.started is not None:  # the one we started before has died
            self.started.close()
        self.started = Started.find(self.cfg.config)
        if await self._look() is not None:  # with an empty table: demoted until synced
            self._start_bulk()
            self._lift(DOWN, "state sync conntrackd up")

    def _start_bulk(self) -> None:
        """Demoted until the peer's table has arrived (once per (re)start of conntrackd)."""
        if not self._synced and (self._bulk is None or self._bulk.done()):
            self._raise(BULK)
            self._bulk = asyncio.ensure_future(self._watch_bulk())

    async def _resync(self, why: str, lifted: str, lifted_why: str) -> None:
        """``lifted`` no longer holds, but the peer's table must come again: demoted for
        the bulk resync first (never a moment without), then ask the peer for it."""
        log.warning("carp: %s: asking the peer for its table", why)
        self._synced = False
        self._start_bulk()
        self._lift(lifted, lifted_why)
        try:
            await self._cmd("-n")
        except RuntimeError as e:  # logged; the bulk timeout still lifts it
            log.error("carp: %s", e)

    # -- watching conntrackd and the sync link ------------------------------------------

    async def _look(self) -> ConntrackdStats | None:
        r = await self.client.run("-s", timeout=self.cfg.command_timeout)
        stats, _ = read_stats(r.output) if r.ok else (None, None)
        self.answering = stats is not None
        if stats is not None:
            self.stats = stats
        return stats

    async def _poll(self) -> None:
        """Look at conntrackd now and then. One that stops answering demotes the node (the
        peer takes over if it preempts: pfsync link down) and is started again; one that
        answers again has lost its table, so the node stays demoted until the bulk resync
        from the peer is done."""
        try:
            await self._shared(ENSURE, self._ensure_running)()
        except RuntimeError as e:
            log.error("carp: %s", e)
        if self.answering:  # the BACKUP transition's -n asks the peer for its table
            self._start_bulk()
        else:  # demoted until it answers and has the peer's table
            self._raise(DOWN)
        last = self.stats
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            stats = await self._look()
            if stats is None and DOWN not in self._reasons:
                log.warning("carp: conntrackd does not answer")
                self._synced = False
                if self._bulk is not None and not self._bulk.done():
                    self._bulk.cancel()
                self._reasons.discard(BULK)
                self._raise(DOWN)
                await self._restart()
            elif stats is None:
                await self._restart()  # demoted already: one more try
            elif DOWN in self._reasons:
                await self._resync("conntrackd answers again", DOWN, "state sync conntrackd up")
            self._diagnose(last, stats)
            # None after a look it did not answer: the next answer may come from another
            # conntrackd (started again), whose counters start from 0, and whose first
            # message from the peer counts every sequence number it missed as lost.
            last = stats

    async def _restart(self) -> None:
        """Start conntrackd again (demoted until the peer's table is back in it). On a
        MASTER, it also learns the kernel's table again and sends it to the peer, which
        would otherwise lack every connection made since; on a BACKUP, it asks the peer
        for its table."""
        try:
            await self._shared(ENSURE, self._ensure_running)()
            if self.answering and self.roles.masters():
                for args in (("-R",), ("-B",)):
                    await self._cmd(*args)
            elif self.answering:
                # A BACKUP's new conntrackd starts with an empty external cache, and
                # FTFW does not send it the peer's table by itself: without asking, the
                # bulk resync would end on the peer's keep-alives with nothing in it.
                await self._cmd("-n")
        except RuntimeError as e:  # still down: the next look tries again
            log.error("carp: %s", e)

    def _diagnose(self, last: ConntrackdStats | None, now: ConntrackdStats | None) -> None:
        """A stall: conntrackd answers and the link is up, but the peer's conntrackd has
        sent nothing since the last look (freifunk-berlin/bbb-configs#96: sync silently
        dead, "Lost msgs" growing)."""
        if last is None or now is None or self.link_up is False:
            return
        if now.received < last.received:  # another conntrackd: its counts start from 0
            return
        stall = None
        if now.received == last.received:
            stall = (
                f"nothing from the peer's conntrackd in {STATS_INTERVAL:g} s while the sync "
                "link is up (is it running? is UDP port "
                f"{self.cfg.port} let through on {self.cfg.interface or 'the sync link'}?)"
            )
        elif now.lost > last.lost:
            stall = f"{now.lost - last.lost} messages from the peer lost in {STATS_INTERVAL:g} s"
        if stall != self.stall:
            if stall is not None:
                log.warning("carp: state sync stalled: %s", stall)
            else:
                log.warning("carp: state sync flows again")
            self.stall = stall

    async def _watch_link(self, name: str) -> None:
        """pfsync's link down: demoted while the sync link is down; when it is back the
        peer's table may have moved on without us, so a bulk resync."""
        assert self.links is not None
        await self.links.start()
        # Queued: the service calls back in its own task, and a resync awaits.
        events: asyncio.Queue[LinkEvent] = asyncio.Queue()
        unwatch = self.links.watch([name], events.put_nowait)
        try:
            await self._link_changed(name, bool(self.links.is_up(name)))
            while True:
                await self._link_changed(name, (await events.get()).up)
        finally:
            unwatch()

    async def _link_changed(self, name: str, up: bool) -> None:
        if up == self.link_up:
            return
        was, self.link_up = self.link_up, up
        if not up:
            log.warning("carp: sync interface %s down", name)
            self._raise(LINK)
        elif was is not None:  # back: not at start-up (the start-up bulk covers that)
            await self._resync(f"sync interface {name} up", LINK, "state sync link up")

    async def _watch_bulk(self) -> None:
        """Until the peer has been heard and its table has stopped arriving, or the
        bulk timeout.

        "Stopped arriving": the peer's table (the external cache, or without one what
        conntrackd injected, net) changed by at most BULK_SETTLED of its size over the
        last BULK_QUIET seconds. A busy firewall's table never stands still (connections
        come and go every second, a few per thousand over BULK_QUIET), while a bulk
        resync grows it by tens of thousands a second; a small table must stand still."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.bulk_timeout
        first = None
        seen: deque[tuple[float, int]] = deque()  # (when, the peer's table), oldest first
        # The first look at once, as the baseline: the quiet window counts from it.
        while loop.time() < deadline:
            stats = await self._look()
            if stats is None:
                await asyncio.sleep(BULK_POLL)
                continue  # not answering (yet): the timeout decides
            if first is None:
                first = stats
            now = loop.time()
            seen.append((now, stats.external))
            while len(seen) > 1 and now - seen[1][0] >= BULK_QUIET:
                seen.popleft()  # the newest look at least BULK_QUIET old stays first
            then, before = seen[0]
            settled = (
                now - then >= BULK_QUIET
                and abs(stats.external - before) <= BULK_SETTLED * stats.external
            )
            heard = stats.received > first.received  # a silent peer sent no table
            if heard and settled:
                self._synced = True
                self._lift(BULK, "state sync bulk done")
                return
            await asyncio.sleep(BULK_POLL)
        self._synced = True  # pretend, as pfsync does: a dead peer must not pin us down
        self._lift(BULK, "state sync bulk fail")
