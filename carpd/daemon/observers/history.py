"""Each vhid's recent transitions, with the silence before each, and flap detection.

"Random flips ... appears to be network timeouts" (seed 004): a vhid that the network
moves more than FLAP_COUNT times within FLAP_WINDOW seconds is logged once as flapping,
with the advert gaps that caused it, so the cause is visible (adverts lost or late on the
way: a congested or lossy link, multicast filtered now and then) rather than guessed at.
Transitions an operator or a demotion caused are recorded but not counted (see
NETWORK_REASONS): `carpctl down`/`up` or maintenance on and off are not a sick network.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, deque

from carpd.core.model import Reason, State
from carpd.daemon.seam.events import Event, RoleChanged
from carpd.daemon.seam.view import NodeView, TransitionRecord, VhidKey

log = logging.getLogger("carpd")

KEPT = 20  # transitions kept per vhid
FLAP_COUNT = 4  # more than this many transitions the network caused...
FLAP_WINDOW = 60.0  # ...within this many seconds are a flap

# What counts towards a flap: the transitions the adverts' path between the nodes, or the
# carpdev's link, decided. A master that fell silent (timed out, or announces an interval
# we time out on), another master heard that wins (a healed split brain: also how the
# backup of a lossy pair steps down again), the carpdev going down or up.
NETWORK_REASONS = frozenset(
    {
        Reason.MASTER_TIMED_OUT,
        Reason.MASTER_WILL_TIME_OUT,
        Reason.MORE_FREQUENT_ADVERT,
        Reason.PREFERRED_MASTER_TIE,
        Reason.HIGHER_PRIORITY_MASTER,
        Reason.GREATER_ADDRESS_MASTER,
        Reason.CARPDEV_DOWN,
        Reason.CARPDEV_UP,
    }
)
# Everything else does not count, and the handover between BACKUP and MASTER right after
# it is its consequence and does not count either:
# - this node's operator and life: start (INIT -> BACKUP), `carpctl down`/`up`/`state`,
#   a reload, shutdown. Then the next handover is the vhid taking its place (preempting,
#   or timing out when it has heard nobody since: alone);
# - the peer's: a master that bowed out (carp) or released the VRID (priority 0) only
#   does so on shutdown, `down`, `state backup` or a reload, never because of the network.
#   Then the next handover is that peer coming back and taking its place again;
# - a demotion (maintenance, a failed service check, another carpdev's link, on either
#   node): a less or more demoted master, preempting. Then the next handover is the
#   demotion lifted. The demotion and its sources are in status and the log.


class History:
    """A Subscriber: records every RoleChanged with the vhid's last advert heard."""

    def __init__(self) -> None:
        self._records: dict[VhidKey, deque[TransitionRecord]] = {}
        # The transitions of each vhid that the network caused (at most as many as kept).
        self._network: dict[VhidKey, deque[TransitionRecord]] = {}
        self.flapping: set[VhidKey] = set()
        # Every transition ever, by (from, to): at most 3 x 3 per vhid (metrics).
        self.counts: dict[VhidKey, Counter[tuple[str, str]]] = {}

    def of(self, key: VhidKey) -> tuple[TransitionRecord, ...]:
        return tuple(self._records.get(key, ()))

    def is_flapping(self, key: VhidKey, now: float) -> bool:
        """What status shows (``now`` on the wall clock): a flap that the network has not
        fed for a whole window is over, even if no transition has come to say so."""
        network = self._network.get(key)
        if key not in self.flapping or not network:
            return False
        return now - network[-1].at <= FLAP_WINDOW

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
        network = self._network.setdefault(event.key, deque(maxlen=KEPT))
        if caused_by_network(records[-1] if records else None, record):
            network.append(record)
        records.append(record)
        recent = [r for r in network if event.at - r.at <= FLAP_WINDOW]
        if len(recent) > FLAP_COUNT and event.key not in self.flapping:
            self.flapping.add(event.key)
            gaps = ", ".join(
                f"{r.gap:.1f} s ({r.missed} adverts missed)"
                for r in recent
                if r.gap is not None and r.missed
            )
            why = Counter(str(r.reason) for r in recent)
            log.warning(
                "%s: flapping: %d transitions in %.0f s that the network caused (%s); "
                "silences before them: %s. Adverts are lost or late on the way (a lossy or "
                "congested link, multicast filtered now and then?), or the carpdev's link "
                "goes down and up",
                name,
                len(recent),
                FLAP_WINDOW,
                ", ".join(f"{reason} x{n}" for reason, n in why.items()),
                gaps or "none (no adverts missed)",
            )
        elif len(recent) <= 1 and event.key in self.flapping:
            self.flapping.discard(event.key)
            log.warning("%s: no longer flapping", name)


def caused_by_network(previous: TransitionRecord | None, record: TransitionRecord) -> bool:
    """Whether ``record`` counts towards a flap (see NETWORK_REASONS)."""
    if record.reason not in NETWORK_REASONS:
        return False
    if previous is None or previous.reason in NETWORK_REASONS:
        return True
    if {previous.old, previous.new} == {State.BACKUP, State.MASTER}:
        # The other half of a handover that did not count: back where it was.
        return {record.old, record.new} != {State.BACKUP, State.MASTER}
    # After leaving INIT: the vhid's first election if it heard nobody since (alone, it
    # times out). A master it heard and then lost is the network again.
    settling = previous.old is State.INIT and record.new is State.MASTER
    heard_since = record.last_advert is not None and record.last_advert > previous.at
    return not settling or heard_since
