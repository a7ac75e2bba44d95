"""Throughput of a balanced address: two nodes against one, the same traffic in the same
run (issue 15's benchmark).

Run as root:  .venv/bin/python bench/balance.py [--runs N] [--rate BYTES_PER_S]

Each run builds carpd_lab.balance's pool of two nodes (one per mode: ip, arp). Each node
runs a sink that takes in at most ``--rate`` bytes/s in all (a token bucket): the
node's capacity, the bottleneck, as a CPU-bound service would be. 64 TCP streams send as
fast as they can: in ip mode from 64 source addresses of one client, in arp mode from 64
client namespaces (the ARP requesters). First with the second node in maintenance (every
bucket on the first node), then with both serving; each phase is measured over WINDOW
seconds after a second of ramp-up, from what the sinks took in.

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

from carpd_lab.balance import CLIENTS, SINK_PORT, SOURCES, VIP, Pool  # noqa: E402
from carpd_lab.netlab import Lab, LogWatch, terminate_on_sigterm  # noqa: E402

RESULTS = ROOT / "bench" / "results"
RATE = 20e6  # bytes/s a node takes in
RAMP = 1.0
WINDOW = 4.0
STREAMS = 64


def total(sinks: list[LogWatch]) -> float:
    """What every sink has taken in so far (its latest report)."""
    return sum(int(w.lines[-1].split()[1]) for w in sinks if w.lines and w.lines[-1][0].isdigit())


def measure(pool: Pool, sinks: list[LogWatch], lab: Lab) -> float:
    """Bytes/s the pool took in from STREAMS streams over WINDOW seconds."""
    seconds = RAMP + WINDOW + 1.0
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
    t0, b0 = time.monotonic(), total(sinks)
    time.sleep(WINDOW)
    t1, b1 = time.monotonic(), total(sinks)
    for p in senders:
        p.wait(timeout=seconds + 10)
    return (b1 - b0) / (t1 - t0)


def one(mode: str, rate: float) -> dict[str, Any]:
    with Lab("bbal") as lab:
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
        one_node = measure(pool, sinks, lab)
        assert n2.ctl("maintenance", "off")[0] == 0
        pool.wait_serving(n2, [1], 10)
        pool.wait_serving(n1, [0], 10)
        two_nodes = measure(pool, sinks, lab)
        return {"mode": mode, "rate": rate, "one": one_node, "two": two_nodes,
                "ratio": two_nodes / one_node}  # fmt: skip


def markdown(samples: list[dict[str, Any]], rate: float) -> str:
    lines = [
        "# Balanced address: two nodes against one",
        "",
        f"Each node takes in at most {rate / 1e6:.0f} MB/s (its capacity); {STREAMS} TCP "
        f"streams; ip mode: {STREAMS} sources of one client; arp mode: {STREAMS} of the "
        f"{CLIENTS} client namespaces. `.venv/bin/python bench/balance.py`.",
        "",
        "| mode | runs | one node, MB/s | two nodes, MB/s | ratio (median) |",
        "|---|---|---|---|---|",
    ]
    for mode in ("ip", "arp"):
        these = [s for s in samples if s["mode"] == mode]
        if not these:
            continue
        med = statistics.median
        lines.append(
            f"| {mode} | {len(these)} | {med(s['one'] for s in these) / 1e6:.1f} | "
            f"{med(s['two'] for s in these) / 1e6:.1f} | {med(s['ratio'] for s in these):.2f} |"
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
