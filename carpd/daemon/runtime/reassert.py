"""A MASTER says again where its addresses are: gratuitous ARPs and unsolicited NAs
beyond the takeover's.

The takeover announces once (twice after a split brain); the clients' neighbour entries
and the switches' forwarding tables can still miss it or lose it. So a MASTER announces
its addresses again:

- when a link that holds them comes up (the carpdev, or the vhid's macvlan) while the
  vhid is MASTER: the switch port may have flapped, and its table with it;
- after a resume: the loop notices that time jumped (the host was suspended:
  CLOCK_BOOTTIME ran ahead of CLOCK_MONOTONIC; or the process or VM was paused: a tick
  came far too late). Not at once: the peer has probably taken over meanwhile, and our
  announcement would pull the clients back to a node about to step down. One advert
  interval later, if the vhid is still MASTER on the host, the protocol has spoken;
- every ``garp_refresh`` seconds, if set (keepalived's ``garp_master_refresh``).

The keeper (keeper.py) announces what it puts back. Each announcement is a step in the
vhid's lane, and is sent only if the vhid is still MASTER on the host when it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping

from carpd.core.model import State
from carpd.daemon.runtime.host import Host
from carpd.daemon.runtime.vhost import Vhost
from carpd.daemon.seam.lanes import Step
from carpd.linux.linkwatch import LinkEvent, LinkService

log = logging.getLogger("carpd")

TICK = 0.5  # seconds between two looks at the clocks (and the refreshes' granularity)
# Held this long (suspended, or paused), the loop has resumed: a busy machine is
# milliseconds late, not seconds. A pause shows as a tick late by the pause less up to
# one TICK (it may begin anywhere in a tick's sleep), so a tick RESUMED - TICK late is
# one; suspended time is counted exactly.
RESUMED = 2.0


class Reasserter:
    def __init__(
        self,
        vhosts: Mapping[tuple[str, int], Vhost],
        host: Host,
        links: LinkService,
        now: Callable[[], float],
    ) -> None:
        self.vhosts, self.host, self.links, self.now = vhosts, host, links, now
        self._task: asyncio.Task[None] | None = None
        self._unwatch: Callable[[], None] = lambda: None
        self._refreshed: dict[str, float] = {}  # vhid -> loop time of its last refresh
        self._later: set[asyncio.TimerHandle] = set()  # announcements after a resume
        self.resumes = 0

    def start(self) -> None:
        self._unwatch = self.links.watch(None, self._link)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        self._unwatch()
        for later in self._later:
            later.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _masters(self) -> list[Vhost]:
        roles = self.host.roles
        return [vh for vh in self.vhosts.values() if roles.state(vh.cfg.name) is State.MASTER]

    def announce(self, vh: Vhost, why: str, after: float = 0.0) -> None:
        """A step in ``vh``'s lane (``after`` seconds from now) that announces its
        addresses if it is still MASTER on the host then."""

        async def run() -> None:
            if self.vhosts.get(vh.key) is not vh:
                return  # restarted by a reload meanwhile
            if self.host.roles.state(vh.cfg.name) is State.MASTER:
                log.debug("carp: %s: announcing again (%s)", vh.cfg.name, why)
                await self.host.announce(vh)

        steps = [Step("reannounce", run, chain="addresses")]
        if after > 0:
            later = asyncio.get_running_loop().call_later(after, self._submit, vh, steps)
            self._later.add(later)
        else:
            vh.lane.submit(steps)

    def _submit(self, vh: Vhost, steps: list[Step]) -> None:
        self._later = {h for h in self._later if not h.cancelled() and h.when() > self.now()}
        vh.lane.submit(steps)

    # -- the triggers -------------------------------------------------------------------

    def _link(self, event: LinkEvent) -> None:
        if not event.up:
            return
        for vh in self._masters():
            holder = vh.vmac.name if vh.vmac is not None else vh.dev.name
            if event.name in (holder, vh.dev.name):
                self.announce(vh, f"{event.name} up")

    async def _run(self) -> None:
        suspended = _suspended()
        while True:
            asked = time.monotonic()
            await asyncio.sleep(TICK)
            late = time.monotonic() - asked - TICK
            now_suspended = _suspended()
            slept, suspended = now_suspended - suspended, now_suspended
            if slept >= RESUMED or late >= RESUMED - TICK:
                self._resumed(max(late, slept))
            self._refresh()

    def _resumed(self, held: float) -> None:
        self.resumes += 1
        masters = self._masters()
        log.warning(
            "carp: the loop was held for %.1f s or more (suspended or paused): %d MASTER vhid(s) "
            "announce again after one advert interval, if still MASTER",
            held,
            len(masters),
        )
        for vh in masters:
            self.announce(vh, "resume", after=vh.machine.advert_interval)

    def _refresh(self) -> None:
        now = self.now()
        for vh in self._masters():
            every = vh.cfg.garp_refresh
            if not every:
                continue
            name = vh.cfg.name
            last = self._refreshed.setdefault(name, now)
            if now - last >= every - TICK / 2:
                self._refreshed[name] = now
                self.announce(vh, "garp_refresh")


def _suspended() -> float:
    """Seconds the host has spent suspended since boot (CLOCK_MONOTONIC stops then,
    CLOCK_BOOTTIME does not)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) - time.monotonic()
