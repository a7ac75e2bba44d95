"""[[pool]] balancing ip (issue 15): one address, a vhid per node, 254 client sources.
Every source reaches the service, each node serves about its share, a crashed node's
buckets move to the others (and only its buckets), and it takes them back when it
returns."""

from __future__ import annotations

import collections
import time

import pytest

from carpd_lab import bounds
from carpd_lab.balance import Pool
from carpd_lab.netlab import Lab

SHARE = 0.25  # each node within 25 % of an even split


def reached(pool: Pool, expect: dict[str, str] | None, timeout: float) -> dict[str, str]:
    """Probe until every source is answered (and, with ``expect``, by that node)."""
    deadline = time.monotonic() + timeout
    while True:
        answers = pool.probe()
        done = all(answers.values()) and (expect is None or answers == expect)
        if done:
            return {s: n for s, n in answers.items() if n is not None}
        if time.monotonic() > deadline:
            missing = [s for s, n in answers.items() if n is None]
            moved = [s for s, n in answers.items() if expect and n != expect.get(s)]
            raise AssertionError(
                f"unanswered {missing[:5]}... ({len(missing)}), unexpected {len(moved)}"
            )


@pytest.mark.parametrize("mode", ["ip", "arp"])
@pytest.mark.parametrize("count", [2, 3])
def test_a_pool_shares_the_sources_and_a_crash_moves_only_that_nodes_buckets(
    lab: Lab, count: int, mode: str
) -> None:
    pool = Pool(lab, count, mode)
    pool.start()
    before = reached(pool, None, bounds.COMMAND)
    per_node = collections.Counter(before.values())
    print(f"{mode}, {count} nodes, sources per node: {dict(sorted(per_node.items()))}")
    even = len(before) / count
    assert set(per_node) == {n.name for n in pool.nodes}
    assert all(abs(k - even) <= SHARE * even for k in per_node.values()), per_node

    # Crash the last node: its sources go to the others, nobody else's move.
    victim = pool.nodes[-1]
    crashed = lab.crash(victim.host)
    assert victim.proc is not None
    victim.proc.wait(timeout=bounds.COMMAND)
    survivors = pool.nodes[:-1]
    bound = pool.master_down + bounds.REACTION + bounds.COMMAND
    after = reached(pool, None, bound)
    took = time.monotonic() - crashed
    print(f"every source answered again {took:.2f} s after the crash")
    assert set(after.values()) <= {n.name for n in survivors}
    stayed = {s: n for s, n in before.items() if n != victim.name}
    assert {s: after[s] for s in stayed} == stayed  # only the victim's buckets moved

    # It comes back (preempt): its buckets, and exactly those, return to it.
    lab.cut(victim.host, on=False)
    pool.serve(victim)
    victim.start()
    victim.wait_state("MASTER", f"web-{count}", bounds.first_master(pool.master_down))
    pool.wait_serving(victim, [count - 1])
    assert reached(pool, before, bounds.COMMAND) == before
