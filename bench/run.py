"""The benchmark: every scenario for carpd, ucarp and keepalived in one run.

Run as root:  .venv/bin/python bench/run.py [--runs N] [--quick]

Writes bench/results/latest.md (tables and targets), latest.json (every sample) and PNG
plots of the outages. One progress line per scenario run. Scenarios (see bench/README.md):
crash failover, graceful handover (SIGTERM, maintenance), start-up (spawn -> BACKUP, first
advert, carpd --version), sub-second VRRPv3, scale, forged-advert flood, advert jitter.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import balance  # noqa: E402
import core  # noqa: E402  (sets sys.path and PYTHONPATH for carpd)
import firewall  # noqa: E402
import health  # noqa: E402
import vrrp  # noqa: E402

from carpd.lab.netlab import Lab, terminate_on_sigterm  # noqa: E402
from carpd.lab.probe import sniff  # noqa: E402

RESULTS = BENCH / "results"
SCALE_SECONDS = 30.0
FLOOD_SECONDS = 10.0
JITTER_SECONDS = 60.0
FLOOD_RATES = (1_000, 10_000, 50_000)
FIREWALL_CONNECTIONS = firewall.CONNECTIONS
SCALE_COUNTS = (1, 16, 255)
STARTUP_ROWS = {  # core.startup's keys
    "backup_ms": "the INIT -> BACKUP line",
    "started_ms": "the 'started' line (control socket up)",
    "advert_ms": "the first advert on the wire (MASTER after 3 s alone)",
    "advert_own_ms": "that advert, less the 3 s master-down interval",
    "version_ms": "the exit of `carpd --version` (median of 5 spawns)",
}


def progress(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)


# -- scale ----------------------------------------------------------------------------


def scale_carpd(count: int) -> dict[str, Any]:
    core.FOOTPRINT_SECONDS = SCALE_SECONDS
    r = core.footprint(count)
    return {"cpu_pct": r["cpu_schedstat_pct"], "rss_mib": r["rss_mib"], "processes": 1}


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def scale_ucarp(count: int) -> dict[str, Any]:
    """ucarp runs one process per vhid: the same load as carpd's ``count`` vhids."""
    with Lab("bsu") as lab:
        host = lab.add_host("node1", core.NODE1)
        own = {core.NODE1.split("/")[0]}
        procs = []
        for i, addr in enumerate(core.vips(count, own)):
            argv = [
                core.UCARP,
                "-i",
                "eth0",
                "-s",
                "192.0.2.1",
                "-v",
                str(i + 1),
                "-p",
                "secret",
                "-a",
                addr.split("/")[0],
                "-b",
                "1",
                "-f",
                "none",
            ]
            procs.append(host.spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(5)  # all MASTER after 3 s of silence
        pids = [p.pid for p in procs if p.poll() is None]
        before = [core.sample_cpu(p) for p in pids]
        time.sleep(SCALE_SECONDS)
        after = [core.sample_cpu(p) for p in pids]
        cpu = sum(core.cpu_percent(a, b)[1] for a, b in zip(before, after, strict=True))
        rss = sum(core.read_rss_kib(p) for p in pids) / 1024
        pss = sum(pss_kib(p) for p in pids) / 1024
        return {"cpu_pct": cpu, "rss_mib": rss, "pss_mib": pss, "processes": len(pids)}


# -- flood ----------------------------------------------------------------------------


def flood(kind: str, rate: int) -> dict[str, Any]:
    """A master, a backup and an attacker sending forged adverts (wrong HMAC, advskew 0)."""
    with Lab(f"bfl{kind[0]}") as lab:
        h1, h2 = lab.add_host("node1", core.NODE1), lab.add_host("node2", core.NODE2)
        attacker = lab.add_host("attacker", "192.0.2.66/24")
        members: list[Any]
        if kind == "carpd":
            members = [core.Carpd(lab, h1, 0), core.Carpd(lab, h2, 100)]
        else:
            members = [core.Ucarp(lab, h1, 0, True), core.Ucarp(lab, h2, 100, True)]
        master, backup = members
        master.wait_state("MASTER", timeout=15)
        backup.wait_state("BACKUP")
        marks = (master.mark(), backup.mark())
        pid = _proc(master).pid
        heard = backup.node.counter("adverts_received") if kind == "carpd" else 0
        before = core.sample_cpu(pid)
        out = attacker.run(
            [
                sys.executable,
                "-m",
                "carpd.lab.flood",
                "192.0.2.66",
                str(core.VHID),
                str(rate),
                str(FLOOD_SECONDS),
            ],
            timeout=FLOOD_SECONDS + 30,
        ).stdout.strip()
        after = core.sample_cpu(pid)
        sent = int(out.split()[1]) if out.startswith("sent") else 0
        result: dict[str, Any] = {
            "rate": rate,
            "sent_pps": sent / FLOOD_SECONDS,
            "cpu_pct": core.cpu_percent(before, after)[1],
            "master_transitions": _transitions(master, marks[0]),
            "backup_transitions": _transitions(backup, marks[1]),
        }
        if kind == "carpd":
            dropped = master.node.status()["vhosts"][0]["counters"]["dropped"]
            result["dropped_bad_hmac"] = dropped.get("bad_hmac", 0)
            # The real master's adverts the backup verified during the flood, against
            # those sent (one per advbase): a missed one is one a flood can cost.
            got = backup.node.counter("adverts_received") - heard
            result["master_adverts_heard_pct"] = 100 * got / (FLOOD_SECONDS / core.ADVBASE)
        return result


def _proc(member: Any) -> subprocess.Popen[bytes]:
    proc: subprocess.Popen[bytes] = member.node.proc if hasattr(member, "node") else member.proc
    return proc


def _transitions(member: Any, start: int) -> int:
    log = member.node.log if hasattr(member, "node") else member.log
    lines: list[str] = log.lines[start:]
    return sum(1 for x in lines if "state transition" in x or "Switching to state" in x)


# -- jitter ---------------------------------------------------------------------------


def jitter(kind: str) -> dict[str, Any]:
    """A lone master's adverts, timed by a third host, for JITTER_SECONDS."""
    with Lab(f"bji{kind[0]}") as lab:
        h1 = lab.add_host("node1", core.NODE1)
        watcher = lab.add_host("watch", "192.0.2.9/24")
        member = core.Carpd(lab, h1, 0) if kind == "carpd" else core.Ucarp(lab, h1, 0, True)
        member.wait_state("MASTER", timeout=15)
        watch = sniff(watcher, "--times")
        time.sleep(JITTER_SECONDS)
        stamps = [float(x.split()[0]) for x in watch.lines if " carp " in x]
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        dev = sorted(abs(g - 1.0) * 1000 for g in gaps)

        def pct(p: float) -> float:
            return dev[min(len(dev) - 1, int(p * len(dev)))] if dev else float("nan")

        return {
            "adverts": len(stamps),
            "p50_ms": pct(0.5),
            "p99_ms": pct(0.99),
            "max_ms": dev[-1] if dev else float("nan"),
            "mean_interval_ms": statistics.mean(gaps) * 1000 if gaps else float("nan"),
        }


# -- the run --------------------------------------------------------------------------

Scenario = tuple[str, Callable[[], dict[str, Any]], int]  # name, run, repeats


def scenarios(runs: int, others: int) -> list[Scenario]:
    """``runs`` repeats of each failover scenario, ``others`` of scale, flood and jitter."""
    out: list[Scenario] = []
    for kind in ("carpd", "ucarp"):
        out.append((f"crash failover, {kind}", lambda k=kind: core.failover(k, True), runs))
    out.append(
        ("crash failover, keepalived (VRRPv3 1 s)", lambda: vrrp.one("keepalived", 1.0), runs)
    )
    for kind in ("carpd", "ucarp"):
        out.append((f"graceful SIGTERM, {kind}", lambda k=kind: core.failover(k, False), runs))
    out.append(("graceful maintenance, carpd", lambda: health.one_run("maintenance"), runs))
    out.append(("start-up, carpd", core.startup, runs))
    for kind in firewall.DAEMONS:  # 1,000 connections through a firewall pair, crash
        out.append(
            (
                f"firewall pair, {kind} + conntrackd",
                lambda k=kind: firewall.one(k, FIREWALL_CONNECTIONS),
                runs,
            )
        )
    for mode in ("ip", "arp"):  # a balanced address: two nodes against one (no peer has it)
        out.append((f"balance {mode}, carpd", lambda m=mode: balance.one(m, balance.RATE), others))
    for kind in ("carpd", "keepalived"):
        out.append((f"sub-second VRRPv3 0.1 s, {kind}", lambda k=kind: vrrp.one(k, 0.1), runs))
    for count in SCALE_COUNTS:
        out.append((f"scale, carpd, {count} vhids", lambda c=count: scale_carpd(c), others))
    out.append(("scale, ucarp, 255 processes", lambda: scale_ucarp(255), others))
    for kind in ("carpd", "ucarp"):
        for rate in FLOOD_RATES:
            out.append((f"flood {rate}/s, {kind}", lambda k=kind, r=rate: flood(k, r), others))
    for kind in ("carpd", "ucarp"):
        out.append((f"jitter, {kind}", lambda k=kind: jitter(k), others))
    return out


def summarize(name: str, samples: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k, v in samples[0].items() if isinstance(v, int | float)]
    return {
        k: {"median": statistics.median(s[k] for s in samples), "max": max(s[k] for s in samples)}
        for k in keys
    }


def medians(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-key median over the runs (max for transition counts: one flap is one too many)."""
    out: dict[str, Any] = {}
    for key, value in samples[0].items():
        values = [s[key] for s in samples]
        if "transitions" in key:
            out[key] = max(values)
        elif isinstance(value, int | float):
            out[key] = statistics.median(values)
        else:
            out[key] = value
    return out


def markdown(results: dict[str, list[dict[str, Any]]]) -> str:
    lines = [
        "# carpd benchmark",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')}, "
        f"{platform.node()}, kernel {platform.release()}, Python {platform.python_version()}",
        "",
        "## Failover (ms, median / max)",
        "",
        "| scenario | runs | client outage | kill or action -> new MASTER |",
        "|---|---:|---:|---:|",
    ]
    for name, samples in results.items():
        if "outage_ms" in samples[0]:
            s = summarize(name, samples)
            lines.append(
                f"| {name} | {len(samples)} | {s['outage_ms']['median']:.0f} / "
                f"{s['outage_ms']['max']:.0f} | {s['master_ms']['median']:.0f} / "
                f"{s['master_ms']['max']:.0f} |"
            )
    startup = results.get("start-up, carpd")
    if startup:
        s = summarize("start-up, carpd", startup)
        lines += [
            "",
            "## Start-up (ms, median / max; a lone carpd, advbase 1, advskew 0)",
            "",
            "| from the spawn to | runs | median | max |",
            "|---|---:|---:|---:|",
        ]
        for key, label in STARTUP_ROWS.items():
            lines.append(
                f"| {label} | {len(startup)} | {s[key]['median']:.0f} | {s[key]['max']:.0f} |"
            )
    pairs = {n[len("firewall pair, ") :]: s for n, s in results.items() if "firewall" in n}
    if pairs:
        lines += [
            "",
            f"## Firewall pair: {firewall.CONNECTIONS} TCP connections across a crash "
            "(bench/firewall.py)",
            "",
            firewall.table(pairs),
        ]
    pooled = [s for n, ss in results.items() if n.startswith("balance") for s in ss]
    if pooled:
        lines += ["", balance.markdown(pooled, balance.RATE).replace("# ", "## ", 1)]
    lines += [
        "",
        "## Scale (over 30 s, lone node, MASTER of every vhid)",
        "",
        "| scenario | processes | CPU % of one core | RSS MiB |",
        "|---|---:|---:|---:|",
    ]
    for name, samples in results.items():
        if name.startswith("scale"):
            r = medians(samples)
            extra = f" (PSS {r['pss_mib']:.1f})" if "pss_mib" in r else ""
            lines.append(
                f"| {name} | {r['processes']} | {r['cpu_pct']:.2f} | {r['rss_mib']:.1f}{extra} |"
            )
    lines += [
        "",
        "## Forged-advert flood (10 s, wrong HMAC, advskew 0)",
        "",
        "| scenario | sent/s | master transitions | backup transitions | CPU % "
        "| dropped bad_hmac |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, samples in results.items():
        if name.startswith("flood"):
            r = medians(samples)
            lines.append(
                f"| {name} | {r['sent_pps']:.0f} | {r['master_transitions']} | "
                f"{r['backup_transitions']} | {r['cpu_pct']:.1f} | "
                f"{r.get('dropped_bad_hmac', '-')} |"
            )
    lines += [
        "",
        "## Advert jitter (|interval - 1 s|, 60 s)",
        "",
        "| scenario | adverts | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, samples in results.items():
        if name.startswith("jitter"):
            r = medians(samples)
            lines.append(
                f"| {name} | {r['adverts']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                f"{r['max_ms']:.2f} |"
            )
    lines += ["", "## Targets", "", *targets(results)]
    return "\n".join(lines) + "\n"


def targets(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    def med(name: str, key: str) -> float:
        return statistics.median(s[key] for s in results[name])

    def line(ok: bool, text: str) -> str:
        return f"- [{'x' if ok else ' '}] {text}"

    out = []
    crash, ucarp = (
        med("crash failover, carpd", "outage_ms"),
        med("crash failover, ucarp", "outage_ms"),
    )
    out.append(
        line(
            crash <= ucarp,
            f"crash outage no longer than ucarp's: {crash:.0f} vs {ucarp:.0f} ms (median)",
        )
    )
    bound = (3 + 100 / 256) * 1000
    worst = max(s["master_ms"] for s in results["crash failover, carpd"])
    out.append(
        line(
            worst <= bound + 50,
            f"takeover within 50 ms of the master-down interval "
            f"({bound:.0f} ms): worst {worst:.0f} ms after the kill",
        )
    )
    for name in ("graceful SIGTERM, carpd", "graceful maintenance, carpd"):
        g = med(name, "outage_ms")
        out.append(
            line(g < 50, f"{name}: outage under 50 ms: {g:.0f} ms (probe resolution ~16-20 ms)")
        )
    s255 = medians(results["scale, carpd, 255 vhids"])
    out.append(
        line(s255["cpu_pct"] < 2, f"255 vhids under 2 % of one core: {s255['cpu_pct']:.2f} %")
    )
    out.append(line(s255["rss_mib"] < 60, f"255 vhids under 60 MB RSS: {s255['rss_mib']:.1f} MiB"))
    f50 = medians(results.get("flood 50000/s, carpd", [{}]))
    held = f50.get("master_transitions") == 0 and f50.get("backup_transitions") == 0
    out.append(
        line(
            held,
            f"role held under a 50k/s forged flood: master transitions "
            f"{f50.get('master_transitions')}, backup {f50.get('backup_transitions')}"
            f" (sent {f50.get('sent_pps', 0):.0f}/s)",
        )
    )
    fw = results.get("firewall pair, carpd + conntrackd", [])
    fk = results.get("firewall pair, keepalived + conntrackd", [])
    if fw and fk:
        every = all(r["lost"] == 0 for r in fw)
        out.append(
            line(
                every,
                "every connection through the firewall pair survives a crash, in every run: "
                + ", ".join(f"{r['survived']}/{r['connections']}" for r in fw),
            )
        )
        c_again = statistics.median(r["data_again_max_s"] for r in fw)
        k_again = statistics.median(r["data_again_max_s"] for r in fk)
        out.append(
            line(
                c_again <= k_again,
                f"data flowing again no later than keepalived's: {c_again:.2f} vs "
                f"{k_again:.2f} s (median of each run's last connection)",
            )
        )
        invalid = [r["invalid_on_new_master"] for r in fw]
        out.append(
            line(
                not any(invalid),
                "no packet dropped as invalid on the new master (the commit comes before "
                f"the addresses): carpd {invalid}, keepalived "
                f"{[r['invalid_on_new_master'] for r in fk]}",
            )
        )
    j = medians(results["jitter, carpd"])
    out.append(line(j["p99_ms"] < 5, f"advert jitter p99 under 5 ms: {j['p99_ms']:.2f} ms"))
    return out


def plots(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    groups = {
        "failover": [n for n in results if "outage_ms" in results[n][0]],
    }
    for title, names in groups.items():
        fig, ax = plt.subplots(figsize=(10, 0.6 * len(names) + 1.5))
        data = [[s["outage_ms"] for s in results[n]] for n in names]
        ax.boxplot(data, vert=False, tick_labels=names)
        for i, values in enumerate(data, start=1):
            ax.scatter(values, [i + random.uniform(-0.1, 0.1) for _ in values], s=10, zorder=3)
        ax.set_xscale("symlog", linthresh=100)
        ax.set_xlabel("client outage, ms (ping every 10 ms)")
        ax.set_title(f"carpd benchmark: {title}")
        fig.tight_layout()
        path = RESULTS / f"latest-{title}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path.name)
    return made


def quick() -> None:
    """--quick: every scenario once, in shorter windows (figures for a change's direction,
    not for the README)."""
    global SCALE_SECONDS, FLOOD_SECONDS, JITTER_SECONDS, FLOOD_RATES
    global FIREWALL_CONNECTIONS, SCALE_COUNTS
    # The scale window starts at 'started', so a short one is mostly the takeovers: its
    # CPU figure compares with other quick runs, not with the full run's.
    SCALE_SECONDS, FLOOD_SECONDS, JITTER_SECONDS = 10.0, 3.0, 10.0
    FLOOD_RATES, SCALE_COUNTS, FIREWALL_CONNECTIONS = (50_000,), (255,), 200


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="repeats of each failover scenario")
    parser.add_argument(
        "--others", type=int, default=5, help="repeats of scale, flood and jitter (default 5)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="day-to-day: one run of each scenario, shorter windows, 50k/s flood and 255 "
        "vhids only, 200 firewall connections; writes results/quick.md (latest.md, the "
        "README's figures, is left alone)",
    )
    args = parser.parse_args()
    name = "latest"
    if args.quick:
        quick()
        args.runs = args.others = 1
        name = "quick"
    restore = terminate_on_sigterm()
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        todo = scenarios(args.runs, args.others)
        for n, (name, run, repeats) in enumerate(todo, start=1):
            results[name] = []
            for i in range(repeats):
                t0 = time.monotonic()
                r = run()
                results[name].append(r)
                shown = ", ".join(f"{k} {v:.1f}" for k, v in r.items() if isinstance(v, float))[
                    :110
                ]
                progress(
                    f"[{n}/{len(todo)}] {name} ({i + 1}/{repeats}, "
                    f"{time.monotonic() - t0:.0f} s): {shown}"
                )
    except KeyboardInterrupt:
        print("interrupted: labs removed", file=sys.stderr)
        return 130
    finally:
        restore()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2, default=str))
    text = markdown(results)
    if not args.quick:
        made = plots(results)
        text += "\n" + "\n".join(f"![{m}]({m})" for m in made) + "\n"
    (RESULTS / f"{name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
