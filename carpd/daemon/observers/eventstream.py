"""`carpctl events`: every transition, demotion change, address change, link change,
hook or action result and lifecycle phase, one JSON object per line, as it happens
(what keepalived's notify FIFO is used for, without a FIFO to go stale).

A Subscriber of the runtime's events. Each follower has a bounded queue: one that reads
too slowly is told so and dropped, never waited for (the protocol's loop must not be).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from carpd.daemon.seam.events import (
    ActionRan,
    AddressesApplied,
    AddressesRestored,
    DemotionChanged,
    DrillDone,
    Event,
    Lifecycle,
    LinkChanged,
    RoleChanged,
    TrackChanged,
)
from carpd.daemon.seam.view import NodeView, VhidKey

QUEUE = 1000  # events a follower may fall behind before it is dropped
OVERFLOW = {"event": "overflow", "error": "too slow: events were lost; follow again"}


def _stamp(wall: float) -> str:
    ms = int(wall * 1000) % 1000
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(wall))
        + f".{ms:03d}"
        + (time.strftime("%z", time.localtime(wall)))
    )


def to_json(event: Event, view: NodeView) -> dict[str, Any]:
    names: dict[VhidKey, str] = {}

    def name(key: VhidKey) -> str:
        if not names:  # only for the events that need it: it reads the whole view
            names.update((v.key, v.name) for v in view.vhids)
        return names.get(key, f"{key[0]}/{key[1]}")

    now = _stamp(time.time())
    if isinstance(event, RoleChanged):
        return {
            "event": "transition",
            "at": _stamp(event.at),
            "vhid": event.name,
            "carpdev": event.key[0],
            "from": event.old.value,
            "to": event.new.value,
            "reason": str(event.reason),
        }
    if isinstance(event, AddressesApplied):
        return {
            "event": "addresses",
            "at": now,
            "vhid": name(event.key),
            "present": event.present,
            "error": event.error,
        }
    if isinstance(event, AddressesRestored):
        return {
            "event": "addresses kept",
            "at": now,
            "vhid": name(event.key),
            "addresses": list(event.addresses),
            "present": event.present,
            "error": event.error,
        }
    if isinstance(event, DemotionChanged):
        totals = {name(k): v for k, v in event.totals.items()}
        return {"event": "demotion", "at": now, "vhids": totals, "sources": dict(view.demotion)}
    if isinstance(event, ActionRan):
        o = event.outcome
        return {
            "event": "action",
            "at": _stamp(event.at),
            "target": event.target,
            "action": event.action,
            "phase": event.phase,
            "state": event.state,
            "status": o.status,
            "duration": round(o.duration, 3),
            "error": o.error,
            "stderr": o.stderr,
        }
    if isinstance(event, LinkChanged):
        return {"event": "link", "at": now, "carpdev": event.carpdev, "up": event.up}
    if isinstance(event, TrackChanged):
        return {
            "event": "track",
            "at": now,
            "track": event.name,
            "up": event.up,
            "why": event.why,
            "demotion": event.demotion,
        }
    if isinstance(event, DrillDone):
        return {"event": "drill", "at": now, "result": event.result, "summary": event.summary}
    assert isinstance(event, Lifecycle)
    return {"event": "lifecycle", "at": now, "phase": event.phase}


class EventStream:
    def __init__(self) -> None:
        self._followers: set[asyncio.Queue[dict[str, Any] | None]] = set()

    def notify(self, event: Event, view: NodeView) -> None:
        if not self._followers:
            return
        line = to_json(event, view)
        for queue in list(self._followers):
            if queue.qsize() >= QUEUE - 1:  # keep one place for the overflow notice
                self._followers.discard(queue)
                queue.put_nowait(OVERFLOW)
                queue.put_nowait(None)
            else:
                queue.put_nowait(line)

    async def follow(self, _request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The control socket's `events` command: an endless stream for one client."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE + 1)
        self._followers.add(queue)
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            self._followers.discard(queue)
