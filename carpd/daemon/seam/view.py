"""What every reader of the node's state sees: a frozen snapshot, never a live object.

`carpctl status` (and its JSON), the status page and the metrics all read a `NodeView`
built in one place (``Daemon.view``); nothing reaches into the machines. Each
integration's part is its own typed report (daemon/integration.py), keyed by its name.
Counters are copied into the view, so they are pulled when someone looks, never pushed
as events (a flood of forged adverts is not a flood of events).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from carpd.config import CarpConfig
from carpd.core.model import IPAddress, Reason, State
from carpd.daemon.seam.integration import Report

VhidKey = tuple[str, int]  # (carpdev, vhid)


@dataclass(frozen=True, slots=True)
class CounterSnapshot:
    adverts_sent: int
    adverts_received: int
    transitions: int
    dropped: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class DiagnosisView:
    """A known cause of trouble (``warning``) or a fact worth knowing (``info``), true
    now: it was last seen at ``last`` (wall clock), first at ``since``."""

    kind: str
    level: str
    text: str
    since: float
    last: float

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "level": self.level,
            "text": self.text,
            "since": when(self.since),
            "last": when(self.last),
        }


@dataclass(frozen=True, slots=True)
class StepReport:
    """How the host lane's steps of one name have done (see lanes.StepStats)."""

    name: str
    runs: int
    failed: int
    late: int
    last_duration: float | None
    last_error: str | None
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """A host step of the last transition's plan (daemon/plan.py), as status shows it."""

    step: str
    blocking: bool
    deadline: float | None  # seconds; None: bounded inside (a hook's own timeout)
    chain: str | None  # its integration; for a background step, the queue it waits in

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "blocking": self.blocking,
            "deadline": self.deadline,
            "chain": self.chain,
        }


@dataclass(frozen=True, slots=True)
class ActionReport:
    """How a program run for transitions (a hook, an [[action]]) did, the last time."""

    target: str  # the vhid's name, or "group NAME"
    action: str
    phase: str
    state: str
    at: float  # wall clock of the last run's start
    status: int | None  # None: killed, or did not start (error says which)
    duration: float
    error: str | None
    stderr: str  # its tail
    runs: int
    failed: int

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "action": self.action,
            "phase": self.phase,
            "state": self.state,
            "runs": self.runs,
            "failed": self.failed,
            "last_run": when(self.at, ms=True),
            "status": self.status,
            "duration": round(self.duration, 3),
            "error": self.error,
            "stderr": self.stderr,
        }


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """One transition, with the silence before it: the last advert heard from another
    node, how long before, and how many adverts that silence should have held."""

    at: float  # wall clock
    old: State
    new: State
    reason: Reason
    last_advert: float | None  # wall clock; None: never heard one
    gap: float | None  # seconds from that advert to the transition
    missed: int | None  # whole advert intervals in the gap (the interval it announced)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": when(self.at, ms=True),
            "from": self.old.value,
            "to": self.new.value,
            "reason": str(self.reason),
            "last_advert": when(self.last_advert, ms=True),
            "gap": None if self.gap is None else round(self.gap, 3),
            "adverts_missed": self.missed,
        }


@dataclass(frozen=True, slots=True)
class VhidView:
    cfg: CarpConfig  # what effects read their settings from (frozen)
    state: State
    last_reason: Reason | None
    last_transition: float | None  # wall clock (time.time())
    master: IPAddress | None
    params: Mapping[str, Any]  # the protocol's own settings (Router.params)
    demotion: int
    demotion_reasons: tuple[tuple[str, int], ...]
    preempt: bool
    enabled: bool
    link_up: bool
    vmac: bool
    diagnostics: tuple[DiagnosisView, ...]
    counters: CounterSnapshot
    host_steps: tuple[StepReport, ...]
    last_heard: float | None = None  # wall clock of the last advert from another node
    heard_interval: float | None = None  # the advert interval that advert announced
    history: tuple[TransitionRecord, ...] = ()  # the latest last
    flapping: bool = False
    transition_counts: Mapping[tuple[str, str], int] = field(default_factory=dict)
    plan: tuple[PlannedStep, ...] = ()  # the host steps of the last transition, in order

    @property
    def key(self) -> VhidKey:
        return (self.cfg.carpdev, self.cfg.vhid)

    @property
    def name(self) -> str:
        return self.cfg.name


@dataclass(frozen=True, slots=True)
class NodeView:
    node: str  # [global] node_name, or the host name
    pid: int
    config: str  # the config file
    maintenance: bool
    demotion: Mapping[str, int]  # node-wide sources
    groups: Mapping[str, int]  # interface groups' carpdemote counters
    services: Mapping[str, Any] | None  # the last service check report
    vhids: tuple[VhidView, ...]
    dropped: Mapping[str, Mapping[str, int]]  # per carpdev, before a vhid was known
    actions: tuple[ActionReport, ...] = ()  # hooks and [[action]]s, by target and name
    reports: Mapping[str, Report] = field(default_factory=dict)  # each integration's

    def vhid(self, name: str) -> VhidView:
        return next(v for v in self.vhids if v.name == name)


