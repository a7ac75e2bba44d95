"""What moves the vhids besides adverts and timers: the demotion sources (links, send
errors, state sync, carpctl's group demote) and the operator's levers (up, down, force).
Maintenance and service checks are health.py's; they land in the same ledger."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable

from carpd.config import GlobalConfig
from carpd.core.demotion import ADDRESSES, SENDERR, STATE_SYNC, Demotion, ifdown_source
from carpd.core.model import State
from carpd.daemon.runtime.vhost import Carpdev, Vhost
from carpd.daemon.seam.events import DemotionChanged, Event, LinkChanged
from carpd.linux.linkwatch import LinkService

log = logging.getLogger("carpd")


class Levers:
    def __init__(
        self,
        vhosts: dict[tuple[str, int], Vhost],
        devs: dict[str, Carpdev],
        ledger: Demotion,
        settings: Callable[[], GlobalConfig],
        publish: Callable[[Event], None],
        now: Callable[[], float],
        process: Callable[[Vhost], None],
    ) -> None:
        self.vhosts, self.devs, self.ledger = vhosts, devs, ledger
        self._settings, self._publish, self._now, self._process = settings, publish, now, process
        self.running = False  # no vhid to tell before the loop runs
        self.unwatch_links: Callable[[], None] = lambda: None
        self._watch: asyncio.Task[None] | None = None

    def apply_demotion(self) -> None:
        """The ledger changed: give every vhid its new total (a MASTER advertises it)."""
        if not self.running:
            return
        now = self._now()
        for vh in self.vhosts.values():
            vh.machine.set_demotion(self.ledger.total(vh.cfg.all_groups, vh.cfg.name), now)
            self._process(vh)
        totals = {vh.key: vh.machine.demotion for vh in self.vhosts.values()}
        self._publish(DemotionChanged(totals))

    def state_sync_demotion(self, amount: int, why: str) -> None:
        """pfsync's carp demotion, in FreeBSD's words: "demoted by 240 to 240 (...)"."""
        self.source_demotion(STATE_SYNC, amount, why)

    def addresses_lost(self, why: str | None) -> None:
        """A MASTER cannot keep its addresses (None: it can again): demoted as if its
        carpdev were down, so a peer takes over instead of a MASTER holding nothing."""
        amount = self._settings().ifdown_demotion_factor if why else 0
        self.source_demotion(
            ADDRESSES, amount, f"addresses lost: {why}" if why else "addresses kept"
        )

    def source_demotion(self, source: str, amount: int, why: str) -> None:
        """A named node-wide source now demotes by ``amount`` (0: no longer)."""
        old = self.ledger.sources.get(source, 0)
        if self.ledger.set_source(source, amount):
            total = sum(self.ledger.sources.values())
            log.warning("carp: demoted by %d to %d (%s)", amount - old, total, why)
            self.apply_demotion()

    def scoped_demotion(
        self, reason: str, vhids: tuple[str, ...], groups: tuple[str, ...], amount: int, why: str
    ) -> None:
        """A tracker's demotion: node-wide without vhids and groups, else theirs only."""
        if not vhids and not groups:
            self.source_demotion(reason, amount, why)
            return
        old = self.ledger.scoped.get(reason, (frozenset(), frozenset(), 0))[2]
        if self.ledger.set_scoped(reason, vhids, groups, amount):
            hit = [vh for vh in self.vhosts.values()
                   if vh.cfg.name in vhids or set(vh.cfg.all_groups) & set(groups)]  # fmt: skip
            total = max((self.ledger.total(vh.cfg.all_groups, vh.cfg.name) for vh in hit),
                        default=amount)  # fmt: skip
            names = ", ".join(vh.cfg.name for vh in hit)
            log.warning("carp: %s: demoted by %d to %d (%s)", names, amount - old, total, why)
            self.apply_demotion()

    def senderr(self, failing: list[str]) -> None:
        """FreeBSD's senderr demotion, node-wide, while any vhid fails to send."""
        amount = self._settings().senderr_demotion_factor if failing else 0
        if self.ledger.set_source(SENDERR, amount):
            what = f"send errors on {', '.join(failing)}" if failing else "send ok"
            log.warning("carp: %s", what)
            asyncio.get_running_loop().call_soon(self.apply_demotion)  # not from inside an action

    def adjust_group(self, name: str, delta: int) -> int:
        count = self.ledger.adjust_group(name, delta)
        log.warning("carp: group %s demote count %+d to %d (carpdemote)", name, delta, count)
        self.apply_demotion()
        return count

    def carpdev_found(self, dev: Carpdev) -> None:
        """A carpdev seen for the first time: a down one demotes the node at once."""
        if not dev.link.up:
            log.warning("carp: carpdev %s is down", dev.name)
            factor = self._settings().ifdown_demotion_factor
            if self.ledger.set_source(ifdown_source(dev.name), factor):
                self.apply_demotion()

    def link_event(self, name: str, up: bool) -> None:
        dev = self.devs.get(name)
        if dev is None or dev.link.up == up:
            return
        dev.link = dataclasses.replace(dev.link, up=up)
        factor = self._settings().ifdown_demotion_factor
        log.warning("carp: carpdev %s %s", name, "up" if up else "down")
        self._publish(LinkChanged(name, up))
        now = self._now()
        for vh in self.vhosts.values():
            if vh.dev is dev:
                vh.machine.link_changed(up, now)
                self._process(vh)
        # FreeBSD's ifdown_demotion_factor: node-wide, so with preempt on the peer takes
        # every vhid and this node is never left half master.
        if self.ledger.set_source(ifdown_source(name), 0 if up else factor):
            self.apply_demotion()

    def start_watching(self, links: LinkService) -> None:
        """Feed link_event from the daemon's link service until stop_watching()."""
        self._watch = asyncio.get_running_loop().create_task(self.watch_links(links))

    async def stop_watching(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        self.unwatch_links()

    async def watch_links(self, links: LinkService) -> None:
        self.unwatch_links = links.watch(None, lambda event: self.link_event(event.name, event.up))
        await links.start()
        # Whatever changed between our first look and the subscription.
        for name in list(self.devs):
            self.link_event(name, bool(links.is_up(name)))

    def find(self, name: str) -> Vhost:
        for vh in self.vhosts.values():
            if vh.cfg.name == name:
                return vh
        known = ", ".join(vh.cfg.name for vh in self.vhosts.values())
        raise LookupError(f"no vhid named {name!r} (have: {known})")

    def set_enabled(self, name: str, up: bool) -> None:
        vh = self.find(name)
        if up:
            vh.machine.admin_up(self._now())
        else:
            vh.machine.admin_down(self._now())
        self._process(vh)

    def force_state(self, name: str, state: State) -> None:
        vh = self.find(name)
        if vh.machine.state is State.INIT:
            raise LookupError(f"{name} is in INIT (carpdev down or taken down): not forcing")
        vh.machine.force_state(state, self._now())
        self._process(vh)
