"""Each vhid's recent transitions, with the silence before each, and flap detection.

"Random flips ... appears to be network timeouts" (seed 004): a vhid that changes state
more than FLAP_COUNT times within FLAP_WINDOW seconds is logged once as flapping, with
the advert gaps that caused it, so the cause is visible (adverts lost or late on the way:
a congested or lossy link, multicast filtered now and then) rather than guessed at.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, deque

from carpd.daemon.events import Event, RoleChanged
from carpd.daemon.view import NodeView, TransitionRecord, VhidKey

log = logging.getLogger("carpd")

KEPT = 20  # transitions kept per vhid
FLAP_COUNT = 4  # this many transitions...
FLAP_WINDOW = 60.0  # ...within this many seconds are a flap


class History:
    """A Subscriber: records every RoleChanged with the vhid's last advert heard."""

    def __init__(self) -> None:
        self._records: dict[VhidKey, deque[TransitionRecord]] = {}
        self.flapping: set[VhidKey] = set()
        # Every transition ever, by (from, to): at most 3 x 3 per vhid (metrics).
        self.counts: dict[VhidKey, Counter[tuple[str, str]]] = {}

    def of(self, key: VhidKey) -> tuple[TransitionRecord, ...]:
        return tuple(self._records.get(key, ()))

    def notify(self, event: Event, view: NodeView) -> None:
        if not isinstance(event, RoleChanged):
            return
        # From the event, not the view: reading the view builds every vhid's (O(N) per
        # event, O(N^2) for 255 takeovers).
        heard, interval, name = event.last_heard, event.heard_interval, event.name
        gap = None if heard is None else max(0.0, event.at - heard)
        missed = None if gap is None or not interval else math.floor(gap / interval)
        record = TransitionRecord(event.at, event.old, event.new, event.reason, heard, gap, missed)
        counts = self.counts.setdefault(event.key, Counter())
        counts[(event.old.value, event.new.value)] += 1
        records = self._records.setdefault(event.key, deque(maxlen=KEPT))
        records.append(record)
        recent = [r for r in records if event.at - r.at <= FLAP_WINDOW]
        if len(recent) >= FLAP_COUNT and event.key not in self.flapping:
            self.flapping.add(event.key)
            gaps = ", ".join(
                f"{r.gap:.1f} s ({r.missed} adverts missed)"
                for r in recent
                if r.gap is not None and r.missed
            )
            log.warning(
                "%s: flapping: %d transitions in %.0f s; silences before them: %s. Adverts "
                "are lost or late on the way (a lossy or congested link, multicast "
                "filtered now and then?), or two nodes take turns being preferred",
                name,
                len(recent),
                FLAP_WINDOW,
                gaps or "none (no adverts missed: preemption or demotion changes)",
            )
        elif len(recent) == 1 and event.key in self.flapping:
            self.flapping.discard(event.key)
            log.warning("%s: no longer flapping", name)
