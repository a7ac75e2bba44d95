"""What status says is wrong with a vhid (or worth knowing), for as long as it is true."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from carpd.daemon.seam.view import DiagnosisView

Level = Literal["warning", "info"]

# A diagnosis from received adverts (a wrong password, a vhid clash, reflected multicast)
# holds while such adverts keep coming. Their sender advertises every advbase (1 s by
# default, at most 255 s, where a minute of quiet proves less); a minute without one
# means it was fixed or has gone.
QUIET = 60.0


@dataclass(slots=True)
class Diagnosis:
    kind: str
    level: Level
    text: str
    since: float  # loop time, first seen
    last: float  # loop time, last seen
    # Set: true only until the vhid hears an advert (its adverts_received then); the
    # cause is the silence itself. None: true while it recurs (QUIET).
    heard: int | None = None

    def active(self, now: float, heard: int) -> bool:
        if self.heard is not None:
            return heard == self.heard
        return now - self.last <= QUIET

    def view(self, wall_offset: float) -> DiagnosisView:
        return DiagnosisView(
            self.kind, self.level, self.text, self.since + wall_offset, self.last + wall_offset
        )
