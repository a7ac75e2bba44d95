"""A MASTER keeps what it owns: the vhid's addresses stay on the host while it is
MASTER, and are not on it while it is not.

carpd adds a MASTER's addresses once; another program may take them away later (an
``ip addr flush``, NetworkManager or systemd-networkd reconfiguring the link, a DHCP
client's flush, an operator's mistake: keepalived #836, #1385, #2479). The daemon's one
link watch hears every address removed or added (RTM_DELADDR, RTM_NEWADDR), and:

- an address of a vhid that is MASTER on the host (``HostRoles``) was removed: put
  back and announced, by a step in the vhid's own lane (so never across a release that
  is already queued), logged (rate-limited per vhid) with what was missing, counted;
  if it cannot be put back, the node is demoted (``addresses lost``, by
  ``ifdown_demotion_factor``: as if its carpdev were down) so that the peer takes over
  instead of a MASTER that holds nothing;
- an address of a vhid that is not MASTER appeared (added by hand, left by another
  carpd): removed, and if that is refused, said loudly;
- a vhid's macvlan (``vmac``) deleted, or set down while MASTER (or up while not):
  made again, or set as the role wants it, and the addresses put back.

An effect that claims the vhid's addresses (a pool's buckets) keeps them its own way:
the host says which vhids' addresses are its own steps' (``Host.holds``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from carpd.config import GlobalConfig
from carpd.core.model import State
from carpd.daemon.runtime.host import Host
from carpd.daemon.runtime.lifetimes import Lifetimes
from carpd.daemon.runtime.reassert import Reasserter
from carpd.daemon.runtime.vhost import Vhost
from carpd.daemon.seam.events import AddressesRestored
from carpd.daemon.seam.integration import Sample
from carpd.daemon.seam.lanes import Step
from carpd.daemon.seam.ratelimit import RateLimiter
from carpd.linux.linkwatch import AddressEvent, IPInterface, LinkEvent, LinkService

log = logging.getLogger("carpd")

# A re-add is one netlink call per address, answered in milliseconds.
RESTORE_DEADLINE = 10.0
LOG_EVERY = 10.0  # seconds between two log lines of the same vhid's restores


@dataclass(slots=True)
class Kept:
    """One vhid's record."""

    restored: int = 0  # addresses put back
    removed: int = 0  # addresses that were on the host while not MASTER, taken away
    failed: int = 0  # put back or take away refused
    last: str | None = None  # the last line logged about it


@dataclass(frozen=True, slots=True)
class KeeperReport:
    vhids: Mapping[str, Kept]
    demoted: str | None  # why the node is demoted for addresses it could not keep

    def to_json(self) -> dict[str, Any]:
        return {
            "vhids": {
                n: {
                    "restored": k.restored,
                    "removed": k.removed,
                    "failed": k.failed,
                    "last": k.last,
                }
                for n, k in sorted(self.vhids.items())
            },
            "demoted": self.demoted,
        }

    def lines(self) -> list[str]:
        out = [f"addresses: DEMOTED, {self.demoted}"] if self.demoted else []
        for n, k in sorted(self.vhids.items()):
            if k.restored or k.removed or k.failed:
                out.append(
                    f"addresses {n}: {k.restored} put back, {k.removed} taken away, "
                    f"{k.failed} failed; last: {k.last}"
                )
        return out

    def samples(self) -> Iterator[Sample]:
        for n, k in sorted(self.vhids.items()):
            labels = (("name", n),)
            yield Sample(
                "carpd_addresses_restored",
                "Addresses another program removed from a MASTER, put back",
                "counter",
                k.restored,
                labels,
            )
            yield Sample(
                "carpd_addresses_removed",
                "Addresses found on a node that is not MASTER of their vhid, taken away",
                "counter",
                k.removed,
                labels,
            )
            yield Sample(
                "carpd_addresses_failed",
                "Addresses that could not be put back or taken away",
                "counter",
                k.failed,
                labels,
            )


