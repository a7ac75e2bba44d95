"""CARP timers (spec section 4.1).

T(b, s) = b + s/256 seconds. Comparing T(b1, s1) with T(b2, s2) is a lexicographic
compare of (advbase, advskew), which is what the election rules use.

Master-down interval: carpd uses ``deadratio * advbase + advskew/256`` (FreeBSD and
ucarp), not OpenBSD's ``3 * (advbase + advskew/256)``. It is the earlier of the two, so
a carpd backup never takes over later than ucarp would, and it still orders backups by
advskew so the most preferred one wins the race.
"""

from __future__ import annotations

DEFAULT_DEADRATIO = 3


def advert_interval(advbase: int, advskew: int) -> float:
    interval = advbase + advskew / 256
    return interval if interval > 0 else 1 / 256


def master_down_interval(advbase: int, advskew: int, deadratio: int = DEFAULT_DEADRATIO) -> float:
    return deadratio * advbase + advskew / 256
