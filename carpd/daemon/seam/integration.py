"""The integration contract: what something beside the CARP core (conntrackd, the pools,
ifstated, the real-time policy, ...) offers the daemon, and the one registry status reads.

An integration has a ``name`` (its key in ``carpctl status --json`` and ``/api/status``),
a ``report()`` (a frozen dataclass it owns, or None while it has nothing to show) and a
``close()``. It may also be an ``Effect`` (steps around host actions; ``registry.effects_for`` makes
those) and/or a ``Subscriber`` (events). Its report renders itself twice: ``to_json()``
for the JSON readers (the page, scripts) and ``lines()`` for carpctl's text; a report
with figures worth graphing also has ``samples()`` (``Sample``s, which /metrics renders
as Prometheus gauges and counters). No reader indexes another integration's dict by
hand, and adding one touches no reader.

A reload reaches every integration from ``Daemon.reload``, in one place: an effect is
rebuilt or kept by ``registry.effects_for`` (which knows what carries over, e.g.
conntrackd's finished bulk resync); one beside the host lanes (``Beside``: ifstated,
the real-time policy) is told ``reconfigure(config)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from carpd.config.model import Config


@dataclass(frozen=True, slots=True)
class Sample:
    """One figure of a report for /metrics: its full metric name (``carpd_...``), help
    text, kind, value (a number, so the daemon needs no metrics library) and labels
    (the samples of one name carry the same label names, in the same order)."""

    name: str
    doc: str
    kind: Literal["gauge", "counter"]
    value: float
    labels: tuple[tuple[str, str], ...] = ()


@runtime_checkable
class Sampled(Protocol):
    """A report with figures for /metrics."""

    def samples(self) -> Iterable[Sample]: ...


@runtime_checkable
class Report(Protocol):
    """What an integration shows: a frozen dataclass of its own."""

    def to_json(self) -> dict[str, Any]: ...  # exactly what status shows under its name

    def lines(self) -> list[str]: ...  # carpctl status's text ([]: nothing worth a line)


@runtime_checkable
class Integration(Protocol):
    name: str  # its key in status; unique among the registered ones

    def report(self) -> Report | None: ...

    # Stop what it runs by itself: a coroutine for effects and ifstated, done at once
    # for the real-time policy.
    def close(self) -> Awaitable[None] | None: ...


@runtime_checkable
class Beside(Integration, Protocol):
    """An integration beside the host lanes, made once the daemon runs (registry.
    beside_for), told each configuration, the first included, and closed at stop. A
    reconfigure that cannot apply its part logs why and keeps what runs: the rest of
    the reload goes on."""

    async def reconfigure(self, config: Config) -> None: ...


class Demoter(Protocol):
    """The node's demotion as integrations may move it (the runtime's levers), each
    change logged in FreeBSD's words: "demoted by 240 to 240 (why)"."""

    def state_sync_demotion(self, amount: int, why: str) -> None: ...

    def scoped_demotion(
        self, reason: str, vhids: tuple[str, ...], groups: tuple[str, ...], amount: int, why: str
    ) -> None:
        """``reason`` demotes by ``amount`` (0: no longer): the vhids ``vhids`` and the
        members of ``groups``, or, with neither, the whole node."""
        ...


@runtime_checkable
class Refreshable(Protocol):
    """An integration whose report can be made true now on request (the cluster view
    reads its peers again): bounded by its own timeout."""

    async def refresh(self) -> None: ...


class Integrations:
    """Every integration, registered in one place. Those that are effects come from
    ``registry.effects_for`` through ``effects`` (read each time: a reload replaces them); those
    beside the host lanes (ifstated, the real-time policy) are given to ``start`` once,
    reconfigured on every reload and closed at stop; others (config drift) are added."""

    def __init__(self, effects: Callable[[], Iterable[object]]) -> None:
        self._effects = effects
        self._others: dict[str, Integration] = {}
        self._beside: list[Beside] = []

    async def start(
        self, beside: Iterable[Beside], config: Config, subscribe: Callable[[object], None]
    ) -> None:
        """Those beside the lanes: each shown, subscribed (if it listens), configured."""
        self._beside = list(beside)
        for b in self._beside:
            self.add(b)
            subscribe(b)
            await b.reconfigure(config)

    async def reconfigure(self, config: Config) -> None:
        for b in self._beside:
            await b.reconfigure(config)

    async def close(self) -> None:
        """Those beside the lanes, at stop: ifstated's last commands, the normal policy."""
        for b in self._beside:
            if (closing := b.close()) is not None:
                await closing

    async def refresh(self) -> None:
        """Each report that can be made true now, at once (`carpctl status --fresh`)."""
        await asyncio.gather(*(i.refresh() for i in self if isinstance(i, Refreshable)))

    def add(self, integration: Integration) -> None:
        self._others[integration.name] = integration

    def __iter__(self) -> Iterator[Integration]:
        yield from (e for e in self._effects() if isinstance(e, Integration))
        yield from self._others.values()

    def reports(self) -> dict[str, Report]:
        """Each integration's report by its name, in registration order (carpctl's)."""
        return {i.name: r for i in self if (r := i.report()) is not None}
