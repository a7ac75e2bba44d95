"""carpd.daemon.seam.lanes.Lane on its own: order, background steps, failures."""

from __future__ import annotations

import asyncio

import pytest

from carpd.daemon.seam.lanes import Lane, Step


def recorder(log: list[str], name: str, takes: float = 0.0, fail: bool = False) -> Step:
    async def run() -> None:
        log.append(f"{name} start")
        await asyncio.sleep(takes)
        if fail:
            raise OSError("refused")
        log.append(f"{name} end")

    return Step(name, run)


def background(step: Step, chain: str | None = "hooks") -> Step:
    return Step(step.name, step.run, step.deadline, blocking=False, chain=chain)


def test_blocking_steps_run_one_at_a_time_in_order() -> None:
    log: list[str] = []

    async def main() -> None:
        lane = Lane("carp1", asyncio.get_running_loop())
        lane.submit([recorder(log, "a", 0.05), recorder(log, "b")])
        lane.submit([recorder(log, "c")])
        await lane.settle()

    asyncio.run(main())
    assert log == ["a start", "a end", "b start", "b end", "c start", "c end"]


def test_a_background_step_does_not_hold_the_lane_but_keeps_its_order() -> None:
    """Hooks: the next transition's addresses do not wait for a slow hook, and the hooks
    of one vhid still run one at a time, in the order of the transitions."""
    log: list[str] = []

    async def main() -> None:
        lane = Lane("carp1", asyncio.get_running_loop())
        lane.submit([recorder(log, "add"), background(recorder(log, "up hook", 0.2))])
        lane.submit([recorder(log, "remove"), background(recorder(log, "down hook"))])
        await lane.settle()

    asyncio.run(main())
    assert log.index("remove end") < log.index("up hook end")
    assert log.index("up hook end") < log.index("down hook start")


def test_background_chains_keep_their_own_order_and_do_not_wait_for_each_other() -> None:
    """A conntrackd resync that hangs holds the next resync, not the up hook or an action
    queued behind it in the same lane (review-integrations.md, finding 2)."""
    log: list[str] = []
    hang = asyncio.Event()

    async def resync() -> None:
        log.append("resync start")
        await hang.wait()
        log.append("resync end")

    async def main() -> None:
        lane = Lane("carp1", asyncio.get_running_loop())
        lane.submit(
            [
                recorder(log, "add"),
                background(Step("resync", resync), "conntrackd"),
                background(recorder(log, "up hook"), "hooks"),
                background(recorder(log, "master actions"), "carp1 actions"),
            ]
        )
        lane.submit([background(recorder(log, "resync as backup"), "conntrackd")])
        await asyncio.sleep(0.1)
        assert log == [
            "add start",
            "add end",
            "resync start",
            "up hook start",
            "master actions start",
            "up hook end",
            "master actions end",
        ]
        hang.set()
        await lane.settle()

    asyncio.run(main())
    assert log[-3:] == ["resync end", "resync as backup start", "resync as backup end"]


def test_a_failing_step_is_logged_and_counted_and_the_lane_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[str] = []

    async def main() -> Lane:
        lane = Lane("carp1", asyncio.get_running_loop())
        lane.submit([recorder(log, "add", fail=True), recorder(log, "announce")])
        await lane.settle()
        return lane

    lane = asyncio.run(main())
    assert log == ["add start", "announce start", "announce end"]
    assert (lane.stats["add"].failed, lane.stats["add"].last_error) == (1, "refused")
    assert "carp1: add failed: refused" in caplog.messages


def test_a_late_step_is_not_cancelled_and_settle_waits_for_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[str] = []
    slow = recorder(log, "commit", takes=0.3)

    async def main() -> Lane:
        lane = Lane("carp1", asyncio.get_running_loop())
        lane.submit([Step(slow.name, slow.run, deadline=0.1), recorder(log, "add")])
        await lane.settle()
        return lane

    lane = asyncio.run(main())
    # The lane went on at the deadline; the late step still finished, before settle returned.
    assert log == ["commit start", "add start", "add end", "commit end"]
    assert (lane.stats["commit"].late, lane.stats["commit"].runs) == (1, 1)
    assert not lane.busy
    assert "carp1: commit did not finish within 0.1 s: going on without it" in caplog.messages


def test_a_pile_up_of_coalescing_steps_runs_the_running_one_and_the_latest() -> None:
    """Last state wins: up, down, up, down queued while the first up hook still runs;
    the two in between are skipped (counted), the latest runs, in order."""
    log: list[str] = []

    def hook(name: str, takes: float = 0.0) -> Step:
        step = recorder(log, name, takes)
        return Step(name, step.run, blocking=False, coalesce="role hook")

    async def main() -> Lane:
        lane = Lane("carp1", asyncio.get_running_loop())
        lane.submit([hook("up", 0.1)])
        await asyncio.sleep(0.02)  # "up" is running
        lane.submit([hook("down")])
        lane.submit([hook("up")])
        lane.submit([hook("down")])
        await lane.settle()
        return lane

    lane = asyncio.run(main())
    assert log == ["up start", "up end", "down start", "down end"]
    assert (lane.stats["up"].skipped, lane.stats["down"].skipped) == (1, 1)
    assert (lane.stats["up"].runs, lane.stats["down"].runs) == (1, 1)
