"""State sync at a real firewall's scale: carpd + conntrackd with 10k to 1M connections.

Run as root:  .venv/bin/python bench/scale_sync.py [--sizes 10000,100000] [--runs N]
              [--mode commit|direct] [--flows N]

Each run builds carpd_lab.firewall's pair (nftables SNAT, nf_conntrack_tcp_loose = 0,
conntrackd FTFW on a sync link), opens ``--flows`` real TCP connections from the client
to the server through it (half send a record every 200 ms), then fills fw1's table with
``size`` more established, SNATed TCP entries in one burst (``conntrack -R``: the kernel
sends conntrackd an event for each, as for a burst of real connections). Measured:

- fill: how long the burst took to enter fw1's table;
- synced: from the start of the burst until the backup holds fw1's whole table (its
  external cache, or with ``direct`` (DisableExternalCache On) its kernel table), and
  the sync rate that makes; the gap left (fw1's count less the backup's) when it stopped
  growing, if it never got there;
- resync: the backup's conntrackd killed: from the kill until carpd's "bulk done", the
  backup's count then, and until it held the whole table again;
- the crash: fw1 crashed at a moment between adverts, the same for each kind's n-th run
  (bench/firewall.py's Phases, one in each n-th of the interval): takeover (crash to fw2's
  MASTER line), ``conntrackd -c``'s duration on fw2 and whether carpd gave up waiting
  for it (the addresses went up over a half-committed table), the real flows (survived,
  data flowing again: the worst connection and the median), packets fw2 dropped as
  invalid;
- conntrackd's and carpd's RSS and CPU (utime + stime over the fill and sync) on both
  nodes.

The host's ``net.netfilter.nf_conntrack_max`` caps every namespace's table (Linux 6.x):
a size above it less the flows is refused up front, not half measured (the benchmark
never raises the host's limit).

Writes bench/results/scale_sync.json and scale_sync.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import Phases, SetupError, crash_phase, setting_up  # noqa: E402
from firewall import crash_at_phase  # noqa: E402

from carpd_lab import bounds  # noqa: E402
from carpd_lab.cluster import Node, line_time  # noqa: E402
from carpd_lab.conntrackd_stats import peer_connections  # noqa: E402
from carpd_lab.firewall import LAN_VIP, TCP_RTO_MAX, FirewallPair, fill_lines  # noqa: E402
from carpd_lab.netlab import Host, Lab, terminate_on_sigterm  # noqa: E402
from carpd_lab.probe import sniff  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SIZES = (10_000, 100_000, 250_000, 500_000, 1_000_000)  # 250k: the most a default host holds
FLOWS = 200
KINDS: tuple[tuple[Literal["carpd", "keepalived"], str, str], ...] = (  # ./scripts/bench's
    ("carpd", "commit", "external cache"),
    ("carpd", "direct", "DisableExternalCache"),
    ("keepalived", "commit", "external cache, primary-backup.sh"),
)
INTERVAL = 0.2  # each sending flow: a record every 200 ms
# The target: the backup holds the whole table within this of a burst or a restart.
COMPLETE = 60.0
POLL = 0.5  # seconds between two looks at the backup's count (listing 250k takes 0.5 s)
WAIT = 30.0  # TCP's backoff capped at TCP_RTO_MAX: every flow is back well within this
INTERNAL = re.compile(r"cache internal:\s*\ncurrent active connections:\s*(\d+)")
HOST_MAX = Path("/proc/sys/net/netfilter/nf_conntrack_max")


class TooBig(RuntimeError):
    """The host's nf_conntrack_max cannot hold the size: not measured (and not a set-up
    failure that a retry could mend)."""


def host_limit() -> int:
    return int(HOST_MAX.read_text())


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def kernel_count(host: Host) -> int:
    return int(host.check("conntrack", "-C").strip())


def conntrackd_stats(node: Node) -> str:
    return node.host.check("conntrackd", "-C", node.tables["conntrackd"]["config"], "-s")


OVERRUN = r"overrun|doubled|resync|dropping|HashLimit|Hash limit|full"


def conntrackd_log(node: Node, pattern: str) -> list[str]:
    """The lines of the node's conntrackd log that match ``pattern`` (overruns, resyncs)."""
    path = Path(node.tables["conntrackd"]["run_dir"]) / "conntrackd.log"
    try:
        text = path.read_text()
    except OSError:
        return []
    return [x for x in text.splitlines() if re.search(pattern, x, re.IGNORECASE)]


