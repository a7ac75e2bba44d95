"""Settings that are valid but known to misbehave: warned about, never refused."""

from __future__ import annotations

from carpd.config.model import Config


def advisories(config: Config) -> list[str]:
    """One line per questionable setting, naming the file, the vhid and the key."""
    notes = []
    for c in config.carp:
        where = f"{config.source}: {c.name} (vhid {c.vhid} on {c.carpdev})"
        if c.protocol == "carp" and c.deadratio == 1:
            # The master-down interval then equals the advert interval: a backup with
            # the master's advskew times out just as the next advert is due, wins or
            # loses the tie, and does it again (the simulation shows a flip per few
            # seconds); one lost advert is a failover.
            notes.append(
                f"{where}: deadratio = 1: a BACKUP with the master's advskew times out "
                "as each advert is due and flips to MASTER and back, and one lost advert "
                "fails over; 2 or more (default 3) is safe"
            )
    return notes
