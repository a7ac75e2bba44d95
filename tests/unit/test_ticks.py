"""The vhids' timers share event-loop wakeups: never early, late by at most COALESCE."""

from __future__ import annotations

import asyncio

from carpd.daemon.runtime.ticks import COALESCE, Ticks


class Record:
    def __init__(self) -> None:
        self.fired: list[tuple[str, float]] = []
        self.done = asyncio.Event()
        self.expect = 0

    def __call__(self, key: str, now: float, held: float) -> None:
        self.fired.append((key, now))
        if len(self.fired) >= self.expect:
            self.done.set()


def test_deadlines_within_coalesce_share_a_wakeup_and_a_now_and_none_runs_early() -> None:
    async def main() -> tuple[list[tuple[str, float]], int, float]:
        rec = Record()
        ticks: Ticks[str] = Ticks(rec)
        t = asyncio.get_running_loop().time() + 0.02
        ticks.arm("a", t + 0.0004)
        ticks.arm("b", t)  # a's wakeup is later, within reach: b joins it
        ticks.arm("c", t + 0.0007)  # a's is earlier: it waits for c (a: 0.3 ms late)
        ticks.arm("d", t + COALESCE * 3)  # too far from all: its own
        wakeups = ticks.wakeups()
        assert ticks.when("a") == ticks.when("b") == ticks.when("c") == t + 0.0007
        rec.expect = 4
        await rec.done.wait()
        return rec.fired, wakeups, t

    fired, wakeups, t = asyncio.run(main())
    assert wakeups == 2
    now = dict(fired)
    assert [k for k, _ in fired] == ["a", "b", "c", "d"]
    assert now["a"] == now["b"] == now["c"] >= t + 0.0007  # one wakeup, one now
    assert now["d"] >= t + COALESCE * 3


def test_a_wakeup_is_held_back_at_most_coalesce_after_its_earliest_deadline() -> None:
    async def main() -> None:
        rec = Record()
        ticks: Ticks[str] = Ticks(rec)
        t = asyncio.get_running_loop().time() + 10
        ticks.arm("a", t)
        ticks.arm("b", t + COALESCE)  # a's may wait that long: held back
        assert ticks.wakeups() == 1 and ticks.when("a") == t + COALESCE
        ticks.arm("c", t + COALESCE * 1.5)  # a would wait longer than COALESCE: its own
        assert ticks.wakeups() == 2 and ticks.when("a") == t + COALESCE

    asyncio.run(main())


def test_keys_of_one_wakeup_stay_together_when_they_rearm() -> None:
    """Adverts every 10 ms: after one shared wakeup, the next deadlines coincide."""

    async def main() -> list[int]:
        seen: list[int] = []
        counts: dict[str, int] = {}
        done = asyncio.Event()
        ticks: Ticks[str]

        def fire(key: str, now: float, held: float) -> None:
            counts[key] = counts.get(key, 0) + 1
            seen.append(ticks.wakeups())
            if counts[key] < 5:
                ticks.arm(key, now + 0.01)
            elif all(n >= 5 for n in counts.values()) and len(counts) == 3:
                done.set()

        ticks = Ticks(fire)
        t = asyncio.get_running_loop().time() + 0.01
        for i, key in enumerate("xyz"):
            ticks.arm(key, t + i * COALESCE / 4)
        await done.wait()
        return seen

    seen = asyncio.run(main())
    assert max(seen) == 1  # never more than one wakeup pending for the three


def test_cancel_and_rearm() -> None:
    async def main() -> None:
        rec = Record()
        ticks: Ticks[str] = Ticks(rec)
        t = asyncio.get_running_loop().time() + 10
        ticks.arm("a", t)
        ticks.arm("b", t)
        ticks.cancel("a")
        assert ticks.when("a") is None and ticks.wakeups() == 1
        ticks.arm("b", t - COALESCE / 2)  # its wakeup still suits: kept
        assert ticks.when("b") == t
        ticks.arm("b", t + 1)  # moved: the old wakeup, now empty, is gone
        assert ticks.wakeups() == 1 and ticks.when("b") == t + 1
        ticks.arm("b", None)
        assert ticks.wakeups() == 0 and ticks.when("b") is None
        ticks.cancel("b")  # twice: harmless

    asyncio.run(main())


def test_wakeups_too_far_apart_to_join_converge_and_then_stay_together() -> None:
    """Two vhids whose adverts are 3 ms apart (they became MASTER at different times),
    each anchored to its own schedule as the core's routers are (next deadline: the last
    one plus held plus the interval, whatever the lateness): the one behind is held
    COALESCE each interval, never more, and then they share one wakeup."""

    async def main() -> tuple[dict[str, list[float]], list[float]]:
        fired: dict[str, list[float]] = {"x": [], "y": []}
        helds: list[float] = []
        done = asyncio.Event()
        ticks: Ticks[str]
        t = asyncio.get_running_loop().time() + 0.01
        anchor = {"x": t, "y": t + 0.003}

        def fire(key: str, now: float, held: float) -> None:
            fired[key].append(now)
            helds.append(held)
            if len(fired[key]) < 20:
                anchor[key] += held + 0.01
                ticks.arm(key, anchor[key])
            elif all(len(f) >= 20 for f in fired.values()):
                done.set()

        ticks = Ticks(fire)
        for key, at in anchor.items():
            ticks.arm(key, at)
        await done.wait()
        return fired, helds

    fired, helds = asyncio.run(main())
    assert all(0 <= h <= COALESCE + 1e-9 for h in helds)  # never early, never later
    assert fired["x"][-4:] == fired["y"][-4:]  # one wakeup, one now, since they met
