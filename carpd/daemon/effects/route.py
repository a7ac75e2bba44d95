"""Routes that follow the role (issue 13): while MASTER of a vhid, its addresses are also
on a dummy device as host addresses (/32, /128), so a BGP daemon on the node announces
them (BIRD's ``protocol direct``, FRR's ``redistribute connected``) and the fabric routes
them here. Clouds and routed fabrics move an address this way, not by ARP.

- MASTER: after the addresses are up and announced (the gratuitous ARP never waits for
  the route), add them to the device;
- leaving MASTER (BACKUP, stop, a vhid taken down): before the addresses go, remove them
  from the device, so the route is withdrawn first, within ``timeout``;
- while MASTER, a host address another program removed from the device (an ``ip addr
  flush``, a network manager) is put back at once: the route would be withdrawn from the
  fabric while the node still holds the address.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ipaddress
import logging
from collections.abc import Callable, Sequence

from carpd.config.model import RouteConfig
from carpd.core.actions import Announce, RemoveAddresses
from carpd.core.model import State
from carpd.daemon.seam.lanes import HostWork, Step
from carpd.daemon.seam.roles import HostRoles
from carpd.daemon.seam.view import VhidView
from carpd.linux.linkwatch import AddressEvent, IPInterface, LinkService
from carpd.linux.netlink import Netlink

log = logging.getLogger("carpd")

ANNOUNCE = "route announce"
WITHDRAW = "route withdraw"
CHAIN = "route"


def host_routes(vhid: VhidView) -> list[IPInterface]:
    return [ipaddress.ip_interface(f"{a.ip}/{a.max_prefixlen}") for a in vhid.cfg.addresses]


class Routes:
    def __init__(
        self,
        cfg: RouteConfig,
        netlink: Netlink,
        links: LinkService | None = None,
        roles: HostRoles | None = None,
    ) -> None:
        self.cfg = cfg
        self.netlink = netlink  # the daemon's own: one socket, changes serialized
        self.roles = roles or HostRoles()
        self.links = links  # the daemon's link watch (None in a test: nothing kept)
        self._held: dict[str, tuple[int, list[IPInterface]]] = {}  # vhid -> its device's
        self._unwatch: Callable[[], None] = lambda: None
        self._tasks: set[asyncio.Task[None]] = set()
        self.restored = 0

    async def close(self) -> None:
        self._unwatch()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _removed(self, event: AddressEvent) -> None:
        if event.present:
            return
        for name, (index, routes) in self._held.items():
            ours = index == event.index and event.address in routes
            if ours and self.roles.state(name) is State.MASTER:
                task = asyncio.ensure_future(self._put_back(name, event.address))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _put_back(self, name: str, route: IPInterface) -> None:
        held = self._held.get(name)
        if held is None or self.roles.state(name) is not State.MASTER:
            return  # withdrawn meanwhile
        try:
            if await self.netlink.add_address(held[0], route):
                self.restored += 1
                log.warning(
                    "%s: %s removed from %s by another program: put back",
                    name, route, self.cfg.device,
                )  # fmt: skip
        except OSError as e:
            log.error("%s: cannot put back %s on %s: %s", name, route, self.cfg.device, e)

    def before(self, work: HostWork, vhid: VhidView) -> Sequence[Step]:
        if isinstance(work.action, RemoveAddresses):
            run = functools.partial(self._apply, vhid, False)
            return [Step(WITHDRAW, run, self.cfg.timeout, chain=CHAIN)]
        return ()

    def after(self, work: HostWork, vhid: VhidView) -> Sequence[Step]:
        # Behind the takeover's announcement, not a repeated one (no cause): the ARP
        # caches on the segment move first; the fabric's route may take a BGP round.
        cause = work.cause
        if isinstance(work.action, Announce) and cause is not None and cause.new is State.MASTER:
            run = functools.partial(self._apply, vhid, True)
            return [Step(ANNOUNCE, run, self.cfg.timeout, chain=CHAIN)]
        return ()

    async def _apply(self, vhid: VhidView, present: bool) -> None:
        try:
            link = await self.netlink.ensure_dummy(self.cfg.device)
        except OSError as e:  # NetlinkError is one
            if getattr(e, "code", None) == errno.EOPNOTSUPP:
                raise RuntimeError(
                    f"cannot make the dummy device {self.cfg.device}: this kernel has no "
                    "dummy driver (CONFIG_DUMMY); set route.device to an existing "
                    'interface, e.g. "lo"'
                ) from None
            raise
        if self.links is not None and not self._held and present:
            self._unwatch()
            self._unwatch = self.links.watch_addresses(self._removed)
        routes = host_routes(vhid)
        if present:
            self._held[vhid.name] = (link.index, routes)
        else:
            self._held.pop(vhid.name, None)  # before the removal: not put back
        changed = []
        for route in routes:
            if present:
                done = await self.netlink.add_address(link.index, route)
            else:
                done = await self.netlink.remove_address(link.index, route)
            if done:
                changed.append(str(route))
        if changed:
            verb = "announcing" if present else "withdrawing"
            log.info("%s: %s %s on %s", vhid.name, verb, " ".join(changed), self.cfg.device)
