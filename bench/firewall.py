"""Connections through a firewall pair across a crash: carpd + conntrackd against
keepalived + conntrackd with conntrack-tools' primary-backup.sh (the canonical set-up).

Run as root:  .venv/bin/python bench/firewall.py [--runs N] [--connections N]

Each run builds carpd_lab.firewall's pair (nftables SNAT, nf_conntrack_tcp_loose = 0,
conntrackd FTFW on a sync link, the same conntrackd.conf for both daemons), opens
``--connections`` TCP connections from the client to the server through it (half send a
record every 200 ms, half stay idle), waits until the backup's conntrackd has all of
them, and crashes the master at a random moment between adverts (every process of the
box stopped, its links cut, killed). The client and the server cap TCP's retransmission
backoff at TCP_RTO_MAX (1 s, as the lab tests do; ``--uncapped``: the kernel's own, as in
production): uncapped, whether a connection rides the 3.0 s or the 6.2 s retransmission
depends on where the crash fell between adverts more than on the daemon, and two daemons'
medians differ by a coin flip; capped, data flows again within a second of the takeover
and its commit, so one backoff step (1 s) is the comparison's resolution. Measured:

- survived: connections that still work (a sending one carried a record sent after the
  crash; an idle one echoes a probe), out of all;
- data again: from the crash until every sending connection carried data again (max),
  and the median over them;
- takeover: from the crash until the backup logs MASTER (as the line is read);
- invalid: packets the new master dropped as belonging to no connection it knew: those
  that arrived after its addresses came up but before the commit (keepalived #2254).
  Each costs its connection one more TCP backoff (data flowing seconds later).

Writes bench/results/firewall.json and firewall.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import setting_up  # noqa: E402

from carpd_lab.firewall import TCP_RTO_MAX, FirewallPair  # noqa: E402
from carpd_lab.netlab import Lab, terminate_on_sigterm  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CONNECTIONS = 1000
INTERVAL = 0.2  # each sending connection: a record every 200 ms
# TCP's backoff after the crash: 0.2, 0.6, 1.4, 3.0, 6.2, 12.6, 25.4 s; a connection
# not back by the 25.4 s retransmission is counted as lost.
WAIT = 30.0
DAEMONS = ("carpd", "keepalived")


def one(
    kind: str, connections: int = CONNECTIONS, rto_max: float | None = TCP_RTO_MAX
) -> dict[str, Any]:
    with Lab("bfw") as lab:
        with setting_up(f"{kind} firewall pair, {connections} connections synced"):
            pair = FirewallPair(lab, daemon=kind, rto_max=rto_max)
            pair.start()
            flows = pair.flows(tcp=connections, active=connections // 2, interval=INTERVAL)
            pair.wait_synced(connections, WAIT)
        time.sleep(random.random())  # a random moment between the master's adverts
        backup_log = pair.keepalived[1].log if kind == "keepalived" else pair.fw[1].log
        assert backup_log is not None
        start = backup_log.mark()
        crashed = pair.crash(pair.fw[0])
        since = flows.mark(crashed)
        master = r"\(lan\) Entering MASTER STATE" if kind == "keepalived" else r"lan: .*-> MASTER"
        backup_log.wait_for(master, WAIT, start)
        takeover = time.monotonic() - crashed
        with contextlib.suppress(TimeoutError):  # some never came back: the report says
            flows.wait_resumed(WAIT, since)
        report = flows.report(5.0)
        invalid = pair.invalid(pair.fw[1])
        back = [r for r in report["resumed"] if r is not None]
        return {
            "connections": report["connections"],
            "survived": report["working"],
            "lost": report["connections"] - report["working"],
            "data_again_max_s": max(back) if back else float("nan"),
            "data_again_median_s": statistics.median(back) if back else float("nan"),
            "takeover_s": round(takeover, 3),
            "invalid_on_new_master": invalid,
            "errors": report["errors"],
            "server_accepts": len(flows.server_events("accept")),
            "rto_max_s": rto_max if rto_max is not None else float("nan"),
        }


def table(raw: dict[str, list[dict[str, Any]]]) -> str:
    lines = [
        "| daemon + conntrackd | runs | survived (every run) | data flowing again, s: "
        "median of runs' max / worst run | takeover, s: median / max | invalid drops on the "
        "new master, per run |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for kind, samples in raw.items():
        survived = ", ".join(f"{s['survived']}/{s['connections']}" for s in samples)
        again = [s["data_again_max_s"] for s in samples]
        take = [s["takeover_s"] for s in samples]
        lines.append(
            f"| {kind} | {len(samples)} | {survived} | {statistics.median(again):.2f} / "
            f"{max(again):.2f} | {statistics.median(take):.2f} / {max(take):.2f} | "
            f"{', '.join(str(s['invalid_on_new_master']) for s in samples)} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    parser.add_argument(
        "--uncapped", action="store_true", help="the kernel's own TCP backoff (3.0, 6.2 s...)"
    )
    args = parser.parse_args()
    rto_max = None if args.uncapped else TCP_RTO_MAX
    restore = terminate_on_sigterm()
    raw: dict[str, list[dict[str, Any]]] = {k: [] for k in DAEMONS}
    try:
        for i in range(args.runs):
            for kind in DAEMONS:  # alternating, so a slow spell hits both
                t0 = time.monotonic()
                r = one(kind, args.connections, rto_max)
                raw[kind].append(r)
                print(f"[{kind}] run {i + 1}/{args.runs} ({time.monotonic() - t0:.0f} s): {r}")
    except KeyboardInterrupt:
        print("interrupted: labs removed", file=sys.stderr)
        return 130
    finally:
        restore()
    text = table(raw)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "firewall.md").write_text(text + "\n")
    (RESULTS / "firewall.json").write_text(json.dumps(raw, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