class Keeper:
    name = "addresses"  # its key in status

    def __init__(
        self,
        vhosts: Mapping[tuple[str, int], Vhost],
        host: Host,
        links: LinkService,
        lost: Callable[[str | None], None],
        now: Callable[[], float],
    ) -> None:
        """``lost(why)``: demote the node for addresses it cannot keep (None: no longer).
        The host lane's netlink, roles and publisher are the keeper's too."""
        self.vhosts, self.host, self.links, self.lost, self.now = vhosts, host, links, lost, now
        self.netlink, self.roles, self.publish = host.netlink, host.roles, host.publish
        self.kept: dict[str, Kept] = {}
        self.failing: dict[str, str] = {}  # vhid -> why its addresses cannot be kept
        self._limiter = RateLimiter(LOG_EVERY)
        self._queued: set[str] = set()  # vhids with a keep step in their lane
        self._vmac_wrong: set[str] = set()  # vhids whose macvlan is gone or set wrong
        self._unwatch: Callable[[], None] = lambda: None
        # And lets the kernel take them away if carpd dies (lifetimes it renews).
        self.lifetimes = Lifetimes(vhosts, host, links)
        # And says again where they are: on a link up, after a resume, every garp_refresh.
        self.reassert = Reasserter(vhosts, host, links, now)

    def start(self, settings: Callable[[], GlobalConfig] | None = None) -> None:
        """``settings``: the current [global] table (address_lifetime); None: no lifetimes."""
        watches = [self.links.watch_addresses(self._heard), self.links.watch(None, self._link)]

        def unwatch() -> None:
            for u in watches:
                u()

        self._unwatch = unwatch
        if settings is not None:
            self.lifetimes.start(settings)
        self.reassert.start()

    async def close(self) -> None:
        self._unwatch()
        self.lifetimes.close()
        await self.reassert.close()

    def report(self) -> KeeperReport:
        why = "; ".join(f"{n}: {w}" for n, w in sorted(self.failing.items())) or None
        return KeeperReport(dict(self.kept), why)

    # -- events ---------------------------------------------------------------------

    def _heard(self, event: AddressEvent) -> None:
        for vh in self._owners(event.index, event.address):
            master = self.roles.state(vh.cfg.name) is State.MASTER
            if master != event.present:  # gone from a MASTER, or there on a BACKUP
                self._queue(vh)

    def _link(self, event: LinkEvent) -> None:
        for vh in self.vhosts.values():
            vm = vh.vmac
            if vm is None or event.name != vm.name:
                continue
            master = self.roles.state(vh.cfg.name) is State.MASTER
            if not event.exists or event.up != master:
                self._queue(vh, vmac=True)

    def _owners(self, index: int, address: IPInterface) -> Iterator[Vhost]:
        for vh in self.vhosts.values():
            if address in vh.cfg.addresses and vh.address_index == index and self.host.holds(vh):
                yield vh

    def _queue(self, vh: Vhost, vmac: bool = False) -> None:
        """One keep step per vhid at a time: a flush that removes ten addresses is one."""
        name = vh.cfg.name
        if vmac:
            self._vmac_wrong.add(name)
        if name in self._queued:
            return
        self._queued.add(name)

        async def keep() -> None:
            self._queued.discard(name)
            if name in self._vmac_wrong:
                self._vmac_wrong.discard(name)
                await self._keep_vmac(vh)
            await self._keep(vh)

        vh.lane.submit([Step("keep addresses", keep, RESTORE_DEADLINE, chain="addresses")])

    # -- the step -------------------------------------------------------------------

    async def _keep(self, vh: Vhost) -> None:
        """In the vhid's lane: whatever the role is when the step runs decides."""
        name, index = vh.cfg.name, vh.address_index
        master = self.roles.state(name) is State.MASTER
        wrong = [a for a in vh.cfg.addresses if self.links.has_address(index, a) != master]
        if not wrong or vh.lane is not self._lane_of(vh):
            return  # put right meanwhile, or the vhid was restarted
        kept = self.kept.setdefault(name, Kept())
        what = ", ".join(str(a) for a in wrong)
        try:
            for a in wrong:
                if master:
                    await self.netlink.add_address(index, a, self.host.lifetime(vh))
                else:
                    await self.netlink.remove_address(index, a)
        except Exception as e:
            kept.failed += len(wrong)
            line = f"cannot {'put back' if master else 'take away'} {what} on {vh.dev.name}: {e}"
            self._say(vh, kept, logging.ERROR, line)
            self.publish(AddressesRestored(vh.key, tuple(map(str, wrong)), master, str(e)))
            if master:
                self._lost(name, line)
            raise RuntimeError(line) from e
        if master:
            kept.restored += len(wrong)
            self._say(
                vh,
                kept,
                logging.WARNING,
                f"{what} removed from {vh.dev.name} by another program: put back",
            )
            await self.host.announce(vh)
        else:
            kept.removed += len(wrong)
            self._say(
                vh,
                kept,
                logging.WARNING,
                f"{what} on {vh.dev.name} while {self.roles.state(name).name}: taken away",
            )
        self.publish(AddressesRestored(vh.key, tuple(map(str, wrong)), master, None))
        self._found(name)

    async def _keep_vmac(self, vh: Vhost) -> None:
        """The macvlan again as the role wants it: made again if it was deleted (with
        its sockets), up while MASTER, down otherwise."""
        vm, name = vh.vmac, vh.cfg.name
        if vm is None or vh.lane is not self._lane_of(vh):
            return
        master = self.roles.state(name) is State.MASTER
        kept = self.kept.setdefault(name, Kept())
        try:
            # Asked of the kernel, not of the link watch: its events may be on their way.
            link = await self.netlink.link(vm.name)
            if link is None or vm.link is None or link.index != vm.link.index:  # deleted
                for s in (vm.sock4, vm.announcer):
                    if s is not None:
                        s.close()
                await vm.create(vh.dev.link)
                kept.last = (
                    f"virtual MAC interface {vm.name} deleted by another program: made again"
                )
                log.warning("carp: %s: %s", name, kept.last)  # rare: never held back
                link = None
            if link is None or link.up != master:
                await vm.set_up(master)
        except Exception as e:
            kept.failed += 1
            line = f"cannot make {vm.name} as it was: {e}"
            self._say(vh, kept, logging.ERROR, line)
            if master:
                self._lost(name, line)
            raise RuntimeError(line) from e

    def _lane_of(self, vh: Vhost) -> object:
        current = self.vhosts.get(vh.key)
        return None if current is None else current.lane

    def _say(self, vh: Vhost, kept: Kept, level: int, line: str) -> None:
        kept.last = line
        suppressed = self._limiter.allow(vh.cfg.name, self.now())
        if suppressed is not None:
            more = f" ({suppressed} more since the last line)" if suppressed else ""
            log.log(level, "carp: %s: %s%s", vh.cfg.name, line, more)

    def _lost(self, name: str, why: str) -> None:
        self.failing[name] = why
        self.lost(f"{name}: {why}")

    def _found(self, name: str) -> None:
        if self.failing.pop(name, None) is not None and not self.failing:
            self.lost(None)

    def forget(self, names: Iterable[str]) -> None:
        """Vhids gone on a reload: no longer a reason to be demoted."""
        for name in names:
            self._found(name)
