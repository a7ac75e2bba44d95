"""Health benchmark: how fast demotion moves the role, and what a client sees.

Run as root:  .venv/bin/python bench/health.py [--runs N]

Two carpd nodes with preempt on (node1 advskew 0 is MASTER, node2 advskew 100) and a
client pinging the virtual address every 10 ms. Each run measures, from the operator's
action on node1:
- `carpctl maintenance on`  -> node2's MASTER log line, node2 holding the address,
  and the client's longest gap;
- a service check starting to fail, then `carpctl service-status` -> the same.
Writes bench/results/health.json and bench/results/health.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import setting_up  # noqa: E402

from carpd.ctl.main import request  # noqa: E402
from carpd_lab.cluster import Node, VhidSpec, line_time, start_master_first  # noqa: E402
from carpd_lab.netlab import Lab, terminate_on_sigterm  # noqa: E402
from carpd_lab.probe import Pinger  # noqa: E402

VIP = "192.0.2.100"
RESULTS = ROOT / "bench" / "results"


def one_run(trigger: str) -> dict[str, Any]:
    with Lab("bh") as lab:
        with setting_up(f"carpd pair ({trigger})"):
            h1 = lab.add_host("n1", "192.0.2.1/24")
            h2 = lab.add_host("n2", "192.0.2.2/24")
            client = lab.add_host("cl", "192.0.2.9/24")
            # No periodic checks: the timing starts at `carpctl service-status`.
            settings = {"preempt": True, "service_interval": 0}
            n1 = Node(lab, h1, [VhidSpec(1, (f"{VIP}/24",), advskew=0)], settings)
            n2 = Node(lab, h2, [VhidSpec(1, (f"{VIP}/24",), advskew=100)], {"preempt": True})
            flag = lab.tmp / "web-ok"
            flag.touch()
            n1.add_check("web", f"test -e {flag}")
            start_master_first(n1, n2)
            h1.wait_address(VIP)
            n1.wait_ready()
            n2.wait_ready()
            ping = Pinger(client, VIP)
            ping.wait_reply()
            n2.wait_counter("adverts_received", 2)
        mark = n2.mark()
        t0 = time.time()
        if trigger == "maintenance":
            reply = request(str(n1.socket), {"command": "maintenance", "on": True})
        else:
            flag.unlink()
            reply = request(str(n1.socket), {"command": "service-status"})
        assert reply["ok"], reply
        _, line = n2.wait_state("MASTER", timeout=10, start=mark)
        h2.wait_address(VIP)
        held = time.time() - t0
        ping.log.wait_for(r"bytes from", timeout=2, start=ping.mark())
        time.sleep(0.3)
        outage = ping.stop()
        return {
            "master_ms": (line_time(line) - t0) * 1000,
            "address_ms": held * 1000,
            "outage_ms": outage.longest_gap_ms,
            "setting": "CARP advbase 1, advskew 0/100, preempt",
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    restore = terminate_on_sigterm()
    rows: list[tuple[str, str, list[float]]] = []
    raw: dict[str, Any] = {}
    try:
        for trigger in ("maintenance", "service check"):
            samples = []
            for i in range(runs):
                print(f"[{trigger}] run {i + 1}/{runs}", flush=True)
                samples.append(one_run(trigger))
            raw[trigger] = samples
            for key, label in (
                ("master_ms", "-> other node's MASTER log line"),
                ("address_ms", "-> other node holds the address (seen by polling)"),
                ("outage_ms", "client outage (ping every 10 ms)"),
            ):
                rows.append((trigger, label, [s[key] for s in samples]))
    except KeyboardInterrupt:
        print("interrupted: labs removed", file=sys.stderr)
        return 130
    finally:
        restore()
    lines = ["| trigger | measurement | runs | median ms | max ms |", "|---|---|---:|---:|---:|"]
    for trigger, label, values in rows:
        lines.append(
            f"| {trigger} | {label} | {len(values)} | {statistics.median(values):.0f} "
            f"| {max(values):.0f} |"
        )
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "health.md").write_text(table + "\n")
    (RESULTS / "health.json").write_text(json.dumps(raw, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
