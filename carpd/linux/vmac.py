"""A vhid's virtual MAC: a macvlan that holds its addresses, like the BSD carp interface.

Created down at start; brought up with the addresses on becoming MASTER and down again
when leaving it, so only the MASTER ever answers for (or sends from) the virtual MAC and
a client's neighbour entry never has to change on failover.
"""

from __future__ import annotations

import contextlib
import logging

from carpd.linux import sysctl
from carpd.linux.netlink import Link, Netlink
from carpd.linux.sockets import AdvertSocketV4, Announcer

log = logging.getLogger("carpd")


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


class VirtualMac:
    def __init__(self, netlink: Netlink, name: str, mac: bytes) -> None:
        self.netlink = netlink
        self.name = name
        self.mac = mac
        self.link: Link | None = None
        self.up = False
        self.sock4: AdvertSocketV4 | None = None
        self.announcer: Announcer | None = None

    @property
    def index(self) -> int:
        assert self.link is not None
        return self.link.index

    async def create(self, parent: Link) -> None:
        self.link = await self.netlink.create_macvlan(self.name, parent.index, self.mac)
        # Every node has this MAC: no link-local address from it (its DAD would clash).
        with contextlib.suppress(OSError):
            sysctl.write("ipv6", self.name, "addr_gen_mode", "1")
            sysctl.write("ipv6", self.name, "accept_dad", "0")
        # A send-only socket: IPv4 adverts leave from the virtual MAC.
        self.sock4 = AdvertSocketV4(self.name, self.link.index, join=False)
        self.announcer = Announcer(self.name, self.link.index)
        log.info("%s: virtual MAC %s on %s", self.name, mac_text(self.mac), parent.name)

    async def set_up(self, up: bool) -> None:
        await self.netlink.set_up(self.index, up)
        self.up = up

    async def close(self) -> None:
        for s in (self.sock4, self.announcer):
            if s is not None:
                s.close()
        if self.link is not None:
            await self.netlink.delete_link(self.link.index)
            self.link = None
