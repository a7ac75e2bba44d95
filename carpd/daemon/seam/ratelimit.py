"""Log each kind of bad packet at most once per interval, saying how many were hidden."""

from __future__ import annotations

from collections.abc import Hashable


class RateLimiter:
    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._next: dict[Hashable, float] = {}
        self._suppressed: dict[Hashable, int] = {}

    def allow(self, key: Hashable, now: float, interval: float | None = None) -> int | None:
        """None to stay quiet; otherwise how many were suppressed since the last one."""
        if now < self._next.get(key, float("-inf")):
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        self._next[key] = now + (self.interval if interval is None else interval)
        return self._suppressed.pop(key, 0)
