"""A tracker's state from its probes' results, keepalived's ``rise``/``fall`` and a
quorum of targets (pfSense's gateway groups, dpinger's several monitor addresses).

Pure: results in, state changes out. Each target goes up after ``rise`` good results in
a row and down after ``fall`` bad ones; its first result sets it at once (a node that
starts with a dead uplink is demoted from its first probe, not ``fall`` probes later).
The tracker is up while at least ``quorum`` targets are up, and demotes by ``weight``
while it is down.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DETAIL_MAX = 200  # characters of a probe's result kept


@dataclass
class Target:
    """One probe target's state with hysteresis."""

    rise: int
    fall: int
    up: bool | None = None  # None: no result yet
    streak: int = 0  # results in a row against the current state
    last_ok: bool | None = None
    last_detail: str = ""

    def observe(self, ok: bool, detail: str = "") -> bool:
        """One probe result; True when the target's state changed."""
        # A target's words (an HTTP error, BIRD's state) reach status and the log: short.
        # No control characters: a newline from a target would start a forged log line.
        shown = "".join(c if c.isprintable() else "?" for c in detail[:DETAIL_MAX])
        self.last_ok, self.last_detail = ok, shown
        if self.up is None:
            self.up, self.streak = ok, 0
            return True
        if ok == self.up:
            self.streak = 0
            return False
        self.streak += 1
        if self.streak >= (self.rise if ok else self.fall):
            self.up, self.streak = ok, 0
            return True
        return False


@dataclass
class Tracker:
    """A tracker of one or more targets: up while ``quorum`` of them are."""

    name: str
    targets: tuple[str, ...]
    rise: int
    fall: int
    quorum: int
    weight: int
    states: dict[str, Target] = field(default_factory=dict)
    up: bool | None = None

    def __post_init__(self) -> None:
        self.states = {t: Target(self.rise, self.fall) for t in self.targets}

    @property
    def demotion(self) -> int:
        """What it adds to the demotion now (nothing before its first verdict)."""
        return self.weight if self.up is False else 0

    @property
    def up_count(self) -> int:
        return sum(1 for s in self.states.values() if s.up)

    def observe(self, target: str, ok: bool, detail: str = "") -> bool:
        """One target's result; True when the tracker's own state changed (once every
        target has had a first result)."""
        self.states[target].observe(ok, detail)
        if any(s.up is None for s in self.states.values()):
            return False
        up = self.up_count >= self.quorum
        if up == self.up:
            return False
        self.up = up
        return True

    def why(self) -> str:
        """The change in words, for the log line and status."""
        if len(self.targets) == 1:
            (s,) = self.states.values()
            word = "up" if self.up else "down"
            return f"track {self.name}: {word}" + (f" ({s.last_detail})" if s.last_detail else "")
        if self.up:
            return f"track {self.name}: {self.up_count} of {len(self.targets)} targets up"
        lost = len(self.targets) - self.up_count
        return f"track {self.name}: {lost} of {len(self.targets)} targets lost"
