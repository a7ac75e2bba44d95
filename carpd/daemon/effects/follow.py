"""[[follow]] interfaces: the DHCP problem of "CARP and friends" (seed 004), built in.

The ISP hands out an address only by DHCP, and "CARP doesn't create a shared NIC, it
creates a shared IP address". So both firewalls give their external NIC the same MAC
and keep it down; the MASTER of its vhid (or group) brings it up and runs a DHCP client
on it, and as the MAC is the same, the new master gets the same lease.

- MASTER: the backup route removed, link up, the DHCP client started (it installs the
  leased address and the default route);
- BACKUP, and at start and stop: the DHCP client stopped (the lease released unless
  ``release = false``), the interface's addresses and routes flushed, link down, and
  the default route through ``backup_gateway`` (the peer) installed.

Each change is a background step of the interface's own chain, coalesced (last state
wins): nothing here holds the adverts or the vhid's own addresses, and nothing else in
the lane (conntrackd, hooks, actions) holds it.

While an interface is down, its ``backup_gateway`` route is kept: looked at every
ROUTE_CHECK seconds and put back if another program removed it. A look, not route
notifications: on a router that runs BGP, a full table churns thousands of route changes
a second, and carpd would decode every one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Sequence
from pathlib import Path

from carpd.config.model import Config, FollowConfig
from carpd.core.model import State
from carpd.daemon.seam.lanes import HostWork, Step
from carpd.daemon.seam.roles import Change, HostRoles, RoleFollower
from carpd.daemon.seam.view import VhidView
from carpd.linux.dhcp import DhcpClient
from carpd.linux.netlink import Netlink

log = logging.getLogger("carpd")

ROUTE_CHECK = 5.0  # seconds between two looks at a down interface's backup route


class Follow(RoleFollower):
    def __init__(self, config: Config, netlink: Netlink, roles: HostRoles) -> None:
        super().__init__(config.carp, config.follow, roles)
        self.cfgs = config.follow
        self.netlink = netlink
        self.state_dir: Path = config.global_.state_dir
        self.clients: dict[str, DhcpClient] = {}
        self._parked: set[str] = set()  # interfaces down, whose backup route is kept
        self._keeper: asyncio.Task[None] | None = None
        self.routes_restored = 0

    @staticmethod
    def tables_of(config: Config) -> Sequence[FollowConfig]:
        return config.follow

    def adopt(self, old: Follow | None) -> Follow:
        """On reload: take over the old follower's DHCP clients on interfaces that still
        follow with the same client (the old one's close stops only the rest)."""
        if old is not None:
            for cfg in self.cfgs:
                client = old.clients.get(cfg.interface)
                if client is not None and client.kind == cfg.dhcp:
                    self.clients[cfg.interface] = old.clients.pop(cfg.interface)
        return self

    def changed(self, change: Change, work: HostWork, vhid: VhidView) -> Sequence[Step]:
        steps = []
        for cfg in (f for f in self.cfgs if f.target == change.target):
            up = change.new is State.MASTER
            run = functools.partial(self._up if up else self._down, cfg)
            name, chain = (
                f"follow {cfg.interface} {'up' if up else 'down'}",
                f"follow {cfg.interface}",
            )
            steps.append(Step(name, run, cfg.timeout, blocking=False, coalesce=chain, chain=chain))
        return steps

    async def _link(self, cfg: FollowConfig) -> int:
        link = await self.netlink.link(cfg.interface)
        if link is None:
            raise RuntimeError(f"no interface {cfg.interface} to follow the role")
        if cfg.mac is not None and link.mac != bytes.fromhex(cfg.mac.replace(":", "")):
            await self.netlink.set_up(link.index, False)  # some drivers refuse it while up
            await self.netlink.set_mac(link.index, cfg.mac)
        return link.index

    async def _up(self, cfg: FollowConfig) -> None:
        self._parked.discard(cfg.interface)
        index = await self._link(cfg)
        if cfg.backup_gateway is not None:
            await self.netlink.default_route(cfg.backup_gateway, False)
        await self.netlink.set_up(index, True)
        if cfg.dhcp != "none":
            client = self.clients.setdefault(
                cfg.interface, DhcpClient(cfg.dhcp, cfg.interface, self.state_dir)
            )
            await client.start(cfg.release)
        log.info("%s: up and %s: following %s to MASTER", cfg.interface, cfg.dhcp, cfg.target)

    async def _down(self, cfg: FollowConfig) -> None:
        client = self.clients.pop(cfg.interface, None)
        if client is not None:
            await client.stop(cfg.release)
        elif cfg.dhcp != "none":  # at start: one a killed carpd left behind
            DhcpClient(cfg.dhcp, cfg.interface, self.state_dir).stop_stale()
        index = await self._link(cfg)
        await self.netlink.flush(index)
        await self.netlink.set_up(index, False)
        if cfg.backup_gateway is not None:
            await self.netlink.default_route(cfg.backup_gateway, True)
            self._parked.add(cfg.interface)
            if self._keeper is None:
                self._keeper = asyncio.get_running_loop().create_task(self._keep_routes())
        log.info("%s: down: following %s out of MASTER", cfg.interface, cfg.target)

    async def _keep_routes(self) -> None:
        while True:
            await asyncio.sleep(ROUTE_CHECK)
            for cfg in self.cfgs:
                gateway = cfg.backup_gateway
                if gateway is None or cfg.interface not in self._parked:
                    continue
                try:
                    if not await self.netlink.has_default_route(gateway):
                        await self.netlink.default_route(gateway, True)
                        self.routes_restored += 1
                        log.warning(
                            "%s: the default route through %s was removed by another "
                            "program: put back",
                            cfg.interface, gateway,
                        )  # fmt: skip
                except OSError as e:
                    log.error("%s: cannot put back the route through %s: %s",
                              cfg.interface, gateway, e)  # fmt: skip

    async def close(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        await super().close()
        for name, client in list(self.clients.items()):  # a backstop: the stop's step did it
            await client.stop(release=next(f.release for f in self.cfgs if f.interface == name))
        self.clients.clear()
