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
and its commit, so one backoff step (1 s) is the comparison's resolution.

Where the crash falls in the advert interval sets when the backup takes over (2.39 to
3.39 s after it, for either daemon): with a random moment each, five runs of one daemon
can fall late and five of the other early, and the comparison measures the dice. So the
runs are paired (``Phases``): the n-th run of each daemon crashes at the same moment
after the master's advert as the client's kernel stamped it, one moment in each n-th of
the interval. Measured:

- survived: connections that still work (a sending one carried a record sent after the
  crash; an idle one echoes a probe), out of all;
- data again: from the crash until every sending connection carried data again (max),
  and the median over them;
- takeover: from the crash until the new master's first advert, stamped by the client's
  kernel (the same way for both daemons), and the crash's phase: how long after the old
  master's last advert it fell;
- data again after the takeover: from that first advert until the last sending
  connection carried data again: the daemon's own part (a commit, the addresses, the
  announcements) and the wait for a retransmission;
- invalid: packets the new master dropped as belonging to no connection it knew: those
  that arrived after its addresses came up but before the commit (keepalived #2254).
  Each costs its connection one more TCP backoff (data flowing seconds later).

Writes bench/results/firewall.json and firewall.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import (  # noqa: E402
    Phases,
    by_phase,
    crash_phase,
    setting_up,
    sleep_to_phase,
    takeover_on_the_wire,
)

from carpd_lab.firewall import TCP_RTO_MAX, FirewallPair  # noqa: E402
from carpd_lab.netlab import Lab, LogWatch, terminate_on_sigterm  # noqa: E402
from carpd_lab.probe import sniff  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CONNECTIONS = 1000
INTERVAL = 0.2  # each sending connection: a record every 200 ms
# TCP's backoff after the crash: 0.2, 0.6, 1.4, 3.0, 6.2, 12.6, 25.4 s; a connection
# not back by the 25.4 s retransmission is counted as lost.
WAIT = 30.0
DAEMONS = ("carpd", "keepalived")
ADVBASE = 1.0  # the pair's advert interval (carpd_lab.firewall: advbase 1, VRRPv3 1 s)
FW1, FW2 = "192.0.2.2", "192.0.2.3"  # the nodes' LAN addresses: the adverts' sources


def crash_at_phase(pair: FirewallPair, watch: LogWatch, phase: float) -> tuple[float, float]:
    """Crash fw1 ``phase`` of an interval after one of its adverts (the client's kernel
    stamp, wall clock); returns the crash's (monotonic, wall) moments."""
    sleep_to_phase(watch, rf"^\S+ (carp|vrrp) {FW1} ", ADVBASE, phase)
    crashed = pair.crash(pair.fw[0])
    return crashed, crashed + time.time() - time.monotonic()


def one(
    kind: str,
    connections: int = CONNECTIONS,
    rto_max: float | None = TCP_RTO_MAX,
    phases: Phases | None = None,
) -> dict[str, Any]:
    with Lab("bfw") as lab:
        with setting_up(f"{kind} firewall pair, {connections} connections synced"):
            pair = FirewallPair(lab, daemon=kind, rto_max=rto_max)
            pair.start()
            flows = pair.flows(tcp=connections, active=connections // 2, interval=INTERVAL)
            pair.wait_synced(connections, WAIT)
            watch = sniff(pair.client, "--times")
        start = watch.mark()
        with crash_phase(phases, kind) as phase:
            crashed, wall = crash_at_phase(pair, watch, phase)
        since = flows.mark(crashed)
        watch.wait_for(rf"^\S+ (carp|vrrp) {FW2} ", WAIT, start)
        last, first = takeover_on_the_wire(watch.lines, FW1, FW2, wall)
        takeover = first - wall
        with contextlib.suppress(TimeoutError):  # some never came back: the report says
            flows.wait_resumed(WAIT, since)
        report = flows.report(5.0)
        invalid = pair.invalid(pair.fw[1])
        back = [r for r in report["resumed"] if r is not None]
        again = max(back) if back else float("nan")
        return {
            "connections": report["connections"],
            "survived": report["working"],
            "lost": report["connections"] - report["working"],
            "data_again_max_s": again,
            "data_again_median_s": statistics.median(back) if back else float("nan"),
            "takeover_s": round(takeover, 3),
            "phase": phase,  # the one asked for (Phases), which pairs the daemons' runs
            "phase_s": round(wall - last, 3),  # the crash, after the old master's last advert
            "after_takeover_s": round(again - takeover, 3),
            "invalid_on_new_master": invalid,
            "errors": report["errors"],
            "server_accepts": len(flows.server_events("accept")),
            "rto_max_s": rto_max if rto_max is not None else float("nan"),
        }


def table(raw: dict[str, list[dict[str, Any]]]) -> str:
    lines = [
        "| daemon + conntrackd | runs | survived (every run) | data flowing again, s: "
        "median of runs' max / worst run | takeover, s: median / max | data again after "
        "the takeover, s: median / max | invalid drops on the new master, per run |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for kind, samples in raw.items():
        survived = ", ".join(f"{s['survived']}/{s['connections']}" for s in samples)
        cells = [
            f"{statistics.median(v):.2f} / {max(v):.2f}"
            for v in (
                [s["data_again_max_s"] for s in samples],
                [s["takeover_s"] for s in samples],
                [s["after_takeover_s"] for s in samples],
            )
        ]
        lines.append(
            f"| {kind} | {len(samples)} | {survived} | {' | '.join(cells)} | "
            f"{', '.join(str(s['invalid_on_new_master']) for s in samples)} |"
        )
    return "\n".join(lines)


def paired(raw: dict[str, list[dict[str, Any]]]) -> str:
    """Run by run, both daemons at the same phase: data flowing again (the last
    connection), in seconds after the crash."""
    return by_phase(
        raw,
        lambda r: (
            f"{r['data_again_max_s']:.2f} (crash {r['phase_s']:.2f} s after an advert, "
            f"takeover {r['takeover_s']:.2f})"
        ),
    )


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
    phases = Phases(args.runs)
    try:
        for i in range(args.runs):
            for kind in DAEMONS:  # alternating, so a slow spell hits both
                t0 = time.monotonic()
                r = one(kind, args.connections, rto_max, phases)
                raw[kind].append(r)
                print(f"[{kind}] run {i + 1}/{args.runs} ({time.monotonic() - t0:.0f} s): {r}")
    except KeyboardInterrupt:
        print("interrupted: labs removed", file=sys.stderr)
        return 130
    finally:
        restore()
    text = table(raw) + "\n\n" + paired(raw)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "firewall.md").write_text(text + "\n")
    (RESULTS / "firewall.json").write_text(json.dumps(raw, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