def counters(node: Node) -> dict[str, int]:
    """conntrackd -s's error counters on ``node``."""
    text = conntrackd_stats(node)
    out = {}
    for key, pattern in (
        ("lost", r"(\d+) Lost msgs"),
        ("malformed", r"(\d+) Malformed msgs"),
        ("send_errors", r"(\d+) Error send"),
        ("recv_errors", r"(\d+) Error recv"),
    ):
        m = re.search(pattern, text)
        out[key] = int(m.group(1)) if m else 0
    return out


def kernel_synced(host: Host) -> int:
    """The connections in a firewall's kernel table that conntrackd syncs: every TCP one
    (the fill's and the flows') and the flows' UDP one (not the sync link's, nor the
    adverts', which conntrackd.conf ignores)."""
    tcp = host.check("conntrack", "-L", "-p", "tcp").count("\n")
    return tcp + host.check("conntrack", "-L", "-p", "udp", "--dport", "7000").count("\n")


def held(pair: FirewallPair, direct: bool, kernel: bool = False) -> int:
    """What the backup (fw2) holds of fw1's table: its external cache; or (direct) what
    its conntrackd injected into its kernel table (created less destroyed), or with
    ``kernel`` what its kernel table holds of it (listed: slower, but it outlives a
    restart of conntrackd, whose counts start again from 0)."""
    fw2 = pair.fw[1]
    if direct and kernel:
        return kernel_synced(fw2.host)
    return peer_connections(conntrackd_stats(fw2))


def internal_cache(pair: FirewallPair) -> int:
    """fw1's conntrackd's internal cache: what it knows of fw1's table (HashLimit caps
    it)."""
    m = INTERNAL.search(conntrackd_stats(pair.fw[0]))
    return int(m.group(1)) if m else 0


def until_held(
    pair: FirewallPair, direct: bool, want: int, t0: float, limit: float, kernel: bool = False
) -> dict[str, Any]:
    """Polls the backup's count until it reaches ``want`` or ``limit`` s after ``t0``."""
    best, at = -1, t0
    while True:
        have = held(pair, direct, kernel)
        now = time.monotonic()
        if have > best:
            best, at = have, now
        if have >= want or now - t0 > limit:
            return {"held": have, "complete": have >= want, "at_s": round(at - t0, 2)}
        time.sleep(POLL)


class Usage:
    """CPU (utime + stime) and RSS of conntrackd on both firewalls, and of carpd (not
    keepalived's: its VRRP child does the work, and conntrackd's is what grows)."""

    def __init__(self, pair: FirewallPair) -> None:
        self.pids: dict[str, int] = {}
        for node in pair.fw:
            if pair.daemon == "carpd" and node.proc is not None:
                self.pids[f"{node.name} carpd"] = node.proc.pid
            self.pids[f"{node.name} conntrackd"] = pair.conntrackd_pid(node)
        self.t = time.monotonic()
        self.ticks = {k: cpu_ticks(p) for k, p in self.pids.items()}

    def report(self) -> dict[str, Any]:
        wall = time.monotonic() - self.t
        hz = os.sysconf("SC_CLK_TCK")
        out: dict[str, Any] = {}
        for k, pid in self.pids.items():
            with contextlib.suppress(OSError):
                out[k] = {
                    "cpu_s": round((cpu_ticks(pid) - self.ticks[k]) / hz, 2),
                    "cpu_pct": round(100 * (cpu_ticks(pid) - self.ticks[k]) / hz / wall, 1),
                    "rss_mib": round(rss_mib(pid), 1),
                }
        return out


