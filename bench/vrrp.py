"""VRRPv3 crash failover: carpd vs keepalived at 0.1 s, 0.5 s and 1 s adverts.

Run as root:  .venv/bin/python bench/vrrp.py [--runs N]

Each run: a pair of the same daemon (priority 200 MASTER, 100 BACKUP) and a client
pinging the virtual address every 10 ms; the master is crashed (kill -9 and its link cut
at once, at a random moment between adverts). Measured: the client's longest gap and
the time from the kill to the backup announcing MASTER. Writes bench/results/vrrp.json
and bench/results/vrrp.md.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from carpd.lab.cluster import Node, VhidSpec, line_time, start_master_first  # noqa: E402
from carpd.lab.keepalived import Keepalived, instance  # noqa: E402
from carpd.lab.netlab import Lab, terminate_on_sigterm  # noqa: E402
from carpd.lab.probe import Pinger  # noqa: E402

VIP = "192.0.2.200"
RESULTS = ROOT / "bench" / "results"
INTERVALS = (0.1, 0.5, 1.0)


def run_carpd(lab: Lab, interval: float) -> dict[str, float]:
    h1, h2, client = (lab.hosts[n] for n in ("n1", "n2", "cl"))

    def spec(prio: int) -> list[VhidSpec]:
        extra = {"protocol": "vrrp3", "priority": prio, "advbase": interval, "accept": True}
        return [VhidSpec(9, (f"{VIP}/24",), password="", extra=extra)]

    n1, n2 = Node(lab, h1, spec(200)), Node(lab, h2, spec(100))
    start_master_first(n1, n2)
    h1.wait_address(VIP)
    n2.wait_counter("adverts_received", 3)
    ping = Pinger(client, VIP)
    ping.wait_reply()
    time.sleep(0.3 + random.random() * interval)
    mark = n2.mark()
    killed = time.time()
    n1.signal(signal.SIGKILL)
    lab.set_link(h1, False)
    _, line = n2.wait_state("MASTER", timeout=10, start=mark)
    return finish(ping, (line_time(line) - killed) * 1000)


def run_keepalived(lab: Lab, interval: float) -> dict[str, float]:
    h1, h2, client = (lab.hosts[n] for n in ("n1", "n2", "cl"))
    k1 = Keepalived(lab, h1, [instance("V4", 9, 200, f"{VIP}/24", interval)])
    k2 = Keepalived(lab, h2, [instance("V4", 9, 100, f"{VIP}/24", interval)])
    k1.wait_state("V4", "MASTER", timeout=15)
    k2.wait_state("V4", "BACKUP", timeout=5)
    h1.wait_address(VIP)
    ping = Pinger(client, VIP)
    ping.wait_reply()
    time.sleep(0.3 + random.random() * interval)
    mark = k2.log.mark()
    killed = time.monotonic()
    k1.kill()
    lab.set_link(h1, False)
    k2.log.wait_for(r"\(V4\) Entering MASTER STATE", 10, mark)
    # keepalived stamps whole seconds: time the line as it is read instead.
    return finish(ping, (time.monotonic() - killed) * 1000)


def finish(ping: Pinger, master_ms: float) -> dict[str, float]:
    ping.log.wait_for(r"bytes from", timeout=5, start=ping.mark())
    time.sleep(0.2)
    outage = ping.stop()
    return {"master_ms": master_ms, "outage_ms": outage.longest_gap_ms}


def one(impl: str, interval: float) -> dict[str, float]:
    with Lab("bv") as lab:
        lab.add_host("n1", "192.0.2.1/24")
        lab.add_host("n2", "192.0.2.2/24")
        lab.add_host("cl", "192.0.2.9/24")
        return (run_carpd if impl == "carpd" else run_keepalived)(lab, interval)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    restore = terminate_on_sigterm()
    raw: dict[str, list[dict[str, float]]] = {}
    try:
        for interval in INTERVALS:
            for impl in ("carpd", "keepalived"):
                key = f"{impl} {interval:g} s"
                raw[key] = []
                for i in range(runs):
                    print(f"[{key}] run {i + 1}/{runs}", flush=True)
                    raw[key].append(one(impl, interval))
    except KeyboardInterrupt:
        print("interrupted: labs removed", file=sys.stderr)
        return 130
    finally:
        restore()
    lines = [
        "| daemon | advert interval | master down (prio 100) | kill -> MASTER median / max "
        "| client outage median / max |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, samples in raw.items():
        impl, interval_s, _ = key.split()
        interval = float(interval_s)
        down = (3 + 156 / 256) * interval
        m = [s["master_ms"] for s in samples]
        o = [s["outage_ms"] for s in samples]
        lines.append(
            f"| {impl} | {interval:g} s | {down * 1000:.0f} ms | {statistics.median(m):.0f} / "
            f"{max(m):.0f} ms | {statistics.median(o):.0f} / {max(o):.0f} ms |"
        )
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "vrrp.md").write_text(table + "\n")
    (RESULTS / "vrrp.json").write_text(json.dumps(raw, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
