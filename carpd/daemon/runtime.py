"""The asyncio runtime: sockets in, core machines in the middle, netlink and hooks out."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import grp
import ipaddress
import logging
import operator
import os
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from carpd.config import CarpConfig, Config
from carpd.core.actions import (
    Action,
    AddAddresses,
    Announce,
    RemoveAddresses,
    RunHook,
    SendAdvert,
    SendVrrp,
    StateChanged,
)
from carpd.core.announce import gratuitous_arp, unsolicited_na
from carpd.core.auth import Authenticator
from carpd.core.demotion import Demotion
from carpd.core.errors import PacketError
from carpd.core.machine import VhostSettings, VirtualHost
from carpd.core.model import IPAddress, Reason, State
from carpd.core.packet import (
    CARP_GROUP_V4,
    CARP_GROUP_V6,
    CARP_VERSION,
    CarpPacket,
    build_ipv4,
)
from carpd.core.receive import (
    Datagram,
    Member,
    VhidClash,
    classify,
    ipv4_datagram,
    ipv6_datagram,
)
from carpd.core.vrrp import VRRP_VERSION, VrrpPacket
from carpd.core.vrrp_machine import VrrpRouter, VrrpSettings
from carpd.daemon.health import Health
from carpd.daemon.ratelimit import RateLimiter
from carpd.daemon.vmac import VirtualMac
from carpd.linux import sysctl
from carpd.linux.acceptmode import NFT, AcceptFilter, AcceptFilterError
from carpd.linux.hooks import HookCall, run_hook
from carpd.linux.linkwatch import LinkWatcher
from carpd.linux.netlink import Link, Netlink
from carpd.linux.sockets import AdvertSocketV4, AdvertSocketV6, Announcer

log = logging.getLogger("carpd")

SEND_ERRORS = 3  # consecutive failed adverts before the senderr demotion (FreeBSD, ucarp)

# What a refused advert usually means, for the log and for status (once per 10 min).
HINTS = {
    "bad_hmac": "adverts from {src} for vhid {vhid} fail the HMAC check: the peer has a "
    "different password, or a different address list (every address of a vhid is hashed)",
    "own_advert": "our own adverts come back to us from the network: a switch or virtual "
    "switch is reflecting multicast (e.g. NIC teaming on ESXi)",
    "not_a_peer": "adverts for vhid {vhid} from {src}, which is not in peers",
}


# The receive path's view of a vhid (Vhost.member).
MEMBER = operator.attrgetter("member")

# The wire lane: executed as soon as the core asks, never queued behind the host.
WIRE = (StateChanged, SendAdvert, SendVrrp)


class StartupError(Exception):
    """The host is not as the config expects (unknown interface, no source address)."""


@dataclass(eq=False)
class Vhost:
    cfg: CarpConfig
    machine: Machine
    dev: Carpdev
    timer: asyncio.TimerHandle | None = None
    hooks: asyncio.Task[None] | None = None
    pending: deque[Action] = field(default_factory=deque)
    worker: asyncio.Task[None] | None = None
    send_errors: int = 0  # consecutive failed adverts
    send_oks: int = 0  # consecutive good adverts
    send_demoted: bool = False
    diagnostics: dict[str, str] = field(default_factory=dict)
    vmac: VirtualMac | None = None

    @property
    def families(self) -> frozenset[int]:
        return self.machine.settings.families

    @functools.cached_property
    def member(self) -> Member:
        """What the receive path checks an advert for this vhid against (its config only
        changes by a restart of the vhid, so this is computed once)."""
        version = VRRP_VERSION if self.cfg.protocol == "vrrp3" else CARP_VERSION
        return Member(version, check_ttl=not self.cfg.peers)

    def destinations(self, family: int) -> list[IPAddress]:
        """Its unicast peers of that family, or the multicast group."""
        peers = [p for p in self.cfg.peers if p.version == family]
        return peers or [CARP_GROUP_V4 if family == 4 else CARP_GROUP_V6]


@dataclass(eq=False)
class Carpdev:
    link: Link
    src4: ipaddress.IPv4Address | None
    src6: ipaddress.IPv6Address | None
    announcer: Announcer
    sock4: AdvertSocketV4 | None = None
    sock6: AdvertSocketV6 | None = None
    by_family: dict[int, dict[int, Vhost]] = field(default_factory=lambda: {4: {}, 6: {}})
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.link.name

    def close(self) -> None:
        for s in (self.sock4, self.sock6):
            if s is not None:
                s.close()
        self.announcer.close()


def settings_for(cfg: CarpConfig) -> VhostSettings | VrrpSettings:
    families = frozenset(a.version for a in cfg.addresses)
    if cfg.protocol == "vrrp3":
        return VrrpSettings(
            vrid=cfg.vhid,
            priority=cfg.priority,
            interval_cs=cfg.interval_cs,
            preempt=cfg.preempt,
            accept=cfg.accept,
            families=families,
            neutral=cfg.neutral,
            addresses=tuple(a.ip for a in cfg.addresses),
        )
    return VhostSettings(
        vhid=cfg.vhid,
        advbase=int(cfg.advbase),
        advskew=cfg.advskew,
        preempt=cfg.preempt,
        tiebreak=cfg.tiebreak,
        deadratio=cfg.deadratio,
        families=families,
        neutral=cfg.neutral,
        peers=frozenset(cfg.peers),
        replay_protection=cfg.replay_protection,
    )


Machine = VirtualHost | VrrpRouter


def refuses_traffic(cfg: CarpConfig) -> bool:
    """VRRPv3 with Accept_Mode False: the addresses answer ARP/ND but take no packets."""
    return cfg.protocol == "vrrp3" and not cfg.accept


class Daemon:
    def __init__(self, config: Config, netlink: Netlink | None = None) -> None:
        self.config = config
        self.netlink = netlink or Netlink()
        self.devs: dict[str, Carpdev] = {}
        self.vhosts: dict[tuple[str, int], Vhost] = {}
        self.limiter = RateLimiter()
        self.ledger = Demotion()
        self.ledger.declare_groups(g for c in config.carp for g in c.all_groups)
        self.health = Health(config.global_, self.ledger, self.apply_demotion)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = asyncio.Event()
        self._pending_hooks: set[asyncio.Task[None]] = set()
        self._retired: list[asyncio.Task[None]] = []  # workers of vhids stopped on reload
        self._arp_saved: dict[str, dict[str, str]] = {}  # carpdev -> its ARP sysctls before us
        self._old_vmacs: list[VirtualMac] = []  # of vhids stopped on reload
        self.accept_filter = AcceptFilter()

    # -- set-up -------------------------------------------------------------------

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
        for cfg in config.carp:
            where = f"{config.source}: {cfg.name}"
            link = await self.netlink.link(cfg.carpdev)
            if link is None:
                problems.append(f"{where}: carpdev = {cfg.carpdev!r}: no such interface")
                continue
            own = [a.ip for a in await self.netlink.addresses(link.index) if a.ip not in vips]
            families = {a.version for a in cfg.addresses}
            if 4 in families and cfg.srcip is None and not any(a.version == 4 for a in own):
                problems.append(
                    f"{where}: carpdev {cfg.carpdev} has no IPv4 address of its own to send "
                    "adverts from: add one or set srcip"
                )
            if refuses_traffic(cfg) and not os.path.exists(NFT):
                problems.append(
                    f"{where}: accept = false needs the nft command (Debian package nftables)"
                )
            if 6 in families and not any(a.version == 6 and a.is_link_local for a in own):
                problems.append(
                    f"{where}: carpdev {cfg.carpdev} has no IPv6 link-local address to send "
                    "adverts from"
                )
        if problems:
            raise StartupError("\n".join(problems))

    async def _carpdev(self, name: str, config: Config) -> Carpdev:
        dev = self.devs.get(name)
        if dev is not None:
            return dev
        link = await self.netlink.link(name)
        if link is None:
            raise StartupError(f"carpdev {name!r}: no such interface")
        vips = {a.ip for c in config.carp for a in c.addresses}
        own = [a.ip for a in await self.netlink.addresses(link.index) if a.ip not in vips]
        src4 = next((a for a in own if isinstance(a, ipaddress.IPv4Address)), None)
        src6 = next(
            (a for a in own if isinstance(a, ipaddress.IPv6Address) and a.is_link_local), None
        )
        dev = Carpdev(link=link, src4=src4, src6=src6, announcer=Announcer(name, link.index))
        self.devs[name] = dev
        if not link.up:
            log.warning("carp: carpdev %s is down", name)
            if self.ledger.set_source(
                f"carpdev {name} down", config.global_.ifdown_demotion_factor
            ):
                self.apply_demotion()
        return dev

    async def _new_vhost(self, cfg: CarpConfig, config: Config) -> Vhost:
        dev = await self._carpdev(cfg.carpdev, config)
        settings = settings_for(cfg)
        sources: dict[int, IPAddress] = {}
        if 4 in settings.families:
            src4 = cfg.srcip or dev.src4
            if src4 is None:
                raise StartupError(
                    f"{config.source}: {cfg.name}: carpdev {dev.name} has no IPv4 address "
                    "of its own to send adverts from: add one or set srcip"
                )
            sources[4] = src4
            if dev.sock4 is None:
                dev.sock4 = AdvertSocketV4(dev.name, dev.link.index)
                self._watch(dev.sock4.fileno(), self._on_v4, dev)
        if 6 in settings.families:
            if dev.src6 is None:
                raise StartupError(
                    f"{config.source}: {cfg.name}: carpdev {dev.name} has no IPv6 "
                    "link-local address to send adverts from"
                )
            sources[6] = dev.src6
            if dev.sock6 is None:
                dev.sock6 = AdvertSocketV6(dev.name, dev.link.index)
                self._watch(dev.sock6.fileno(), self._on_v6, dev)
        machine: Machine
        if isinstance(settings, VrrpSettings):
            machine = VrrpRouter(settings, own_sources=sources)
        else:
            addrs = [a.ip for a in cfg.addresses]
            auth = Authenticator(cfg.password, cfg.vhid, addrs, cfg.hmac_variant)
            # Replay protection needs counters that keep increasing across restarts.
            start = time.time_ns() if cfg.replay_protection else random.getrandbits(64)
            machine = VirtualHost(settings, auth, counter_start=start, own_sources=sources)
        vh = Vhost(cfg=cfg, machine=machine, dev=dev)
        if refuses_traffic(cfg):
            try:
                await self.accept_filter.refuse(a.ip for a in cfg.addresses)
            except AcceptFilterError as e:
                raise StartupError(f"{cfg.name}: accept = false: {e}") from None
        if cfg.vmac:
            vh.vmac = await self._make_vmac(cfg, dev)
        for fam in settings.families:
            dev.by_family[fam][cfg.vhid] = vh
        return vh

    async def _make_vmac(self, cfg: CarpConfig, dev: Carpdev) -> VirtualMac:
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

    def _watch(self, fd: int, callback: Callable[[Carpdev], None], dev: Carpdev) -> None:
        assert self._loop is not None
        self._loop.add_reader(fd, callback, dev)

    async def remove_stale_addresses(self, cfgs: list[CarpConfig]) -> None:
        """A crash or kill -9 may have left our addresses behind: take them off."""
        for cfg in cfgs:
            link = await self.netlink.link(cfg.carpdev)
            if link is None:
                continue
            wanted = {a.ip for a in cfg.addresses}
            for have in await self.netlink.addresses(link.index):
                if have.ip in wanted and await self.netlink.remove_address(link.index, have):
                    log.warning("%s: removed stale address %s from %s", cfg.name, have, link.name)

    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    async def _start_vhost(self, cfg: CarpConfig, config: Config) -> None:
        vh = await self._new_vhost(cfg, config)
        self.vhosts[(cfg.carpdev, cfg.vhid)] = vh
        now = self.now()
        vh.machine.set_demotion(self.ledger.total(cfg.all_groups), now)
        vh.machine.link_changed(vh.dev.link.up, now)
        vh.machine.start(now)
        self._process(vh)

    # -- demotion and administrative levers ---------------------------------------

    def apply_demotion(self) -> None:
        """The ledger changed: give every vhid its new total (a MASTER advertises it)."""
        if self._loop is None:
            return
        now = self.now()
        for vh in self.vhosts.values():
            vh.machine.set_demotion(self.ledger.total(vh.cfg.all_groups), now)
            self._process(vh)

    def adjust_group(self, name: str, delta: int) -> int:
        count = self.ledger.adjust_group(name, delta)
        log.warning("carp: group %s demote count %+d to %d (carpdemote)", name, delta, count)
        self.apply_demotion()
        return count

    def link_event(self, name: str, up: bool) -> None:
        dev = self.devs.get(name)
        if dev is None or dev.link.up == up:
            return
        dev.link = dataclasses.replace(dev.link, up=up)
        factor = self.config.global_.ifdown_demotion_factor
        log.warning("carp: carpdev %s %s", name, "up" if up else "down")
        now = self.now()
        for vh in self.vhosts.values():
            if vh.dev is dev:
                vh.machine.link_changed(up, now)
                self._process(vh)
        # FreeBSD's ifdown_demotion_factor: node-wide, so with preempt on the peer takes
        # every vhid and this node is never left half master.
        if self.ledger.set_source(f"carpdev {name} down", 0 if up else factor):
            self.apply_demotion()

    def find(self, name: str) -> Vhost:
        for vh in self.vhosts.values():
            if vh.cfg.name == name:
                return vh
        known = ", ".join(vh.cfg.name for vh in self.vhosts.values())
        raise LookupError(f"no vhid named {name!r} (have: {known})")

    def set_enabled(self, name: str, up: bool) -> None:
        vh = self.find(name)
        if up:
            vh.machine.admin_up(self.now())
        else:
            vh.machine.admin_down(self.now())
        self._process(vh)

    def force_state(self, name: str, state: State) -> None:
        vh = self.find(name)
        if vh.machine.state is State.INIT:
            raise LookupError(f"{name} is in INIT (carpdev down or taken down): not forcing")
        vh.machine.force_state(state, self.now())
        self._process(vh)

    # -- the loop -----------------------------------------------------------------

    async def run(self, ready: Callable[[], Any] | None = None) -> int:
        self._loop = asyncio.get_running_loop()
        self.health.begin()
        await self.remove_stale_addresses(list(self.config.carp))
        for cfg in self.config.carp:
            await self._start_vhost(cfg, self.config)
        self.health.start_checks()
        watch = self._loop.create_task(self._watch_links())
        if ready is not None:
            await ready()
        await self._stopping.wait()
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        await self.health.close()
        await self._shutdown()
        return 0

    async def _watch_links(self) -> None:
        watcher = LinkWatcher()
        await watcher.start()
        try:
            # Whatever changed between our first look and the subscription.
            for name in list(self.devs):
                up = watcher.is_up(name)
                self.link_event(name, bool(up))
            async for event in watcher.events():
                self.link_event(event.name, event.up)
        finally:
            await watcher.close()

    def request_stop(self) -> None:
        self._stopping.set()

    async def _shutdown(self) -> None:
        for vh in list(self.vhosts.values()):
            self._stop_vhost(vh, Reason.SHUTDOWN)
        await self._settle()
        await self._wait_hooks()
        await self._close_vmacs([vh.vmac for vh in self.vhosts.values() if vh.vmac])
        for name, saved in self._arp_saved.items():
            for key, value in saved.items():
                with contextlib.suppress(OSError):
                    sysctl.write("ipv4", name, key, value)
        try:
            await self.accept_filter.close()  # the addresses' rules go with the table
        except AcceptFilterError as e:
            log.error("carp: %s", e)
        for dev in self.devs.values():
            self._unwatch(dev)
            dev.close()
        self.devs.clear()
        await self.netlink.close()

    def _unwatch(self, dev: Carpdev) -> None:
        assert self._loop is not None
        for s in (dev.sock4, dev.sock6):
            if s is not None:
                self._loop.remove_reader(s.fileno())

    async def _let_in(self, vh: Vhost) -> None:
        """A stopped vhid's addresses are no longer refused (accept = false)."""
        if refuses_traffic(vh.cfg):
            try:
                await self.accept_filter.allow(a.ip for a in vh.cfg.addresses)
            except AcceptFilterError as e:
                log.error("%s: %s", vh.cfg.name, e)

    def _stop_vhost(self, vh: Vhost, reason: Reason) -> None:
        vh.machine.stop(self.now(), reason)
        self._process(vh)
        if vh.timer is not None:
            vh.timer.cancel()
            vh.timer = None
        for fam in vh.families:
            if vh.dev.by_family[fam].get(vh.cfg.vhid) is vh:
                del vh.dev.by_family[fam][vh.cfg.vhid]

    async def _close_vmacs(self, vmacs: list[VirtualMac]) -> None:
        for vm in vmacs:
            try:
                await vm.close()
            except Exception as e:  # keep closing the others
                log.error("%s: cannot remove the virtual MAC interface: %s", vm.name, e)

    async def _wait_hooks(self) -> None:
        if self._pending_hooks:
            await asyncio.gather(*self._pending_hooks, return_exceptions=True)

    # -- reload (SIGHUP) ----------------------------------------------------------

    async def reload(self, config: Config) -> None:
        """Apply a new config. Vhids whose settings did not change keep their state."""
        await self.preflight(config)
        old = self.vhosts
        new_cfgs = {(c.carpdev, c.vhid): c for c in config.carp}
        kept = 0
        for key, vh in list(old.items()):
            cfg = new_cfgs.get(key)
            same = cfg is not None and cfg == vh.cfg and settings_for(cfg) == vh.machine.settings
            if same:
                assert cfg is not None
                vh.cfg = cfg
                kept += 1
                continue
            self._stop_vhost(vh, Reason.CONFIG_CHANGED if cfg else Reason.VHID_REMOVED)
            await self._let_in(vh)
            if vh.worker is not None:
                self._retired.append(vh.worker)
            if vh.vmac is not None:
                self._old_vmacs.append(vh.vmac)
            del old[key]
        # A changed vhid's old addresses must be gone before the new one may add them.
        await self._settle()
        await self._close_vmacs(self._old_vmacs)
        self._old_vmacs.clear()
        self.config = config
        # Everything derived from the configuration follows it.
        self.ledger.declare_groups(g for c in config.carp for g in c.all_groups)
        self.health.reconfigure(config.global_)
        started = [c for k, c in new_cfgs.items() if k not in old]
        await self.remove_stale_addresses(started)
        for cfg in started:
            await self._start_vhost(cfg, config)
        for name in [n for n, d in self.devs.items() if not any(d.by_family.values())]:
            self._unwatch(self.devs[name])
            self.devs.pop(name).close()
        log.info("configuration reloaded: %d vhid(s) unchanged, %d (re)started", kept, len(started))

    # -- receive ------------------------------------------------------------------

    def _on_v4(self, dev: Carpdev) -> None:
        assert dev.sock4 is not None
        for _ in range(64):  # drain what is queued, but let timers run under a flood
            try:
                data = dev.sock4.recv()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # e.g. ENETDOWN while the carpdev goes away
                self._recv_error(dev, e)
                return
            try:
                dg = ipv4_datagram(data)
            except PacketError as e:
                self._dropped(dev, e, "?")
                continue
            self._datagram(dev, dg)

    def _on_v6(self, dev: Carpdev) -> None:
        assert dev.sock6 is not None
        for _ in range(64):
            try:
                data, src, dst, hoplimit = dev.sock6.recv()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._recv_error(dev, e)
                return
            self._datagram(dev, ipv6_datagram(data, src, dst, hoplimit))

    def _datagram(self, dev: Carpdev, dg: Datagram) -> None:
        """The core's receive path (classify): version, vhid, protocol, TTL rule."""
        vhosts = dev.by_family[dg.family]
        try:
            vh, pkt = classify(dg, vhosts, MEMBER)
        except VhidClash as e:
            other = "a VRRP router" if e.version == VRRP_VERSION else "a CARP node"
            text = f"vhid {e.vhid} is also used by {other} at {dg.src}"
            self.diagnose(vhosts[e.vhid], "vhid-clash", text)
            self._dropped(dev, e, dg.src)
            return
        except PacketError as e:
            self._dropped(dev, e, dg.src)
            return
        self._receive(vh, pkt, dg.family, dg.src)

    def _receive(
        self, vh: Vhost, pkt: CarpPacket | VrrpPacket, family: int, src: IPAddress
    ) -> None:
        try:
            vh.machine.receive(pkt, family, src, self.now())  # type: ignore[arg-type]
        except PacketError as e:
            # Counted on the vhid it claimed to be for, not again on the carpdev.
            vh.machine.counters.drop(e.reason)
            self._log_drop(vh.dev, e, src)
            hint = HINTS.get(e.reason)
            if hint is not None:
                self.diagnose(vh, e.reason, hint.format(src=src, vhid=vh.cfg.vhid))
        self._process(vh)

    def diagnose(self, vh: Vhost, kind: str, text: str) -> None:
        """A known misconfiguration: logged once per 10 min, and kept for status."""
        vh.diagnostics[kind] = text
        if self.limiter.allow((vh.cfg.name, "diagnosis", kind), self.now(), 600.0) is not None:
            log.warning("%s: %s", vh.cfg.name, text)

    def _recv_error(self, dev: Carpdev, err: OSError) -> None:
        if self.limiter.allow((dev.name, "recv"), self.now()) is not None:
            log.warning("carp: receive failed on %s: %s", dev.name, err)

    def _dropped(self, dev: Carpdev, err: PacketError, src: object) -> None:
        dev.dropped[err.reason] = dev.dropped.get(err.reason, 0) + 1
        self._log_drop(dev, err, src)

    def _log_drop(self, dev: Carpdev, err: PacketError, src: object) -> None:
        hidden = self.limiter.allow((dev.name, err.reason, str(src)), self.now())
        if hidden is None:
            return
        more = f" ({hidden} more suppressed)" if hidden else ""
        level = logging.DEBUG if err.reason == "unknown_vhid" else logging.WARNING
        log.log(level, "carp: %s from %s on %s: %s%s", err.reason, src, dev.name, err, more)

    # -- timers and actions -------------------------------------------------------

    def _on_timer(self, vh: Vhost) -> None:
        vh.timer = None
        vh.machine.handle_timer(self.now())
        self._process(vh)

    def _process(self, vh: Vhost) -> None:
        """Two lanes: the wire (adverts, and the transitions' log lines) goes out at once
        and never waits; the host (addresses, announcements, hooks) runs in order, each
        address change awaited before what follows it. A slow netlink call (or, later, a
        conntrackd commit) must never hold a MASTER's adverts past a peer's master-down
        timer."""
        for action in vh.machine.drain():
            if isinstance(action, WIRE):
                self._execute_logged(vh, action)
            else:
                vh.pending.append(action)
        self._arm(vh)
        if vh.worker is None:
            self._run_pending(vh)

    def _execute_logged(self, vh: Vhost, action: Action) -> None:
        try:
            self._execute(vh, action)
        except OSError as e:
            log.error("%s: %s failed: %s", vh.cfg.name, type(action).__name__, e)

    def _run_pending(self, vh: Vhost) -> None:
        """The host lane: a vhid's host actions in order, an address change (netlink)
        awaited before anything after it."""
        while vh.pending:
            action = vh.pending.popleft()
            if isinstance(action, AddAddresses | RemoveAddresses):
                assert self._loop is not None
                vh.worker = self._loop.create_task(self._change_addresses(vh, action))
                return
            self._execute_logged(vh, action)

    async def _change_addresses(self, vh: Vhost, action: AddAddresses | RemoveAddresses) -> None:
        vm = vh.vmac
        index = vm.index if vm is not None else vh.dev.link.index
        try:
            if vm is not None and isinstance(action, AddAddresses):
                await vm.set_up(True)
            for a in vh.cfg.addresses:
                if isinstance(action, AddAddresses):
                    await self.netlink.add_address(index, a)
                else:
                    await self.netlink.remove_address(index, a)
            if vm is not None and isinstance(action, RemoveAddresses):
                await vm.set_up(False)
        except Exception as e:  # netlink refused: log it, keep the protocol running
            verb = "add" if isinstance(action, AddAddresses) else "remove"
            log.error("%s: cannot %s addresses on %s: %s", vh.cfg.name, verb, vh.dev.name, e)
        finally:
            vh.worker = None
        self._run_pending(vh)

    async def _settle(self) -> None:
        """Wait until every queued address change and action has been carried out."""
        while True:
            workers = [vh.worker for vh in self.vhosts.values() if vh.worker is not None]
            workers += [w for w in self._retired if not w.done()]
            if not workers:
                return
            await asyncio.gather(*workers, return_exceptions=True)

    def _arm(self, vh: Vhost) -> None:
        deadline = vh.machine.get_timer()
        if vh.timer is not None and (deadline is None or vh.timer.when() != deadline):
            vh.timer.cancel()
            vh.timer = None
        if deadline is not None and vh.timer is None:
            assert self._loop is not None
            vh.timer = self._loop.call_at(deadline, self._on_timer, vh)

    def _execute(self, vh: Vhost, action: Action) -> None:
        cfg, dev = vh.cfg, vh.dev
        if isinstance(action, StateChanged):
            if (
                action.reason is Reason.MASTER_TIMED_OUT
                and vh.machine.counters.adverts_received == 0
            ):
                where = f"from peers {', '.join(map(str, cfg.peers))}" if cfg.peers else "at all"
                self.diagnose(
                    vh,
                    "silence",
                    f"became MASTER without having heard any advert {where}: if another node "
                    "should be MASTER, its adverts do not reach us (protocol 112 or multicast "
                    "filtered? unicast peers help where multicast is blocked)",
                )
            level = logging.INFO if State.INIT in (action.old, action.new) else logging.WARNING
            log.log(
                level,
                "%s: state transition: %s -> %s (%s)",
                cfg.name,
                action.old,
                action.new,
                action.reason,
            )
        elif isinstance(action, SendAdvert):
            self._send(vh, action.payload)
        elif isinstance(action, SendVrrp):
            self._send_vrrp(vh, action.family, action.packet)
        elif isinstance(action, Announce):
            announcer, mac = dev.announcer, dev.link.mac
            if vh.vmac is not None and vh.vmac.announcer is not None:
                announcer, mac = vh.vmac.announcer, vh.vmac.mac
            for a in cfg.addresses:
                if isinstance(a, ipaddress.IPv4Interface):
                    announcer.send_arp(gratuitous_arp(mac, a.ip))
                else:
                    announcer.send_na(unsolicited_na(mac, a.ip))
        elif isinstance(action, RunHook):
            self._hook(vh, action)

    def _sock4(self, vh: Vhost) -> AdvertSocketV4 | None:
        """IPv4 adverts leave from the virtual MAC while it is up, so switches keep learning
        it (and RFC 5798 7.3 wants it for VRRP). IPv6 ones need a link-local source, which
        only the carpdev has."""
        return vh.vmac.sock4 if vh.vmac is not None and vh.vmac.up else vh.dev.sock4

    def _send(self, vh: Vhost, payload: bytes) -> None:
        dev = vh.dev
        sock4, sock6 = self._sock4(vh), dev.sock6
        ok = True
        for fam in sorted(vh.families):
            try:
                if fam == 4 and sock4 is not None:
                    src = vh.machine.own_sources[4]
                    assert isinstance(src, ipaddress.IPv4Address)
                    for dst in vh.destinations(4):
                        assert isinstance(dst, ipaddress.IPv4Address)
                        ident = random.getrandbits(16)
                        sock4.send(build_ipv4(src, dst, payload, ident), dst)
                elif fam == 6 and sock6 is not None:
                    for dst in vh.destinations(6):
                        assert isinstance(dst, ipaddress.IPv6Address)
                        sock6.send(payload, dst)
            except OSError as e:
                ok = False
                vh.machine.counters.drop("send_error")
                hidden = self.limiter.allow((dev.name, "send", fam), self.now())
                if hidden is not None:
                    log.warning(
                        "%s: ip%s_output failed: %s", vh.cfg.name, fam if fam == 6 else "", e
                    )
        self._count_send(vh, ok)

    def _send_vrrp(self, vh: Vhost, family: int, pkt: VrrpPacket) -> None:
        """VRRP's checksum covers a pseudo-header, so each destination gets its own."""
        dev = vh.dev
        src = vh.machine.own_sources[family]
        sock4 = self._sock4(vh)
        ok = True
        for dst in vh.destinations(family):
            try:
                payload = pkt.encode(src, dst)
                if isinstance(src, ipaddress.IPv4Address) and sock4 is not None:
                    assert isinstance(dst, ipaddress.IPv4Address)
                    ident = random.getrandbits(16)
                    # keepalived's TOS (network control); TTL 255 as the RFC requires.
                    sock4.send(build_ipv4(src, dst, payload, ident, tos=0xC0), dst)
                elif isinstance(src, ipaddress.IPv6Address) and dev.sock6 is not None:
                    assert isinstance(dst, ipaddress.IPv6Address)
                    dev.sock6.send(payload, dst, src)
            except OSError as e:
                ok = False
                vh.machine.counters.drop("send_error")
                if self.limiter.allow((dev.name, "send", family), self.now()) is not None:
                    log.warning(
                        "%s: ip%s_output failed: %s", vh.cfg.name, "6" if family == 6 else "", e
                    )
        self._count_send(vh, ok)

    def _count_send(self, vh: Vhost, ok: bool) -> None:
        """FreeBSD's senderr demotion: 3 failed adverts in a row demote the node, then 3
        good ones in a row lift it."""
        if ok:
            vh.send_errors, vh.send_oks = 0, vh.send_oks + 1
        else:
            vh.send_errors, vh.send_oks = vh.send_errors + 1, 0
        if not vh.send_demoted and vh.send_errors >= SEND_ERRORS:
            vh.send_demoted = True
        elif vh.send_demoted and vh.send_oks >= SEND_ERRORS:
            vh.send_demoted = False
        else:
            return
        failing = [v.cfg.name for v in self.vhosts.values() if v.send_demoted]
        amount = self.config.global_.senderr_demotion_factor if failing else 0
        if self.ledger.set_source("send errors", amount):
            what = f"send errors on {', '.join(failing)}" if failing else "send ok"
            log.warning("carp: %s", what)
            assert self._loop is not None
            self._loop.call_soon(self.apply_demotion)  # not from inside an action

    def _hook(self, vh: Vhost, action: RunHook) -> None:
        cfg, kind = vh.cfg, action.kind
        path = cfg.up if kind == "up" else cfg.down
        if not path:
            return
        call = HookCall(
            name=cfg.name,
            kind=kind,
            path=str(path),
            interface=cfg.carpdev,
            addresses=[str(a.ip) for a in cfg.addresses],
            xparam=cfg.xparam,
            vhid=cfg.vhid,
            state=str(action.state),
        )
        previous = vh.hooks
        timeout = self.config.global_.hook_timeout

        async def chained() -> None:
            # Hooks of one vhid run one at a time, in the order of its transitions.
            if previous is not None:
                with contextlib.suppress(Exception):
                    await previous
            await run_hook(call, timeout)

        task = asyncio.get_running_loop().create_task(chained())
        vh.hooks = task
        self._pending_hooks.add(task)
        task.add_done_callback(self._pending_hooks.discard)
