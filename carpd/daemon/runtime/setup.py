"""What carpd does to the host besides the lanes, and puts back when it stops: the
carpdevs and their sockets, virtual MACs with their ARP sysctls, the accept filter,
addresses a crash left behind. The runtime asks; the ports say how (real or fake)."""

from __future__ import annotations

import contextlib
import grp
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from carpd.config import CarpConfig, Config
from carpd.core.model import IPAddress
from carpd.daemon.runtime.intake import Intake
from carpd.daemon.runtime.subnets import with_carpdev_prefixes
from carpd.daemon.runtime.vhost import Carpdev, Vhost, advert_sources, own_sources, refuses_traffic
from carpd.linux import sysctl
from carpd.linux.acceptmode import AcceptFilter, AcceptFilterError
from carpd.linux.linkwatch import LinkWatcher
from carpd.linux.netlink import Netlink
from carpd.linux.nft import NFT
from carpd.linux.sockets import AdvertSocketV4, AdvertSocketV6, Announcer
from carpd.linux.vmac import VirtualMac

log = logging.getLogger("carpd")

AdvertSocket = AdvertSocketV4 | AdvertSocketV6


@dataclass(frozen=True)
class Ports:
    """Where the daemon meets the kernel; tests pass fakes (tests/unit/fakes.py)."""

    netlink: Netlink = field(default_factory=Netlink)
    # (ifname, ifindex): a carpdev's sending sockets; the intake opens a second one of
    # the same type for known peers.
    socket4: Callable[[str, int], AdvertSocketV4] = AdvertSocketV4
    socket6: Callable[[str, int], AdvertSocketV6] = AdvertSocketV6
    announcer: Callable[[str, int], Announcer] = Announcer
    link_watcher: Callable[[], LinkWatcher] = LinkWatcher


class StartupError(Exception):
    """The host is not as the config expects (unknown interface, no source address)."""


