"""[[track]]: each tracker's targets probed in tasks of their own (carpd.linux.probes),
their results through rise, fall and the quorum (carpd.core.tracker), and a change of a
tracker's state turned into demotion (the runtime's levers), a log line, an event and
its report. A probe never runs in the protocol's path: a slow target only makes its own
tracker late."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from carpd.config.model import Config, TrackConfig
from carpd.core.tracker import Tracker
from carpd.daemon.seam.events import Event, TrackChanged
from carpd.daemon.seam.integration import Demoter, Sample
from carpd.linux.probes import Prober, preload

log = logging.getLogger("carpd")
STEP = 0.001  # between two targets' probes: 100 targets take a tenth of a second


def reason(name: str) -> str:
    """The tracker's name among the demotion reasons."""
    return f"track {name}"


@dataclass(frozen=True, slots=True)
class TargetView:
    target: str
    up: bool | None
    last_ok: bool | None
    detail: str


@dataclass(frozen=True, slots=True)
class TrackView:
    name: str
    kind: str
    up: bool | None  # None: not every target probed yet
    demotion: int  # what it adds now
    weight: int
    applies_to: str  # "node", or the vhids and groups
    since: float | None  # wall clock of the last change
    why: str
    targets: tuple[TargetView, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "up": self.up,
            "demotion": self.demotion,
            "weight": self.weight,
            "applies_to": self.applies_to,
            "since": self.since,
            "why": self.why,
            "targets": [
                {"target": t.target, "up": t.up, "last_ok": t.last_ok, "detail": t.detail}
                for t in self.targets
            ],
        }


@dataclass(frozen=True, slots=True)
class TrackersReport:
    trackers: tuple[TrackView, ...]

    def to_json(self) -> dict[str, Any]:
        return {"trackers": [t.to_json() for t in self.trackers]}

    def lines(self) -> list[str]:
        out = []
        for t in self.trackers:
            state = {True: "up", False: "DOWN", None: "starting"}[t.up]
            demoted = f", demoting {t.applies_to} by {t.demotion}" if t.demotion else ""
            out.append(f"track {t.name} ({t.kind}): {state}{demoted}: {t.why}")
        return out

    def samples(self) -> Iterator[Sample]:
        for t in self.trackers:
            labels = (("track", t.name), ("kind", t.kind))
            yield Sample("carpd_track_up", "1 while the tracker is up, 0 while down",
                         "gauge", int(t.up is not False), labels)  # fmt: skip
            yield Sample("carpd_track_demotion", "The demotion the tracker adds now",
                         "gauge", t.demotion, labels)  # fmt: skip
            for target in t.targets:
                yield Sample(
                    "carpd_track_target_up",
                    "1 while the target is up (after rise and fall)",
                    "gauge",
                    int(target.up is not False),
                    (("track", t.name), ("target", target.target)),
                )


class Running:
    """One tracker: its state, its probes, its tasks."""

    def __init__(self, cfg: TrackConfig) -> None:
        self.cfg = cfg
        self.state = Tracker(cfg.name, cfg.targets, cfg.rise, cfg.fall, cfg.quorum, cfg.weight)
        self.prober = Prober(cfg)
        self.since: float | None = None
        self.why = "not probed yet"
        self.tasks: list[asyncio.Task[None]] = []

    def view(self) -> TrackView:
        c = self.cfg
        scope = ", ".join([*c.vhids, *(f"group {g}" for g in c.groups)]) or "node"
        return TrackView(
            c.name, c.kind, self.state.up, self.state.demotion, c.weight, scope, self.since,
            self.why,
            tuple(TargetView(t, s.up, s.last_ok, s.last_detail)
                  for t, s in self.state.states.items()),
        )  # fmt: skip


class Trackers:
    name = "trackers"  # its key in status

    def __init__(self, demote: Demoter, publish: Callable[[Event], None]) -> None:
        self.demote, self.publish = demote, publish
        self.running: dict[str, Running] = {}
        self._slot = 0

    def report(self) -> TrackersReport | None:
        if not self.running:
            return None
        return TrackersReport(tuple(r.view() for r in self.running.values()))

    async def reconfigure(self, config: Config) -> None:
        """Unchanged trackers keep their state; the others start afresh (their
        demotion lifted first), removed ones stop and lift theirs."""
        wanted = {t.name: t for t in config.track}
        for name, r in list(self.running.items()):
            if wanted.get(name) != r.cfg:
                await self._stop(r, "changed" if name in wanted else "removed")
                del self.running[name]
        preload({cfg.kind for name, cfg in wanted.items() if name not in self.running})
        for name, cfg in wanted.items():
            if name not in self.running:
                r = self.running[name] = Running(cfg)
                r.tasks = [asyncio.create_task(self._watch(r, t, self._phase(cfg)))
                           for t in cfg.targets]  # fmt: skip

    def _phase(self, cfg: TrackConfig) -> float:
        """Each target its own moment, STEP after the previous one's: probes started in
        the same moment run in one turn of the loop, and an advert due then waits for
        all of them (100 trackers on one beat: 20 HTTP probes held it up to 26 ms)."""
        self._slot += 1
        return (self._slot * STEP) % cfg.interval

    async def _watch(self, r: Running, target: str, phase: float) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + phase
        await asyncio.sleep(phase)
        while True:
            ok, detail = await r.prober.probe(target)
            before = r.state.up
            if r.state.observe(target, ok, detail):
                self._changed(r, before)
            # On a fixed beat: a slow probe does not push the next ones later.
            next_at += r.cfg.interval
            now = loop.time()
            if next_at < now:
                next_at = now
            await asyncio.sleep(next_at - now)

    def _changed(self, r: Running, before: bool | None) -> None:
        c = r.cfg
        r.since, r.why = time.time(), r.state.why()
        up = bool(r.state.up)
        if before is None and up:
            log.info("carp: %s", r.why)  # its first verdict, up: nothing to lift
        else:  # "carp: demoted by 50 to 50 (track uplink: 2 of 3 targets lost)", and back
            self.demote.scoped_demotion(reason(c.name), c.vhids, c.groups, r.state.demotion, r.why)
        self.publish(TrackChanged(c.name, up, r.why, r.state.demotion))

    async def _stop(self, r: Running, why: str) -> None:
        for t in r.tasks:
            t.cancel()
        for t in r.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await r.prober.close()
        if r.state.demotion:
            c = r.cfg
            self.demote.scoped_demotion(reason(c.name), c.vhids, c.groups, 0,
                                        f"track {c.name}: {why}")  # fmt: skip

    async def close(self) -> None:
        for r in self.running.values():
            await self._stop(r, "stopped")
        self.running = {}
