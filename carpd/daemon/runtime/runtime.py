"""The asyncio runtime: feeds the core (receiver, timers, levers) and routes what it asks
for: adverts to the wire at once (transmit), host actions to the vhid's lane (host).
What it does to the host besides the lanes is setup.py's; the demotion sources and the
operator's levers are levers.py's; the kernel is reached through the Ports it is given."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from carpd.config import CarpConfig, Config
from carpd.core.actions import SendAdvert, SendVrrp, StateChanged
from carpd.core.demotion import Demotion
from carpd.core.model import Reason
from carpd.daemon.observers.configsync import ConfigSync, Drift
from carpd.daemon.observers.history import History
from carpd.daemon.observers.results import Results
from carpd.daemon.registry import Needs, beside_for, effects_for
from carpd.daemon.runtime.health import Health
from carpd.daemon.runtime.host import Host
from carpd.daemon.runtime.intake import Intake
from carpd.daemon.runtime.keeper import Keeper
from carpd.daemon.runtime.levers import Levers
from carpd.daemon.runtime.receiver import Receiver
from carpd.daemon.runtime.setup import Ports, Setup
from carpd.daemon.runtime.setup import StartupError as StartupError  # serve's
from carpd.daemon.runtime.ticks import Ticks
from carpd.daemon.runtime.transitions import Transitions
from carpd.daemon.runtime.transmit import Transmitter
from carpd.daemon.runtime.vhost import Carpdev, Vhost, make_router
from carpd.daemon.seam.events import Lifecycle, Publisher
from carpd.daemon.seam.integration import Integrations
from carpd.daemon.seam.lanes import Effect, Exiting, Lane
from carpd.daemon.seam.plan import works
from carpd.daemon.seam.ratelimit import RateLimiter
from carpd.daemon.seam.view import NodeView
from carpd.linux.linkwatch import LinkService

log = logging.getLogger("carpd")

# The wire lane: sent the moment the core asks (a tuple: isinstance's fastest form).
WIRE = (SendAdvert, SendVrrp)


class Daemon:
    def __init__(
        self, config: Config, ports: Ports | None = None, effects: tuple[Effect, ...] = ()
    ) -> None:
        self.config = config
        self.ports = ports or Ports()
        self.netlink = self.ports.netlink
        self.links = LinkService(self.ports.link_watcher())  # the one link watch, for all
        self.vhosts: dict[tuple[str, int], Vhost] = {}
        self.ledger = Demotion()
        self.ledger.declare_groups(g for c in config.carp for g in c.all_groups)
        self.publisher = Publisher(self.view)
        self.limiter = RateLimiter()
        self.receiver = Receiver(self.limiter, self.now, self._process)
        self.intake = Intake(self.receiver)
        self.setup = Setup(self.ports, self.intake)
        self.devs: dict[str, Carpdev] = self.setup.devs
        self.preflight = self.setup.preflight  # serve's, before anything is touched
        self.levers = lv = Levers(
            self.vhosts,
            self.devs,
            self.ledger,
            lambda: self.config.global_,
            self.publisher.publish,
            self.now,
            self._process,
        )
        # carpctl's levers (commands.py), as the daemon's own.
        self.find, self.set_enabled, self.force_state = lv.find, lv.set_enabled, lv.force_state
        self.adjust_group, self.link_event = lv.adjust_group, lv.link_event
        self.health = Health(config.global_, self.ledger, lv.apply_demotion)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.ticks: Ticks[Vhost] = Ticks(self._on_timer)  # the vhids' timers, batched
        self._stopping = asyncio.Event()
        self._retired: list[Lane] = []  # of vhids stopped on reload
        self.history = History()  # each vhid's recent transitions, and flaps
        self.results = Results()  # the last result of each hook and action
        self.publisher.subscribers += [self.history, self.results]
        self.drift = Drift(config.global_.state_dir)  # what `carpctl sync status` found
        # What status shows of each integration: the effects', config drift, and those
        # beside the lanes (ifstated, the real-time policy: made by start()).
        self.integrations = Integrations(lambda: self.host.effects)
        self.integrations.add(ConfigSync(lambda: self.drift))
        pub = self.publisher.publish
        self._needs = Needs(self.netlink, pub, lv, self.links, effects, self.view)
        self.host = Host(
            self.netlink,
            pub,
            self._effects(config),
            lambda vh: vh.view(self.ledger, self.now(), self._wall_offset(), self.history),
            self._needs.roles,
        )
        # A MASTER keeps its addresses; a node that is not MASTER holds none of them.
        self.keeper = Keeper(self.vhosts, self.host, self.links, lv.addresses_lost, self.now)
        self.integrations.add(self.keeper)
        self.transmitter = Transmitter(self.limiter, self.now, lv.senderr, self.vhosts)
        self.transitions = Transitions(
            self.publisher.publish, self.receiver.diagnose, self.now, self._wall_offset
        )

    def _effects(self, config: Config, current: Sequence[Effect] = ()) -> list[Effect]:
        return effects_for(config, current, self._needs)

    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    # -- start, run, stop ---------------------------------------------------------

    async def start(self) -> None:
        """Everything before the control socket: every vhid runs, the links are watched."""
        self._loop = asyncio.get_running_loop()
        self.levers.running = True
        beside = beside_for(self._needs)  # ifstated, the real-time policy
        await self.integrations.start(beside, self.config, self.publisher.subscribe)
        self.health.begin()
        await self.setup.remove_stale_addresses(list(self.config.carp))
        for cfg in self.config.carp:
            await self._start_vhost(cfg, self.config)
        self.health.start_checks()
        self.keeper.start(lambda: self.config.global_)
        self.levers.start_watching(self.links)

    async def run(self, ready: Callable[[], Any] | None = None) -> int:
        await self.start()
        if ready is not None:
            await ready()
        self.publisher.publish(Lifecycle("ready"))
        await self._stopping.wait()
        await self.stop()
        return 0

    def request_stop(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        """Hand every vhid over, close the effects, and put the host back as it was."""
        self.publisher.publish(Lifecycle("stopping"))
        await self.levers.stop_watching()
        await self.keeper.close()
        await self.health.close()
        for vh in list(self.vhosts.values()):
            self._stop_vhost(vh, Reason.SHUTDOWN)
        await self.settle()
        for effect in self.host.effects:
            await effect.close()
            if isinstance(effect, Exiting):  # after the hand-over: never before it
                await effect.at_exit()
        await self.integrations.close()  # those beside the lanes
        await self.links.close()  # after the effects: conntrackd's sync link until then
        await self.setup.restore([vh.vmac for vh in self.vhosts.values() if vh.vmac])
        self.ticks.close()
        await self.netlink.close()

    # -- vhids --------------------------------------------------------------------

    async def _new_vhost(self, cfg: CarpConfig, config: Config) -> Vhost:
        dev, new = await self.setup.carpdev(cfg.carpdev, config)
        if new:
            self.levers.carpdev_found(dev)
        cfg, sources = await self.setup.sources(cfg, config, dev)
        assert self._loop is not None
        lane = Lane(cfg.name, self._loop)
        vh = Vhost(cfg=cfg, machine=make_router(cfg, sources), dev=dev, lane=lane)
        await self.setup.refuse(cfg)
        if cfg.vmac:
            vh.vmac = await self.setup.vmac(cfg, dev)
        for fam in sources:
            dev.by_family[fam][cfg.vhid] = vh
        return vh

    async def _start_vhost(self, cfg: CarpConfig, config: Config) -> None:
        vh = await self._new_vhost(cfg, config)
        self.vhosts[(cfg.carpdev, cfg.vhid)] = vh
        now = self.now()
        vh.machine.set_demotion(self.ledger.total(cfg.all_groups, cfg.name), now)
        vh.machine.link_changed(vh.dev.link.up, now)
        vh.machine.start(now)
        self._process(vh)

    def _stop_vhost(self, vh: Vhost, reason: Reason) -> None:
        vh.machine.stop(self.now(), reason)
        self._process(vh)
        self.ticks.cancel(vh)
        for fam in vh.families:
            if vh.dev.by_family[fam].get(vh.cfg.vhid) is vh:
                del vh.dev.by_family[fam][vh.cfg.vhid]

    # -- reload (SIGHUP) ----------------------------------------------------------

    async def reload(self, config: Config) -> None:
        """Apply a new config. Vhids whose settings did not change keep their state."""
        await self.setup.preflight(config)
        self.publisher.publish(Lifecycle("reloading"))
        old = self.vhosts
        new_cfgs = {(c.carpdev, c.vhid): c for c in config.carp}
        kept, old_vmacs = 0, []
        for key, vh in list(old.items()):
            cfg = new_cfgs.get(key)
            if cfg is not None and cfg == vh.cfg:
                vh.cfg = cfg
                kept += 1
                continue
            self._stop_vhost(vh, Reason.CONFIG_CHANGED if cfg else Reason.VHID_REMOVED)
            await self.setup.let_in(vh)
            self._retired.append(vh.lane)
            if vh.vmac is not None:
                old_vmacs.append(vh.vmac)
            del old[key]
        # A changed vhid's old addresses must be gone before the new one may add them.
        await self.settle()
        await self.setup.close_vmacs(old_vmacs)
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
        await self.integrations.reconfigure(config)  # those beside the lanes
        started = [c for k, c in new_cfgs.items() if k not in old]
        await self.setup.remove_stale_addresses(started)
        for cfg in started:
            await self._start_vhost(cfg, config)
        self.setup.drop_idle()
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
                self.transmitter.send(vh, action)
            elif isinstance(action, StateChanged):
                self.transitions.announce(vh, action)
            else:
                host = True
        if host:  # each host action with the transition it serves, from this drain
            for work in works(drained):
                self.host.submit(vh, work)
        self.ticks.arm(vh, vh.machine.get_timer())

    async def settle(self) -> None:
        """Wait until every host step queued so far has been carried out."""
        self.host.flush()
        lanes = [vh.lane for vh in self.vhosts.values()] + self._retired
        await asyncio.gather(*(lane.settle() for lane in lanes))
        self._retired = [lane for lane in self._retired if lane.busy]

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
            actions=self.results.reports(),
            reports=self.integrations.reports(),
        )