def one(
    size: int,
    mode: str = "commit",
    flows: int = FLOWS,
    max_entries: int | None = None,
    daemon: Literal["carpd", "keepalived"] = "carpd",
    stall: bool = False,
    overrun_resync: int | None = None,
    rto_max: float | None = TCP_RTO_MAX,
    phases: Phases | None = None,
) -> dict[str, Any]:
    """One run: ``daemon`` (carpd, or keepalived with primary-backup.sh) and conntrackd
    with the external cache (``commit``) or without (``direct``: carpd only, as the stock
    script's -t would flush the peer's connections from the backup's kernel table).

    ``stall``: fw1's conntrackd stopped (SIGSTOP) during the burst, as a starved one is:
    the kernel's events wait in its netlink socket, those beyond its buffer are lost,
    and only its overrun resync (NetlinkOverrunResync) brings them back."""
    direct = mode == "direct"
    if size + flows + 100 > host_limit():
        raise TooBig(
            f"{size} entries: the host's nf_conntrack_max is {host_limit()} (it caps every "
            "namespace's table; the benchmark does not raise it)"
        )
    result: dict[str, Any] = {
        "size": size,
        "mode": mode,
        "daemon": daemon,
        "flows": flows,
        "sized_for": max_entries,
    }
    with Lab("bss") as lab:
        with setting_up(f"{daemon} firewall pair ({mode}), {flows} flows"):
            pair = FirewallPair(
                lab, daemon=daemon, max_entries=max_entries, direct=direct, rto_max=rto_max
            )
            if overrun_resync is not None:  # another NetlinkOverrunResync than carpd's
                for node in pair.fw:
                    conf = Path(node.tables["conntrackd"]["config"])
                    text = re.sub(
                        r"NetlinkOverrunResync \d+",
                        f"NetlinkOverrunResync {overrun_resync}",
                        conf.read_text(),
                    )
                    conf.write_text(text)
            result["overrun_resync"] = overrun_resync
            result["rto_max_s"] = rto_max
            pair.start()
            fw1, fw2 = pair.fw
            fl = pair.flows(tcp=flows, active=flows // 2, interval=INTERVAL)
            pair.wait_synced(flows, WAIT)
            lines = fill_lines(size)
            usage = Usage(pair)
        # The burst and the sync.
        t0 = time.monotonic()
        stopped = pair.conntrackd_pid(fw1) if stall else None
        if stopped is not None:
            os.kill(stopped, signal.SIGSTOP)
        try:
            fw1.host.check("conntrack", "-R", "-", stdin=lines)
        finally:
            if stopped is not None:
                os.kill(stopped, signal.SIGCONT)
        result["fill_s"] = round(time.monotonic() - t0, 2)
        result["stalled"] = stall
        result["fw1_table"] = kernel_count(fw1.host)
        want = kernel_synced(fw1.host)
        result["fw1_synced"] = want
        result["fw1_internal_cache"] = internal_cache(pair)
        sync = until_held(pair, direct, want, t0, COMPLETE)
        result["sync"] = sync
        result["sync_rate_per_s"] = round(sync["held"] / max(sync["at_s"], 1e-3))
        result["gap_after_burst"] = kernel_synced(fw1.host) - sync["held"]
        if direct:  # what the counts say, in the kernel table itself
            result["fw2_kernel_holds"] = held(pair, direct, kernel=True)
        result["usage_burst"] = usage.report()
        result["fw1_conntrackd_log"] = conntrackd_log(fw1, OVERRUN)
        result["fw2_counters"] = counters(fw2)
        if daemon == "carpd":
            result["resync"] = resync(pair, direct)
        else:  # keepalived's notify scripts run on transitions only: nobody restarts it
            result["resync"] = None
        # The crash.
        usage = Usage(pair)
        with setting_up("watching fw2's addresses and the adverts"):
            addresses = pair.watch_addresses(fw2)
            watch = sniff(pair.client, "--times")
        log = pair.keepalived[1].log if daemon == "keepalived" else fw2.log
        assert log is not None
        # The same moment after the master's advert for each kind's n-th run (Phases).
        mark = log.mark()
        with crash_phase(phases, f"{daemon} {mode}") as phase:
            crashed, wall = crash_at_phase(pair, watch, phase)
        result["phase"] = phase
        since = fl.mark(crashed)
        master = r"\(lan\) Entering MASTER STATE" if daemon == "keepalived" else r"lan: .*-> MASTER"
        _, line = log.wait_for(master, WAIT, mark)
        result["takeover_s"] = round(time.monotonic() - crashed, 3)
        up = pair.address_added(addresses, LAN_VIP, WAIT)
        if daemon == "carpd":
            # From the MASTER decision (carpd's stamp) to the address in the kernel (ip's).
            result["addresses_after_master_ms"] = round((up - line_time(line)) * 1000, 1)
        result["addresses_after_crash_s"] = round(up - wall, 3)
        with contextlib.suppress(TimeoutError):
            fl.wait_resumed(WAIT, since)
        report = fl.report(5.0)
        back = [r for r in report["resumed"] if r is not None]
        result["flows_survived"] = report["working"]
        result["data_again_max_s"] = max(back) if back else float("nan")
        result["data_again_median_s"] = statistics.median(back) if back else float("nan")
        result["invalid_on_fw2"] = pair.invalid(fw2)
        if direct:
            commit: dict[str, Any] = {"last_duration": 0.0, "late": 0}
        elif daemon == "carpd":
            commit = commit_step(fw2)
        else:
            commit = {"last_duration": commit_logged(fw2), "late": None}
        result["commit_s"] = commit.get("last_duration")
        result["commit_late"] = commit.get("late", 0)
        # conntrackd's own figure (its log), the same for both daemons.
        result["commit_conntrackd_s"] = None if direct else commit_logged(fw2)
        result["fw2_table_after"] = kernel_count(fw2.host)
        result["usage_crash"] = usage.report()
    return result


def resync(pair: FirewallPair, direct: bool) -> dict[str, Any]:
    """The backup's conntrackd killed: carpd starts it again and asks the peer for its
    table; until carpd's "bulk done", what the backup held then, and until it held the
    whole table (at "bulk done" already, or later)."""
    fw1, fw2 = pair.fw
    log = fw2.log
    assert log is not None
    want = kernel_synced(fw1.host)
    mark = log.mark()
    t1 = time.monotonic()
    os.kill(pair.conntrackd_pid(fw2), signal.SIGKILL)
    limit = 10.0 + bounds.COMMAND + COMPLETE  # carpd looks every 10 s
    fw2.wait_log(r"\(state sync bulk (done|fail)\)", limit, mark)
    bulk_at = round(time.monotonic() - t1, 2)
    at_bulk = held(pair, direct, kernel=True)
    result = {"bulk_done_s": bulk_at, "held_at_bulk_done": at_bulk, "table": want}
    if at_bulk >= want:
        return {**result, "held": at_bulk, "complete": True, "at_s": bulk_at}
    return {**result, **until_held(pair, direct, want, t1, limit, kernel=True)}


def commit_logged(node: Node) -> float | None:
    """How long conntrackd's last commit took, as it logs it (keepalived's runs in its
    notify script, out of sight); None if it has not logged one within WAIT."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for line in reversed(conntrackd_log(node, r"commit has taken")):
            m = re.search(r"commit has taken ([\d.]+) seconds", line)
            if m:
                return float(m.group(1))
        time.sleep(POLL)
    return None


def commit_step(node: Node) -> dict[str, Any]:
    """The host lane's record of ``conntrackd -c`` on ``node`` (once it has ended: a
    late commit goes on after the addresses are up)."""
    deadline = time.monotonic() + WAIT
    while True:
        for step in node.status()["vhosts"][0]["host_steps"]:
            if step["name"] == "conntrackd commit" and step["runs"]:
                result: dict[str, Any] = step
                return result
        if time.monotonic() > deadline:
            return {}
        time.sleep(POLL)


def table(raw: list[dict[str, Any]]) -> str:
    lines = [
        "| connections | daemon, mode | fill, s | backup holds it, s (rate/s) | short after "
        "the burst | resync: bulk done, s (held then) / complete, s | takeover, s | commit, s "
        "| addresses after the crash, s (after MASTER, ms) | flows survived | data again, s: "
        "worst / median | invalid | conntrackd fw1 / fw2: CPU s, RSS MiB |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in raw:
        s, rs, u = r["sync"], r["resync"], r["usage_burst"]
        ct = " / ".join(
            f"{u[k]['cpu_s']:.1f}, {u[k]['rss_mib']:.0f}"
            for k in ("fw1 conntrackd", "fw2 conntrackd")
            if k in u
        )
        resync = "-"
        if rs:
            done = rs["at_s"] if rs["complete"] else "never"
            resync = f"{rs['bulk_done_s']} ({rs['held_at_bulk_done']}) / {done}"
        commit = r["commit_s"]
        commit = "-" if commit is None else f"{commit:.2f}" + (" late" if r["commit_late"] else "")
        after = r.get("addresses_after_master_ms")
        addresses = f"{r['addresses_after_crash_s']:.2f}" + (f" ({after:.0f})" if after else "")
        lines.append(
            f"| {r['size']} | {r.get('daemon', 'carpd')}, {r['mode']} | {r['fill_s']} | "
            f"{s['at_s']} ({r['sync_rate_per_s']}) | {r['gap_after_burst']} | {resync} | "
            f"{r['takeover_s']} | {commit} | {addresses} | {r['flows_survived']}/{r['flows']} | "
            f"{r['data_again_max_s']:.2f} / {r['data_again_median_s']:.2f} | "
            f"{r['invalid_on_fw2']} | {ct} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--mode", choices=("commit", "direct"), default="commit")
    parser.add_argument("--daemon", choices=("carpd", "keepalived"), default="carpd")
    parser.add_argument(
        "--all",
        action="store_true",
        help="every kind in turn (carpd with and without the external cache, keepalived), "
        "so a slow spell hits each: ./scripts/bench's set",
    )
    parser.add_argument("--flows", type=int, default=FLOWS)
    parser.add_argument(
        "--stall",
        action="store_true",
        help="fw1's conntrackd stopped during the burst (SIGSTOP), as a starved one is",
    )
    parser.add_argument(
        "--uncapped",
        action="store_true",
        help="the kernel's own TCP backoff on the client and the server (3.0, 6.2 s...)",
    )
    parser.add_argument(
        "--overrun-resync",
        type=int,
        metavar="SECONDS",
        help="conntrackd's NetlinkOverrunResync instead of carpd's (conntrackd's own: 30)",
    )
    parser.add_argument(
        "--max-entries",
        type=int,
        help="[conntrackd] max_entries (default: unset, the node's nf_conntrack_max); "
        "65536 gives conntrack-tools' example HashSize and HashLimit (carpd's before "
        "sizing; its netlink buffer is 20 MiB, not 2)",
    )
    args = parser.parse_args()
    kinds = KINDS if args.all else ((args.daemon, args.mode, args.mode),)
    restore = terminate_on_sigterm()
    raw: list[dict[str, Any]] = []
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            phases = Phases(args.runs)  # each kind's n-th run crashes at the same phase
            for i in range(args.runs):
                for daemon, mode, _ in kinds:
                    t0 = time.monotonic()
                    what = f"[{size} {daemon} {mode}] run {i + 1}"
                    try:
                        r = one(
                            size,
                            mode,
                            args.flows,
                            args.max_entries,
                            daemon,
                            args.stall,
                            args.overrun_resync,
                            None if args.uncapped else TCP_RTO_MAX,
                            phases,
                        )
                    except (SetupError, TooBig) as e:
                        print(f"{what}: not run: {e}", flush=True)
                        continue
                    raw.append(r)
                    print(f"{what} ({time.monotonic() - t0:.0f} s): {r}", flush=True)
    except KeyboardInterrupt:
        print("interrupted: labs removed", file=sys.stderr)
        return 130
    finally:
        restore()
    text = table(raw)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale_sync.md").write_text(text + "\n")
    (RESULTS / "scale_sync.json").write_text(json.dumps(raw, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
