"""What the runtime keeps per carpdev and per vhid, and the one place a vhid's config
becomes a protocol machine (CARP or VRRPv3)."""

from __future__ import annotations

import functools
import ipaddress
import random
import time
from dataclasses import dataclass, field
from typing import Any

from carpd.config import CarpConfig
from carpd.core.actions import StateChanged
from carpd.core.auth import Authenticator
from carpd.core.demotion import Demotion
from carpd.core.machine import VhostSettings, VirtualHost
from carpd.core.model import IPAddress
from carpd.core.packet import CARP_GROUP_V4, CARP_GROUP_V6, CARP_VERSION
from carpd.core.receive import Member
from carpd.core.router import Router
from carpd.core.vrrp import VRRP_VERSION
from carpd.core.vrrp_machine import VrrpRouter, VrrpSettings
from carpd.daemon.observers.history import History
from carpd.daemon.runtime.sources import advert_sources as advert_sources
from carpd.daemon.runtime.sources import own_sources as own_sources
from carpd.daemon.runtime.sources import refuses_traffic as refuses_traffic
from carpd.daemon.seam.diagnosis import Diagnosis
from carpd.daemon.seam.lanes import Lane
from carpd.daemon.seam.view import CounterSnapshot, PlannedStep, StepReport, VhidView
from carpd.linux.netlink import Link
from carpd.linux.sockets import AdvertSocketV4, AdvertSocketV6, Announcer
from carpd.linux.vmac import VirtualMac


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


def make_router(cfg: CarpConfig, sources: dict[int, IPAddress]) -> Router[Any]:
    settings = settings_for(cfg)
    if isinstance(settings, VrrpSettings):
        return VrrpRouter(settings, own_sources=sources)
    auth = Authenticator(cfg.password, cfg.vhid, [a.ip for a in cfg.addresses], cfg.hmac_variant)
    # Replay protection needs counters that keep increasing across restarts.
    start = time.time_ns() if cfg.replay_protection else random.getrandbits(64)
    return VirtualHost(settings, auth, counter_start=start, own_sources=sources)


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


@dataclass(eq=False)
class Vhost:
    cfg: CarpConfig
    machine: Router[Any]
    dev: Carpdev
    lane: Lane
    send_errors: int = 0  # consecutive failed adverts
    send_oks: int = 0  # consecutive good adverts
    # Per family, a VRRP advert's datagrams ready to send, with the action and socket
    # they were built for (transmit.py).
    wire: dict[int, Any] = field(default_factory=dict)
    send_demoted: bool = False
    diagnostics: dict[str, Diagnosis] = field(default_factory=dict)  # by kind
    hinted: dict[str, IPAddress] = field(default_factory=dict)  # diagnosis -> its source
    vmac: VirtualMac | None = None
    plan: tuple[PlannedStep, ...] = ()  # the host steps of the last transition (Host.flush)
    plan_cause: StateChanged | None = None  # that transition

    @property
    def key(self) -> tuple[str, int]:
        return (self.cfg.carpdev, self.cfg.vhid)

    @property
    def address_index(self) -> int:
        """The interface its addresses are on: its macvlan, or the carpdev."""
        return self.vmac.index if self.vmac is not None else self.dev.link.index

    @property
    def families(self) -> frozenset[int]:
        return self.machine.families

    @functools.cached_property
    def member(self) -> Member:
        """What the receive path checks an advert for this vhid against (its config only
        changes by a restart of the vhid, so this is computed once)."""
        version = VRRP_VERSION if self.cfg.protocol == "vrrp3" else CARP_VERSION
        return Member(version, check_ttl=not self.cfg.peers_routed)

    def destinations(self, family: int) -> tuple[IPAddress, ...]:
        """Its unicast peers of that family, or the multicast group."""
        return self._destinations[family]

    @functools.cached_property
    def _destinations(self) -> dict[int, tuple[IPAddress, ...]]:
        # Once: a reload that changes the peers restarts the vhid (a new Vhost).
        out = {}
        for family, group in ((4, CARP_GROUP_V4), (6, CARP_GROUP_V6)):
            peers = tuple(p for p in self.cfg.peers if p.version == family)
            out[family] = peers or (group,)
        return out

    def view(
        self, ledger: Demotion, now: float, wall_offset: float, history: History | None = None
    ) -> VhidView:
        """A frozen copy for readers at loop time ``now``; ``wall_offset`` turns loop time
        into wall time."""
        m, c = self.machine, self.machine.counters
        last, heard = m.last_transition, m.last_heard
        return VhidView(
            cfg=self.cfg,
            state=m.state,
            last_reason=m.last_reason,
            last_transition=None if last is None else last + wall_offset,
            master=m.master,
            params=m.params(),
            demotion=m.demotion,
            demotion_reasons=tuple(ledger.reasons(self.cfg.all_groups, self.cfg.name)),
            preempt=m.settings.preempt,
            enabled=m.enabled,
            link_up=m.link_up,
            vmac=self.vmac is not None,
            diagnostics=tuple(
                d.view(wall_offset)
                for _, d in sorted(self.diagnostics.items())
                if d.active(now, c.adverts_received)
            ),
            counters=CounterSnapshot(
                c.adverts_sent, c.adverts_received, c.transitions, dict(c.dropped)
            ),
            host_steps=tuple(
                StepReport(name, s.runs, s.failed, s.late, s.last_duration, s.last_error, s.skipped)
                for name, s in self.lane.stats.items()
            ),
            last_heard=None if heard is None else heard + wall_offset,
            heard_interval=m.heard_interval,
            history=history.of(self.key) if history else (),
            flapping=history is not None and history.is_flapping(self.key, now + wall_offset),
            transition_counts=dict(history.counts.get(self.key, {})) if history else {},
            plan=self.plan,
        )
