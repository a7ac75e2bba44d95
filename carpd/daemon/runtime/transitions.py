"""A vhid's state transition as the log and the subscribers see it, with the one
diagnosis only a transition can make: MASTER by silence."""

from __future__ import annotations

import logging
from collections.abc import Callable

from carpd.core.actions import StateChanged
from carpd.core.model import Reason, State
from carpd.daemon.runtime.vhost import Vhost
from carpd.daemon.seam.diagnosis import Level
from carpd.daemon.seam.events import Event, RoleChanged

log = logging.getLogger("carpd")

# Receiver.diagnose: (vhid, kind, text, level, adverts heard)
Diagnose = Callable[[Vhost, str, str, Level, int], None]


def diagnose_silence(vh: Vhost, diagnose: Diagnose) -> None:
    """MASTER by a timeout without any advert heard, until one is: the first node of
    a cluster is alone, and says so as a fact; unicast peers' silence is a fault."""
    heard = vh.machine.counters.adverts_received
    if heard:
        return
    level: Level = "info"
    text = (
        "became MASTER without having heard any advert: no other node is running yet, "
        "or its adverts do not reach us (protocol 112 or multicast filtered? unicast "
        "peers help where multicast is blocked)"
    )
    if vh.cfg.peers:
        level = "warning"
        text = (
            "became MASTER without having heard any advert from peers "
            f"{', '.join(map(str, vh.cfg.peers))}: they are down, or their adverts do not "
            "reach us (protocol 112 filtered?)"
        )
    diagnose(vh, "silence", text, level, heard)


class Transitions:
    """Logs each transition and publishes it, with wall times."""

    def __init__(
        self,
        publish: Callable[[Event], None],
        diagnose: Diagnose,
        now: Callable[[], float],
        wall_offset: Callable[[], float],
    ) -> None:
        self._publish, self._diagnose = publish, diagnose
        self._now, self._wall_offset = now, wall_offset

    def announce(self, vh: Vhost, action: StateChanged) -> None:
        cfg = vh.cfg
        if action.reason is Reason.MASTER_TIMED_OUT:
            diagnose_silence(vh, self._diagnose)
        level = logging.INFO if State.INIT in (action.old, action.new) else logging.WARNING
        log.log(
            level,
            "%s: state transition: %s -> %s (%s)",
            cfg.name,
            action.old,
            action.new,
            action.reason,
        )
        offset = self._wall_offset()
        heard = vh.machine.last_heard
        self._publish(
            RoleChanged(
                vh.key,
                action.old,
                action.new,
                action.reason,
                self._now() + offset,
                cfg.name,
                None if heard is None else heard + offset,
                vh.machine.heard_interval,
            )
        )