class Setup:
    def __init__(self, ports: Ports, intake: Intake) -> None:
        self.ports = ports
        self.netlink = ports.netlink
        self.intake = intake
        self.devs: dict[str, Carpdev] = {}
        self.accept_filter = AcceptFilter()
        self._arp_saved: dict[str, dict[str, str]] = {}  # carpdev -> its ARP sysctls before us

    async def preflight(self, config: Config) -> None:
        """Refuse before touching anything if an interface or a source address is missing."""
        problems = []
        group = config.global_.control_group
        if group is not None:
            try:
                grp.getgrnam(group)
            except KeyError:
                problems.append(f"{config.source}: global.control_group = {group!r}: no such group")
        vips = {a.ip for c in config.carp for a in c.addresses}
        devs: dict[str, list[IPAddress] | None] = {}  # each carpdev looked up once: 255 vhids
        for cfg in config.carp:
            where = f"{config.source}: {cfg.name}"
            if cfg.carpdev not in devs:
                link = await self.netlink.link(cfg.carpdev)
                devs[cfg.carpdev] = (
                    None
                    if link is None
                    else [a.ip for a in await self.netlink.addresses(link.index)]
                )
            own = devs[cfg.carpdev]
            if own is None:
                problems.append(f"{where}: carpdev = {cfg.carpdev!r}: no such interface")
                continue
            _, missing = advert_sources(cfg, *own_sources(own, vips))
            problems += [f"{where}: {m}" for m in missing]
            if refuses_traffic(cfg) and not os.path.exists(NFT):
                problems.append(
                    f"{where}: accept = false needs the nft command (Debian package nftables)"
                )
        if problems:
            raise StartupError("\n".join(problems))

    async def carpdev(self, name: str, config: Config) -> tuple[Carpdev, bool]:
        """The carpdev, and whether it is new."""
        dev = self.devs.get(name)
        if dev is not None:
            return dev, False
        link = await self.netlink.link(name)
        if link is None:
            raise StartupError(f"carpdev {name!r}: no such interface")
        vips = {a.ip for c in config.carp for a in c.addresses}
        own = [a.ip for a in await self.netlink.addresses(link.index)]
        src4, src6 = own_sources(own, vips)
        announcer = self.ports.announcer(name, link.index)
        dev = self.devs[name] = Carpdev(link=link, src4=src4, src6=src6, announcer=announcer)
        return dev, True

    def send_socket(self, dev: Carpdev, family: int) -> AdvertSocket:
        """The carpdev's socket adverts of ``family`` are sent from (opened once)."""
        if family == 4:
            if dev.sock4 is None:
                dev.sock4 = self.ports.socket4(dev.name, dev.link.index)
            return dev.sock4
        if dev.sock6 is None:
            dev.sock6 = self.ports.socket6(dev.name, dev.link.index)
        return dev.sock6

    async def sources(
        self, cfg: CarpConfig, config: Config, dev: Carpdev
    ) -> tuple[CarpConfig, dict[int, IPAddress]]:
        """The vhid's config with its prefixes filled in, and its advert source of each
        family; the carpdev's adverts of those families are read from now on."""
        if cfg.prefix_from_carpdev:  # the ucarp command line's -a without a prefix
            vips = {a.ip for c in config.carp for a in c.addresses}
            own = await self.netlink.addresses(dev.link.index)
            cfg, notes = with_carpdev_prefixes(cfg, own, vips)
            for warn, line in notes:
                log.log(logging.WARNING if warn else logging.INFO, "%s", line)
        sources, missing = advert_sources(cfg, dev.src4, dev.src6)
        if missing:  # the carpdev lost an address since preflight
            raise StartupError("\n".join(f"{config.source}: {cfg.name}: {m}" for m in missing))
        for fam in sources:
            pinned = frozenset(p for p in cfg.peers if p.version == fam)
            self.intake.open(dev, fam, pinned, self.send_socket(dev, fam))
        return cfg, sources

    def drop_idle(self) -> None:
        """Close the carpdevs no vhid uses any more."""
        for name in [n for n, d in self.devs.items() if not any(d.by_family.values())]:
            self.intake.close(self.devs[name])
            self.devs.pop(name).close()

    async def refuse(self, cfg: CarpConfig) -> None:
        """accept = false: the vhid's addresses refuse traffic while it is not MASTER."""
        if refuses_traffic(cfg):
            try:
                await self.accept_filter.refuse(a.ip for a in cfg.addresses)
            except AcceptFilterError as e:
                raise StartupError(f"{cfg.name}: accept = false: {e}") from None

    async def let_in(self, vh: Vhost) -> None:
        """A stopped vhid's addresses are no longer refused (accept = false)."""
        if refuses_traffic(vh.cfg):
            try:
                await self.accept_filter.allow(a.ip for a in vh.cfg.addresses)
            except AcceptFilterError as e:
                log.error("%s: %s", vh.cfg.name, e)

    async def vmac(self, cfg: CarpConfig, dev: Carpdev) -> VirtualMac:
        # 00:00:5e:00:01:<vhid> (CARP and VRRP IPv4); 00:00:5e:00:02:<vrid> for IPv6 VRRP.
        v6_vrrp = cfg.protocol == "vrrp3" and all(a.version == 6 for a in cfg.addresses)
        vm = VirtualMac(
            self.netlink, cfg.name, bytes((0, 0, 0x5E, 0, 2 if v6_vrrp else 1, cfg.vhid))
        )
        await vm.create(dev.link)
        if dev.name not in self._arp_saved:
            # Only the interface holding an address answers ARP for it (the macvlan, not
            # the carpdev with its own MAC), and the carpdev's own ARP requests name its
            # own address, never a virtual one (or neighbours would learn the wrong MAC).
            self._arp_saved[dev.name] = {
                key: sysctl.write("ipv4", dev.name, key, value)
                for key, value in (("arp_ignore", "1"), ("arp_announce", "2"))
            }
        return vm

    async def close_vmacs(self, vmacs: list[VirtualMac]) -> None:
        for vm in vmacs:
            try:
                await vm.close()
            except Exception as e:  # keep closing the others
                log.error("%s: cannot remove the virtual MAC interface: %s", vm.name, e)

    async def remove_stale_addresses(self, cfgs: list[CarpConfig]) -> None:
        """A crash or kill -9 may have left our addresses behind: take them off."""
        wanted: dict[str, dict[IPAddress, str]] = {}  # carpdev: address: its vhid's name
        for cfg in cfgs:
            wanted.setdefault(cfg.carpdev, {}).update((a.ip, cfg.name) for a in cfg.addresses)
        for name, ours in wanted.items():  # each carpdev looked up once
            link = await self.netlink.link(name)
            if link is None:
                continue
            for have in await self.netlink.addresses(link.index):
                if have.ip in ours and await self.netlink.remove_address(link.index, have):
                    log.warning("%s: removed stale address %s from %s", ours[have.ip], have, name)

    async def restore(self, vmacs: list[VirtualMac]) -> None:
        """Shutting down, after the hand-over: the host as it was before us."""
        await self.close_vmacs(vmacs)
        for name, saved in self._arp_saved.items():
            for key, value in saved.items():
                with contextlib.suppress(OSError):
                    sysctl.write("ipv4", name, key, value)
        try:
            await self.accept_filter.close()  # the addresses' rules go with the table
        except AcceptFilterError as e:
            log.error("carp: %s", e)
        for dev in self.devs.values():
            self.intake.close(dev)
            dev.close()
        self.devs.clear()
