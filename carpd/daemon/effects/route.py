"""Routes that follow the role (issue 13): while MASTER of a vhid, its addresses are also
on a dummy device as host addresses (/32, /128), so a BGP daemon on the node announces
them (BIRD's ``protocol direct``, FRR's ``redistribute connected``) and the fabric routes
them here. Clouds and routed fabrics move an address this way, not by ARP.

- MASTER: after the addresses are up and announced (the gratuitous ARP never waits for
  the route), add them to the device;
- leaving MASTER (BACKUP, stop, a vhid taken down): before the addresses go, remove them
  from the device, so the route is withdrawn first, within ``timeout``.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import logging
from collections.abc import Sequence

from carpd.config.model import RouteConfig
from carpd.core.actions import Announce, RemoveAddresses
from carpd.core.model import State
from carpd.daemon.seam.lanes import HostWork, Step
from carpd.daemon.seam.view import VhidView
from carpd.linux.netlink import Netlink

log = logging.getLogger("carpd")

ANNOUNCE = "route announce"
WITHDRAW = "route withdraw"
CHAIN = "route"


def host_routes(vhid: VhidView) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    return [ipaddress.ip_interface(f"{a.ip}/{a.max_prefixlen}") for a in vhid.cfg.addresses]


class Routes:
    def __init__(self, cfg: RouteConfig, netlink: Netlink) -> None:
        self.cfg = cfg
        self.netlink = netlink  # the daemon's own: one socket, changes serialized

    async def close(self) -> None:
        pass

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
        changed = []
        for route in host_routes(vhid):
            if present:
                done = await self.netlink.add_address(link.index, route)
            else:
                done = await self.netlink.remove_address(link.index, route)
            if done:
                changed.append(str(route))
        if changed:
            verb = "announcing" if present else "withdrawing"
            log.info("%s: %s %s on %s", vhid.name, verb, " ".join(changed), self.cfg.device)
