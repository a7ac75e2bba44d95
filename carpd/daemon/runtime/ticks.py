"""The vhids' timers on as few event-loop wakeups as possible, each to the microsecond.

Each vhid's machine names its next deadline (an advert to send, a master-down timer).
One loop timer per vhid meant one wakeup per deadline: 16 VRIDs at 10 ms adverts woke
the loop 1,600 times a second, and a wakeup (epoll, the loop's bookkeeping) cost about
as much as the advert itself. Here a deadline joins a wakeup due within COALESCE after
it, or holds an earlier one back (by at most COALESCE after that one's own earliest
deadline); every vhid of a wakeup is handed the same ``now``, so their next deadlines
coincide exactly and vhids that met once stay together. Two wakeups of the same period
too far apart for that converge: the one behind steps COALESCE towards the other each
period. A deadline never runs early, nor more than COALESCE late.

The wakeups come from one timerfd, not from asyncio's timers, whose epoll timeout is in
whole milliseconds (see carpd.linux.timerfd): 1.3 ms late at the median.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from carpd.linux.timerfd import TimerFd

K = TypeVar("K", bound=Hashable)

log = logging.getLogger("carpd")

COALESCE = 0.001  # seconds a deadline may wait for another's wakeup (10 % of 10 ms adverts)
LOOK_AHEAD = 8  # wakeups looked at for one to converge with (each arm: keep it cheap)


@dataclass(eq=False)
class _Wakeup(Generic[K]):
    at: float
    earliest: float  # its keys' earliest deadline: it may move up to COALESCE after it
    period: float | None = None  # from when it was set to when it is due (an interval)
    keys: dict[K, float] = field(default_factory=dict)  # key: its deadline, arming order


class Ticks(Generic[K]):
    """Deadlines of keys (vhids), fired through ``fire(key, now, held)``: ``held`` is how
    long the key's deadline was held back on purpose (the wakeup's time minus it), which a
    vhid's advert schedule moves by, so that the vhids of a wakeup stay together."""

    def __init__(self, fire: Callable[[K, float, float], None], coalesce: float = COALESCE) -> None:
        self._fire = fire
        self._coalesce = coalesce
        self._when: list[float] = []  # the pending wakeups' times, sorted
        self._wakeups: dict[float, _Wakeup[K]] = {}
        self._of: dict[K, _Wakeup[K]] = {}  # key -> the wakeup it is in
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: TimerFd | None = None
        self._armed: float | None = None  # what the timerfd is set to
        self._running = False  # firing: the timerfd is set once, afterwards

    def arm(self, key: K, deadline: float | None) -> None:
        """``key`` runs at ``deadline`` (or a hair after, with others); None: never."""
        current = self._of.get(key)
        if current is not None:  # (none after it fired: the common case, no call)
            if deadline is not None and 0 <= current.at - deadline <= self._coalesce:
                current.earliest = min(current.earliest, deadline)
                current.keys[key] = deadline
                return  # already in a wakeup that suits
            self.cancel(key)
        if deadline is None:
            return
        i = bisect.bisect_left(self._when, deadline)
        if i < len(self._when) and self._when[i] <= deadline + self._coalesce:
            wakeup = self._wakeups[self._when[i]]  # a later one: join it
            wakeup.earliest = min(wakeup.earliest, deadline)
        elif i > 0 and self._wakeups[self._when[i - 1]].earliest + self._coalesce >= deadline:
            wakeup = self._wakeups[self._when[i - 1]]  # an earlier one: it waits for us
            self._remove(wakeup)
            wakeup.at = deadline
            self._add(wakeup)
        else:
            at, period = deadline, None
            if self._loop is not None:
                period = deadline - self._loop.time()
                if self._ahead(deadline - period, period):
                    at = deadline + self._coalesce
            wakeup = _Wakeup(at, deadline, period)
            self._add(wakeup)
        wakeup.keys[key] = deadline
        self._of[key] = wakeup
        if not self._running:  # firing: the timerfd is set once, afterwards
            self._set_timer()

    def cancel(self, key: K) -> None:
        wakeup = self._of.pop(key, None)
        if wakeup is None:
            return
        del wakeup.keys[key]
        if not wakeup.keys:
            self._remove(wakeup)
            self._set_timer()

    def when(self, key: K) -> float | None:
        """When ``key`` will run (tests, status)."""
        wakeup = self._of.get(key)
        return None if wakeup is None else wakeup.at

    def wakeups(self) -> int:
        return len(self._when)

    def close(self) -> None:
        if self._timer is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._timer.fileno())
            self._timer.close()
            self._timer = self._loop = self._armed = None

    def _ahead(self, now: float, period: float) -> bool:
        """Is a wakeup of the same period due in the first half of ours? Then ours
        steps COALESCE towards it, once per period, until it can join (a wakeup in the
        second half stays where it is: the two converge). A wakeup of another period
        (1 s adverts beside 10 ms ones) is not followed: that would delay ours now and
        then for nothing."""
        i = bisect.bisect_right(self._when, now)
        for at in self._when[i : i + LOOK_AHEAD]:
            if at >= now + period / 2:
                break
            other = self._wakeups[at].period
            if other is not None and abs(other - period) <= self._coalesce:
                return True
        return False

    def _add(self, wakeup: _Wakeup[K]) -> None:
        bisect.insort(self._when, wakeup.at)
        self._wakeups[wakeup.at] = wakeup

    def _remove(self, wakeup: _Wakeup[K]) -> None:
        del self._wakeups[wakeup.at]
        self._when.pop(bisect.bisect_left(self._when, wakeup.at))

    def _set_timer(self) -> None:
        """The timerfd at the first wakeup, on the running loop."""
        if self._running:
            return
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or a new loop (tests run several)
            self.close()
            self._timer, self._loop = TimerFd(), loop
            loop.add_reader(self._timer.fileno(), self._expired)
        assert self._timer is not None
        head = self._when[0] if self._when else None
        if head == self._armed:
            return
        if head is None:
            self._timer.disarm()
        else:
            self._timer.arm_at(head)
        self._armed = head

    def _expired(self) -> None:
        assert self._timer is not None and self._loop is not None
        if not self._timer.expired():
            return
        self._armed = None
        now = self._loop.time()
        due: list[_Wakeup[K]] = []
        while self._when and self._when[0] <= now:
            due.append(self._wakeups[self._when[0]])
            self._remove(due[-1])
            for key in due[-1].keys:
                del self._of[key]
        self._running = True
        try:
            for wakeup in due:
                for key, deadline in wakeup.keys.items():
                    try:
                        self._fire(key, now, wakeup.at - deadline)
                    except Exception:  # one vhid's bug must not stop the others' timers
                        log.exception("carp: timer of %s failed", key)
        finally:
            self._running = False
        self._set_timer()
