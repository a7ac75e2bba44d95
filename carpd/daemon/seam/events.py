"""Facts the runtime publishes after they happened, for subscribers that only observe
(the status page, metrics, sd_notify, the event stream, ifstated). A subscriber never
delays anything: it is called synchronously, must return at once, and its failure is
logged, not raised."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast, runtime_checkable

from carpd.core.model import Reason, State
from carpd.daemon.seam.view import NodeView, VhidKey
from carpd.linux.process import Outcome

log = logging.getLogger("carpd")


@dataclass(frozen=True, slots=True)
class RoleChanged:
    key: VhidKey
    old: State
    new: State
    reason: Reason
    at: float  # wall clock
    name: str  # the vhid's
    # The last valid advert from another node before it (wall clock), and the interval
    # that advert announced: the transition history's "silence before".
    last_heard: float | None = None
    heard_interval: float | None = None


@dataclass(frozen=True, slots=True)
class AddressesApplied:
    """After netlink answered: the vhid's addresses are now ``present`` (or not)."""

    key: VhidKey
    present: bool
    error: str | None


@dataclass(frozen=True, slots=True)
class AddressesRestored:
    """Another program changed a vhid's addresses; carpd put them right: ``present``
    (put back on a MASTER) or not (taken away from a node that is not MASTER)."""

    key: VhidKey
    addresses: tuple[str, ...]
    present: bool
    error: str | None


@dataclass(frozen=True, slots=True)
class DemotionChanged:
    totals: Mapping[VhidKey, int]


@dataclass(frozen=True, slots=True)
class LinkChanged:
    carpdev: str
    up: bool


@dataclass(frozen=True, slots=True)
class ActionRan:
    """A program run for a transition (a hook, an [[action]]) is done."""

    target: str  # the vhid's name, or "group NAME"
    action: str  # the [[action]] name, or "up hook", "down hook", "pre-release hook"
    phase: str  # "master", "backup" or "pre-release"
    state: str  # the target's state it ran for
    at: float  # wall clock, when it started
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class TrackChanged:
    """A [[track]] went up or down (after rise or fall, with its quorum)."""

    name: str
    up: bool
    why: str
    demotion: int  # what it adds now


@dataclass(frozen=True, slots=True)
class DrillDone:
    """`carpctl drill` ended on this node: passed, failed (rolled back) or refused."""

    result: str
    summary: str


@dataclass(frozen=True, slots=True)
class Lifecycle:
    phase: Literal["ready", "reloading", "reloaded", "stopping"]


Event = (
    RoleChanged
    | AddressesApplied
    | AddressesRestored
    | DemotionChanged
    | LinkChanged
    | ActionRan
    | DrillDone
    | TrackChanged
    | Lifecycle
)


@runtime_checkable
class Subscriber(Protocol):
    def notify(self, event: Event, view: NodeView) -> None: ...


class _LazyView:
    """The node's view, built on first use and then kept, for one event. Most
    subscribers ignore most events; building a view of every vhid for each event made
    255 takeovers O(N^2) (8.7 CPU-seconds where 0.6 had done)."""

    __slots__ = ("_build", "_view")

    def __init__(self, build: Callable[[], NodeView]) -> None:
        self._build = build
        self._view: NodeView | None = None

    def __getattr__(self, name: str) -> Any:
        if self._view is None:
            self._view = self._build()
        return getattr(self._view, name)


class Publisher:
    """Hands each event, with a fresh view (built only if a subscriber reads it), to
    every subscriber."""

    def __init__(self, view: Callable[[], NodeView]) -> None:
        self._view = view
        self.subscribers: list[Subscriber] = []

    def subscribe(self, something: object) -> None:
        """``something`` hears the events from now on, if it listens (a Subscriber)."""
        if isinstance(something, Subscriber):
            self.subscribers.append(something)

    def publish(self, event: Event) -> None:
        if not self.subscribers:
            return
        view = cast(NodeView, _LazyView(self._view))
        for sub in self.subscribers:
            try:
                sub.notify(event, view)
            except Exception:
                log.exception("carp: subscriber %s failed on %s", type(sub).__name__, event)
