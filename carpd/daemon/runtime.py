"""The asyncio runtime: feeds the core (receiver, timers, levers) and routes what it asks
for: adverts to the wire at once (transmit), host actions to the vhid's lane (host)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import grp
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from carpd.config import CarpConfig, Config
from carpd.core.actions import SendAdvert, SendVrrp, StateChanged
from carpd.core.demotion import SENDERR, STATE_SYNC, Demotion, ifdown_source
from carpd.core.model import Reason, State
from carpd.daemon.diagnosis import Level
from carpd.daemon.drift import Drift
from carpd.daemon.effects.assemble import Needs, effects_for
from carpd.daemon.effects.conntrack import Conntrack
from carpd.daemon.effects.pool import Pools
from carpd.daemon.events import DemotionChanged, Lifecycle, LinkChanged, Publisher, RoleChanged
from carpd.daemon.health import Health
from carpd.daemon.history import History
from carpd.daemon.host import Host
from carpd.daemon.intake import Intake
from carpd.daemon.lanes import Effect, Lane
from carpd.daemon.plan import works
from carpd.daemon.ratelimit import RateLimiter
from carpd.daemon.receiver import Receiver
from carpd.daemon.results import Results
from carpd.daemon.subnets import with_carpdev_prefixes
from carpd.daemon.ticks import Ticks
from carpd.daemon.transmit import Transmitter
from carpd.daemon.vhost import (
    Carpdev,
    Vhost,
    advert_sources,
    make_router,
    own_sources,
    refuses_traffic,
)
from carpd.daemon.view import NodeView
from carpd.linux import sysctl
from carpd.linux.acceptmode import AcceptFilter, AcceptFilterError
from carpd.linux.linkwatch import LinkWatcher
from carpd.linux.netlink import Netlink
from carpd.linux.nft import NFT
from carpd.linux.sockets import Announcer
from carpd.linux.vmac import VirtualMac

log = logging.getLogger("carpd")


# The wire lane: sent the moment the core asks (a tuple: isinstance's fastest form).
WIRE = (SendAdvert, SendVrrp)


class StartupError(Exception):
    """The host is not as the config expects (unknown interface, no source address)."""


class Daemon:
    def __init__(
        self, config: Config, netlink: Netlink | None = None, effects: tuple[Effect, ...] = ()
    ) -> None:
        self.config = config
        self.netlink = netlink or Netlink()
        self.devs: dict[str, Carpdev] = {}
        self.vhosts: dict[tuple[str, int], Vhost] = {}
        self.limiter = RateLimiter()
        self.ledger = Demotion()
        self.ledger.declare_groups(g for c in config.carp for g in c.all_groups)
        self.health = Health(config.global_, self.ledger, self.apply_demotion)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.ticks: Ticks[Vhost] = Ticks(self._on_timer)  # the vhids' timers, batched
        self._stopping = asyncio.Event()
        self._retired: list[Lane] = []  # of vhids stopped on reload
        self._arp_saved: dict[str, dict[str, str]] = {}  # carpdev -> its ARP sysctls before us
        self._old_vmacs: list[VirtualMac] = []  # of vhids stopped on reload
        self.accept_filter = AcceptFilter()
        self.publisher = Publisher(self.view)
        self.history = History()  # each vhid's recent transitions, and flaps
        self.publisher.subscribers.append(self.history)
        self.results = Results()  # the last result of each hook and action
        self.drift = Drift(config.global_.state_dir)  # what `carpctl sync status` found
        # Integrations beside the runtime that status shows (ifstated): set by serve.
        self.reports: dict[str, Callable[[], dict[str, Any]]] = {}
        self.publisher.subscribers.append(self.results)
        self._needs = Needs(
            self.netlink, self.publisher.publish, self._state_sync_demotion, effects
        )
        self.host = Host(
            self.netlink,
            self.publisher.publish,
            self._effects(config),
            lambda vh: vh.view(self.ledger, self.now(), self._wall_offset(), self.history),
        )
        self.transmitter = Transmitter(self.limiter, self.now, self._senderr)
        self.receiver = Receiver(self.limiter, self.now, self._process)
        self.intake = Intake(self.receiver)

    def _effects(self, config: Config, current: Sequence[Effect] = ()) -> list[Effect]:
        now = {vh.cfg.name: vh.machine.state for vh in self.vhosts.values()}
        return effects_for(config, current, self._needs, now)

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
            own = [a.ip for a in await self.netlink.addresses(link.index)]
            _, missing = advert_sources(cfg, *own_sources(own, vips))
            problems += [f"{where}: {m}" for m in missing]
            if refuses_traffic(cfg) and not os.path.exists(NFT):
                problems.append(
                    f"{where}: accept = false needs the nft command (Debian package nftables)"
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
        own = [a.ip for a in await self.netlink.addresses(link.index)]
        src4, src6 = own_sources(own, vips)
        dev = Carpdev(link=link, src4=src4, src6=src6, announcer=Announcer(name, link.index))
        self.devs[name] = dev
        if not link.up:
            log.warning("carp: carpdev %s is down", name)
            if self.ledger.set_source(ifdown_source(name), config.global_.ifdown_demotion_factor):
                self.apply_demotion()
        return dev

    async def _new_vhost(self, cfg: CarpConfig, config: Config) -> Vhost:
        dev = await self._carpdev(cfg.carpdev, config)
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
            self.intake.open(dev, fam, frozenset(p for p in cfg.peers if p.version == fam))
        assert self._loop is not None
        lane = Lane(cfg.name, self._loop)
        vh = Vhost(cfg=cfg, machine=make_router(cfg, sources), dev=dev, lane=lane)
        if refuses_traffic(cfg):
            try:
                await self.accept_filter.refuse(a.ip for a in cfg.addresses)
            except AcceptFilterError as e:
                raise StartupError(f"{cfg.name}: accept = false: {e}") from None
        if cfg.vmac:
            vh.vmac = await self._make_vmac(cfg, dev)
        for fam in sources:
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
        totals = {vh.key: vh.machine.demotion for vh in self.vhosts.values()}
        self.publisher.publish(DemotionChanged(totals))

    def _state_sync_demotion(self, amount: int, why: str) -> None:
        """pfsync's carp demotion, in FreeBSD's words: "demoted by 240 to 240 (...)"."""
        old = self.ledger.sources.get(STATE_SYNC, 0)
        if self.ledger.set_source(STATE_SYNC, amount):
            total = sum(self.ledger.sources.values())
            log.warning("carp: demoted by %d to %d (%s)", amount - old, total, why)
            self.apply_demotion()

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
        self.publisher.publish(LinkChanged(name, up))
        now = self.now()
        for vh in self.vhosts.values():
            if vh.dev is dev:
                vh.machine.link_changed(up, now)
                self._process(vh)
        # FreeBSD's ifdown_demotion_factor: node-wide, so with preempt on the peer takes
        # every vhid and this node is never left half master.
        if self.ledger.set_source(ifdown_source(name), 0 if up else factor):
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
        self.publisher.publish(Lifecycle("ready"))
        await self._stopping.wait()
        self.publisher.publish(Lifecycle("stopping"))
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
        for effect in self.host.effects:
            await effect.close()
            if isinstance(effect, Conntrack):  # after the hand-over: never before it
                await effect.at_exit()
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
            self.intake.close(dev)
            dev.close()
        self.devs.clear()
        self.ticks.close()
        await self.netlink.close()

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
        self.ticks.cancel(vh)
        for fam in vh.families:
            if vh.dev.by_family[fam].get(vh.cfg.vhid) is vh:
                del vh.dev.by_family[fam][vh.cfg.vhid]

    async def _close_vmacs(self, vmacs: list[VirtualMac]) -> None:
        for vm in vmacs:
            try:
                await vm.close()
            except Exception as e:  # keep closing the others
                log.error("%s: cannot remove the virtual MAC interface: %s", vm.name, e)

    # -- reload (SIGHUP) ----------------------------------------------------------

    async def reload(self, config: Config) -> None:
        """Apply a new config. Vhids whose settings did not change keep their state."""
        await self.preflight(config)
        self.publisher.publish(Lifecycle("reloading"))
        old = self.vhosts
        new_cfgs = {(c.carpdev, c.vhid): c for c in config.carp}
        kept = 0
        for key, vh in list(old.items()):
            cfg = new_cfgs.get(key)
            if cfg is not None and cfg == vh.cfg:
                vh.cfg = cfg
                kept += 1
                continue
            self._stop_vhost(vh, Reason.CONFIG_CHANGED if cfg else Reason.VHID_REMOVED)
            await self._let_in(vh)
            self._retired.append(vh.lane)
            if vh.vmac is not None:
                self._old_vmacs.append(vh.vmac)
            del old[key]
        # A changed vhid's old addresses must be gone before the new one may add them.
        await self._settle()
        await self._close_vmacs(self._old_vmacs)
        self._old_vmacs.clear()
        if config.global_.state_dir != self.config.global_.state_dir:
            self.drift = Drift(config.global_.state_dir)
        self.config = config
        # Everything derived from the configuration follows it.
        self.ledger.declare_groups(g for c in config.carp for g in c.all_groups)
        self.health.reconfigure(config.global_)
        effects = self._effects(config, self.host.effects)
        for gone in [e for e in self.host.effects if e not in effects]:
            await gone.close()
        self.host.effects = effects
        started = [c for k, c in new_cfgs.items() if k not in old]
        await self.remove_stale_addresses(started)
        for cfg in started:
            await self._start_vhost(cfg, config)
        for name in [n for n, d in self.devs.items() if not any(d.by_family.values())]:
            self.intake.close(self.devs[name])
            self.devs.pop(name).close()
        log.info("configuration reloaded: %d vhid(s) unchanged, %d (re)started", kept, len(started))
        self.publisher.publish(Lifecycle("reloaded"))

    # -- timers and actions -------------------------------------------------------

    def _on_timer(self, vh: Vhost, now: float, held: float) -> None:
        vh.machine.handle_timer(now, held)
        self._process(vh)

    def _process(self, vh: Vhost) -> None:
        """Two lanes: the wire (adverts, and the transitions' log lines) goes out at once
        and never waits; the host lane (addresses, announcements, and the effects' steps
        around them: hooks, later conntrackd) runs in order, one awaited step at a time.
        A slow netlink call or conntrackd commit must never hold a MASTER's adverts past a
        peer's master-down timer."""
        drained = vh.machine.drain()
        host = False
        for action in drained:
            if isinstance(action, WIRE):
                self.transmitter.send(vh, action, self.vhosts.values())
            elif isinstance(action, StateChanged):
                self._transition(vh, action)
            else:
                host = True
        if host:  # each host action with the transition it serves, from this drain
            for work in works(drained):
                self.host.submit(vh, work)
        self.ticks.arm(vh, vh.machine.get_timer())

    async def _settle(self) -> None:
        """Wait until every host step queued so far has been carried out."""
        self.host.flush()
        lanes = [vh.lane for vh in self.vhosts.values()] + self._retired
        await asyncio.gather(*(lane.settle() for lane in lanes))
        self._retired = [lane for lane in self._retired if lane.busy]

    def _diagnose_silence(self, vh: Vhost) -> None:
        """MASTER by a timeout without any advert heard, until one is: the first node of
        a cluster is alone, and says so as a fact; unicast peers' silence is a fault."""
        heard = vh.machine.counters.adverts_received
        if heard:
            return
        level: Level = "info"
        text = (
            "became MASTER without having heard any advert: no other node is running yet, "
            "or its adverts do not reach us (protocol 112 or multicast filtered? unicast "
            "peers help where multicast is blocked)"
        )
        if vh.cfg.peers:
            level = "warning"
            text = (
                "became MASTER without having heard any advert from peers "
                f"{', '.join(map(str, vh.cfg.peers))}: they are down, or their adverts do not "
                "reach us (protocol 112 filtered?)"
            )
        self.receiver.diagnose(vh, "silence", text, level, heard=heard)

    def _transition(self, vh: Vhost, action: StateChanged) -> None:
        cfg = vh.cfg
        if action.reason is Reason.MASTER_TIMED_OUT:
            self._diagnose_silence(vh)
        level = logging.INFO if State.INIT in (action.old, action.new) else logging.WARNING
        log.log(
            level,
            "%s: state transition: %s -> %s (%s)",
            cfg.name,
            action.old,
            action.new,
            action.reason,
        )
        offset = self._wall_offset()
        heard = vh.machine.last_heard
        self.publisher.publish(
            RoleChanged(
                vh.key,
                action.old,
                action.new,
                action.reason,
                self.now() + offset,
                cfg.name,
                None if heard is None else heard + offset,
                vh.machine.heard_interval,
            )
        )

    def _senderr(self, failing: list[str]) -> None:
        """FreeBSD's senderr demotion, node-wide, while any vhid fails to send."""
        amount = self.config.global_.senderr_demotion_factor if failing else 0
        if self.ledger.set_source(SENDERR, amount):
            what = f"send errors on {', '.join(failing)}" if failing else "send ok"
            log.warning("carp: %s", what)
            assert self._loop is not None
            self._loop.call_soon(self.apply_demotion)  # not from inside an action

    # -- what readers see ---------------------------------------------------------

    def _wall_offset(self) -> float:
        return time.time() - self.now()

    def view(self) -> NodeView:
        """The one place a snapshot of the node is built (status, and every subscriber)."""
        now, offset = self.now(), self._wall_offset()
        report = self.health.last_report
        return NodeView(
            node=self.config.global_.node_name or socket.gethostname(),
            pid=os.getpid(),
            config=self.config.source,
            maintenance=self.health.maintenance,
            demotion=dict(self.ledger.sources),
            groups=dict(self.ledger.groups),
            services=report.to_json() if report is not None else None,
            vhids=tuple(
                vh.view(self.ledger, now, offset, self.history) for vh in self.vhosts.values()
            ),
            dropped={d.name: dict(d.dropped) for d in self.devs.values()},
            state_sync=next(
                (e.report() for e in self.host.effects if isinstance(e, Conntrack)), None
            ),
            actions=self.results.reports(),
            pools=next((e.report() for e in self.host.effects if isinstance(e, Pools)), None),
            config_sync=self.drift.report(),
            ifstated=self.reports["ifstated"]() if "ifstated" in self.reports else None,
            realtime=self.reports["realtime"]() if "realtime" in self.reports else None,
        )
