"""The integration contract: what something beside the CARP core (conntrackd, the pools,
ifstated, the real-time policy, ...) offers the daemon, and the one registry status reads.

An integration has a ``name`` (its key in ``carpctl status --json`` and ``/api/status``),
a ``report()`` (a frozen dataclass it owns, or None while it has nothing to show) and a
``close()``. It may also be an ``Effect`` (steps around host actions; ``assemble`` makes
those) and/or a ``Subscriber`` (events). Its report renders itself twice: ``to_json()``
for the JSON readers (the page, scripts) and ``lines()`` for carpctl's text, so no
reader indexes another integration's dict by hand, and adding one touches no reader.

There is no ``reconfigure(config)`` here: a reload rebuilds or keeps each effect in
``assemble.effects_for`` (which knows what carries over, e.g. conntrackd's finished bulk
resync), while ifstated (an async open that reads its file again) and the real-time
policy are reloaded from ``serve``; one ``reconfigure`` needs that reload path to move
into ``Daemon.reload`` first (review finding 4).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Protocol, runtime_checkable


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


class Integrations:
    """Every integration, registered in one place. Those that are effects come from
    ``assemble`` through ``effects`` (read each time: a reload replaces them); those
    beside the host lane (ifstated, the real-time policy) are added by whoever starts
    them, and removed when it stops them."""

    def __init__(self, effects: Callable[[], Iterable[object]]) -> None:
        self._effects = effects
        self._others: dict[str, Integration] = {}

    def add(self, integration: Integration) -> None:
        self._others[integration.name] = integration

    def discard(self, integration: Integration) -> None:
        if self._others.get(integration.name) is integration:
            del self._others[integration.name]

    def __iter__(self) -> Iterator[Integration]:
        yield from (e for e in self._effects() if isinstance(e, Integration))
        yield from self._others.values()

    def reports(self) -> dict[str, Report]:
        """Each integration's report by its name, in registration order (carpctl's)."""
        return {i.name: r for i in self if (r := i.report()) is not None}