# Keys the page and scripts have always found in status, None while their integration is
# off; one added later is there only while it reports.
ALWAYS_SHOWN = ("state_sync", "pools", "ifstated", "config_sync", "realtime")


def when(wall: float | None, ms: bool = False) -> str | None:
    if wall is None:
        return None
    # One localtime and one strftime: status formats a few of these per vhid.
    millis = f".{int(wall * 1000) % 1000:03d}" if ms else ""
    return time.strftime(f"%Y-%m-%dT%H:%M:%S{millis}%z", time.localtime(wall))


def accepting(v: VhidView) -> bool | None:
    """Does this node take what is sent to the vhid's addresses? Only a MASTER has them
    (None otherwise); a VRRPv3 one with accept = false drops it (RFC 5798 Accept_Mode)."""
    if v.state is not State.MASTER:
        return None
    return v.cfg.protocol != "vrrp3" or v.cfg.accept


# Transitions per vhid in the brief status (carpctl's text shows as many; --json has them all).
BRIEF_HISTORY = 3


def vhid_json(v: VhidView, brief: bool = False) -> dict[str, Any]:
    """``brief``: what carpctl's text status shows and no more (no counters, peers, groups,
    pool or plan; the last BRIEF_HISTORY transitions; only the host steps that failed or
    were late), so that a loop of ``carpctl status`` over 255 vhids stays cheap."""
    cfg = v.cfg
    if brief:
        return {
            **_vhid_head(v),
            "history": [r.to_json() for r in v.history[-BRIEF_HISTORY:]],
            "host_steps": [_step(s) for s in v.host_steps if s.late or s.last_error],
        }
    c = v.counters
    return {
        **_vhid_head(v),
        "peers": [str(p) for p in cfg.peers],
        "groups": list(cfg.all_groups),
        "pool": (
            {"name": cfg.pool.name, "bucket": cfg.pool.index, "of": cfg.pool.count}
            if cfg.pool is not None
            else None
        ),
        "history": [r.to_json() for r in v.history],
        "counters": {
            "adverts_sent": c.adverts_sent,
            "adverts_received": c.adverts_received,
            "transitions": c.transitions,
            "dropped": dict(c.dropped),
        },
        "host_steps": [_step(s) for s in v.host_steps],
        "plan": [p.to_json() for p in v.plan],
    }


def _step(s: StepReport) -> dict[str, Any]:
    return {
        "name": s.name,
        "runs": s.runs,
        "failed": s.failed,
        "late": s.late,
        "skipped": s.skipped,
        "last_duration": s.last_duration,
        "last_error": s.last_error,
    }


def _vhid_head(v: VhidView) -> dict[str, Any]:
    """What both the full and the brief status show of a vhid."""
    cfg = v.cfg
    return {
        "name": cfg.name,
        "vhid": cfg.vhid,
        "carpdev": cfg.carpdev,
        "state": v.state.value,
        **v.params,
        "vmac": v.vmac,
        "diagnostics": [d.to_json() for d in v.diagnostics],
        "demotion": v.demotion,
        "demotion_reasons": [{"reason": r, "amount": a} for r, a in v.demotion_reasons],
        "preempt": v.preempt,
        "enabled": v.enabled,
        "link_up": v.link_up,
        "addresses": [str(a) for a in cfg.addresses],
        "accepting": accepting(v),
        "master": str(v.master) if v.master is not None else None,
        "last_transition": when(v.last_transition),
        "last_reason": str(v.last_reason) if v.last_reason is not None else None,
        "last_advert_heard": when(v.last_heard, ms=True),  # carpctl status: heard how long ago
        "flapping": v.flapping,
    }


def to_json(view: NodeView, text: bool = False) -> dict[str, Any]:
    """`carpctl status --json`; ``text``: for carpctl's text status, each vhid brief and
    with ``report_lines``, the integrations' lines (carpctl cannot import their reports:
    it knows only this)."""
    shown: dict[str, Any] = {
        **dict.fromkeys(ALWAYS_SHOWN),
        **{name: r.to_json() for name, r in view.reports.items()},
    }
    if text:
        shown["report_lines"] = [line for r in view.reports.values() for line in r.lines()]
    return {
        "node": view.node,
        "pid": view.pid,
        "config": view.config,
        "maintenance": view.maintenance,
        "demotion": dict(view.demotion),
        "groups": dict(view.groups),
        "services": dict(view.services) if view.services is not None else None,
        "vhosts": [vhid_json(v, brief=text) for v in view.vhids],
        "dropped": {dev: dict(d) for dev, d in view.dropped.items()},
        "actions": [a.to_json() for a in view.actions],
        **shown,
    }
