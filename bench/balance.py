"""A balanced address, a capacity demonstration: two nodes take in twice what one does,
the same traffic in the same run (issue 15's benchmark).

Run as root:  .venv/bin/python bench/balance.py [--runs N] [--rate BYTES_PER_S]

Each run builds carpd_lab.balance's pool of two nodes (one per mode: ip, arp). Each node
runs a sink that takes in at most ``--rate`` bytes/s in all (a token bucket): the
node's capacity, the bottleneck, as a CPU-bound service would be. 64 TCP streams send as
fast as they can: in ip mode from 64 source addresses of one client, in arp mode from 64
client namespaces (the ARP requesters). First with the second node in maintenance (every
bucket on the first node), then with both serving; each phase is measured over WINDOW
seconds after a second of ramp-up, from what the sinks took in.

What it shows and what it does not: the senders offer far more than a sink takes, so the
sinks' caps set the throughput, and two nodes read twice one whatever the split, as long
as each node serves at least one stream. It is a demonstration that capacity adds up, not
a measure of the split: for that each node's intake, its share of the streams (those it
accepted in the phase) and the buckets it serves are reported beside it (and
tests/lab/test_balance.py checks the split of sources within 25 %).

Writes bench/results/balance.json and balance.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import setting_up  # noqa: E402

from carpd_lab.balance import CLIENTS, SINK_PORT, SOURCES, VIP, Pool  # noqa: E402
from carpd_lab.netlab import Lab, LogWatch, terminate_on_sigterm  # noqa: E402

RESULTS = ROOT / "bench" / "results"
RATE = 20e6  # bytes/s a node takes in
RAMP = 1.0
WINDOW = 4.0
STREAMS = 64


def report(sink: LogWatch) -> tuple[int, int]:
    """A sink's latest report: (bytes taken in so far, streams accepted so far)."""
    for line in reversed(sink.lines):
        fields = line.split()
        if len(fields) == 3 and fields[0][0].isdigit():
            return int(fields[1]), int(fields[2])
    return 0, 0


def measure(pool: Pool, sinks: list[LogWatch], lab: Lab) -> tuple[list[float], list[int]]:
    """Each node's intake in bytes/s from STREAMS streams over WINDOW seconds, and the
    streams each accepted."""
    seconds = RAMP + WINDOW + 1.0
    accepted = [report(w)[1] for w in sinks]
    senders: list[subprocess.Popen[bytes]] = []
    if pool.mode == "ip":
        first = SOURCES[0]
        last = f"203.0.113.{STREAMS}"
        argv = [sys.executable, "-m", "carpd_lab.balance", "send", VIP, first, last, str(seconds)]
        senders.append(pool.client.spawn(argv))
    else:
        line = f"cat /dev/zero > /dev/tcp/{VIP}/{SINK_PORT}"
        for c in pool.clients[:STREAMS]:
            senders.append(c.spawn(["timeout", str(seconds), "bash", "-c", line]))
    time.sleep(RAMP)  # the streams' slow start and the sinks' first reports
    t0, b0 = time.monotonic(), [report(w)[0] for w in sinks]
    time.sleep(WINDOW)
    t1, end = time.monotonic(), [report(w) for w in sinks]
    for p in senders:
        p.wait(timeout=seconds + 10)
    intake = [(b - a) / (t1 - t0) for a, (b, _) in zip(b0, end, strict=True)]
    return intake, [n - a for a, (_, n) in zip(accepted, end, strict=True)]


def serving(pool: Pool) -> list[list[int]]:
    """The buckets each node serves, as its status says."""
    return [
        list((n.status().get("pools") or {}).get("web", {}).get("serving", [])) for n in pool.nodes
    ]


def one(mode: str, rate: float) -> dict[str, Any]:
    with Lab("bbal") as lab:
        with setting_up(f"a pool of two, {mode} mode"):
            pool = Pool(lab, 2, mode)
            pool.start()
            sinks = []
            for node in pool.nodes:
                proc = node.host.spawn(
                    [sys.executable, "-m", "carpd_lab.balance", "sink", str(rate)],
                    stdout=subprocess.PIPE,
                )
                assert proc.stdout is not None
                watch = LogWatch(proc.stdout)
                watch.wait_for("^listening$", 10)
                sinks.append(watch)
            n1, n2 = pool.nodes
            assert n2.ctl("maintenance", "on")[0] == 0
            pool.wait_serving(n1, [0, 1], 10)
        one_node, one_streams = measure(pool, sinks, lab)
        one_buckets = serving(pool)
        assert n2.ctl("maintenance", "off")[0] == 0
        pool.wait_serving(n2, [1], 10)
        pool.wait_serving(n1, [0], 10)
        two_nodes, two_streams = measure(pool, sinks, lab)
        return {
            "mode": mode,
            "rate": rate,
            "one": sum(one_node),
            "two": sum(two_nodes),
            "one_per_node": one_node,
            "two_per_node": two_nodes,
            "one_streams": one_streams,
            "two_streams": two_streams,
            "one_buckets": one_buckets,
            "two_buckets": serving(pool),
        }


def markdown(samples: list[dict[str, Any]], rate: float) -> str:
    lines = [
        "# Balanced address: two nodes against one (a capacity demonstration)",
        "",
        f"Each node takes in at most {rate / 1e6:.0f} MB/s (its sink's cap: its capacity, "
        f"the bottleneck); {STREAMS} TCP streams offer more than that; ip mode: {STREAMS} "
        f"sources of one client; arp mode: {STREAMS} of the {CLIENTS} client namespaces. "
        "The caps set the totals: two nodes take in twice one as long as each serves a "
        "stream, whatever the split; the split is in the per-node columns (median; the "
        "streams each node accepted). `.venv/bin/python bench/balance.py`.",
        "",
        "| mode | runs | one node (other in maintenance), MB/s | two nodes, MB/s: node 1 + "
        "node 2 | streams, node 1 / node 2 | buckets served |",
        "|---|---|---:|---:|---:|---|",
    ]
    for mode in ("ip", "arp"):
        these = [s for s in samples if s["mode"] == mode]
        if not these:
            continue
        med = statistics.median

        def node(key: str, i: int, these: list[dict[str, Any]] = these) -> float:
            return statistics.median(s[key][i] for s in these)

        lines.append(
            f"| {mode} | {len(these)} | {med(s['one'] for s in these) / 1e6:.1f} | "
            f"{med(s['two'] for s in these) / 1e6:.1f}: {node('two_per_node', 0) / 1e6:.1f} + "
            f"{node('two_per_node', 1) / 1e6:.1f} | {node('two_streams', 0):.0f} / "
            f"{node('two_streams', 1):.0f} | {these[-1]['two_buckets']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--rate", type=float, default=RATE)
    p.add_argument("--modes", default="ip,arp")
    args = p.parse_args()
    restore = terminate_on_sigterm()
    samples = []
    try:
        for _ in range(args.runs):
            for mode in args.modes.split(","):
                s = one(mode, args.rate)
                print(json.dumps(s), flush=True)
                samples.append(s)
    finally:
        restore()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "balance.json").write_text(json.dumps(samples, indent=2) + "\n")
    text = markdown(samples, args.rate)
    (RESULTS / "balance.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
