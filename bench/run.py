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
import os
import platform
import random
import re
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
import keep  # noqa: E402
import scale_sync  # noqa: E402
import trackers  # noqa: E402
import vrrp  # noqa: E402
import where  # noqa: E402

from carpd_lab.netlab import Lab, LogWatch, terminate_on_sigterm  # noqa: E402
from carpd_lab.probe import sniff  # noqa: E402

RESULTS = BENCH / "results"
SCALE_SECONDS = 30.0
WHERE = "10 ms, where carpd's time goes (16 VRIDs)"  # bench/where.py
FLOOD_SECONDS = 10.0
JITTER_SECONDS = 60.0
FLOOD_RATES = (1_000, 10_000, 50_000, 200_000, 0)  # 0: as fast as the attacker can send
# A flood from the real master's own address, rising (issue 32): it shares the master's queue.
SPOOFED_RATES = (50_000, 100_000, 150_000, 200_000, 0)
SPOOFED = "spoofed-master flood"  # those scenarios' labels start with this
VARIED = "of varied adverts"  # ...and these too: each forged advert with its own counter
TEN_MS_SECONDS = vrrp.JITTER_SECONDS
STEADY_SECONDS = vrrp.STEADY_SECONDS
BUSY = os.cpu_count() or 2  # busy processes for the loaded runs: every core
RT_CARPD = f"realtime_priority {vrrp.REALTIME_PRIORITY}"  # each daemon's SCHED_FIFO option
RT_KEEPALIVED = f"vrrp_rt_priority {vrrp.REALTIME_PRIORITY}"
TEN_MS_JITTER = (  # label, daemon, with its SCHED_FIFO option, busy processes
    ("carpd", "carpd", False, 0),
    ("keepalived", "keepalived", False, 0),
    (f"carpd, {RT_CARPD}", "carpd", True, 0),
    (f"keepalived, {RT_KEEPALIVED}", "keepalived", True, 0),
    ("carpd, every core busy", "carpd", False, BUSY),
    ("keepalived, every core busy", "keepalived", False, BUSY),
    (f"carpd, {RT_CARPD}, every core busy", "carpd", True, BUSY),
    (f"keepalived, {RT_KEEPALIVED}, every core busy", "keepalived", True, BUSY),
)
TRAFGEN = "/usr/sbin/trafgen"  # carpd_lab.flood's IPv4 sender
KEEPALIVED_LIKE_CARP = 256 - core.BACKUP_SKEW  # backup priority: CARP's master-down interval
TAKEOVER_MARGIN_MS = 50.0  # the takeover target: master-down after the last advert, plus this
OTHER_VHID = 99  # a vhid neither daemon runs: what a flood of it costs
FIREWALL_CONNECTIONS = firewall.CONNECTIONS
SCALE_COUNTS = (1, 16, 255)
STARTUP_ROWS = {  # core.startup's keys
    "backup_ms": "the INIT -> BACKUP line",
    "started_ms": "the 'started' line (control socket up)",
    "advert_ms": "the first advert on the wire (MASTER after 3 s alone)",
    "advert_own_ms": "that advert, less the 3 s master-down interval",
    "version_ms": "the exit of `carpd --version` (median of 5 spawns)",
    "python_ms": "the floor: the end of `python -c pass` (its own stamp; median of 5)",
    "imports_ms": "the floor: the end of a python importing asyncio, hmac, pydantic and "
    "pyroute2's rtnetlink as carpd does (median of 5)",
    "model_ms": "the floor: the same, and one pydantic model built and validated (pydantic "
    "loads its schema machinery at the first model) (median of 5)",
}
STARTUP_TARGET_MS = 150.0  # issue 32: spawn -> BACKUP
RSS_TARGETS_MIB = {1: 30.0, 255: 35.0}  # issue 32: RSS of carpd with this many vhids
STATUS_TARGET_MS = 100.0  # issue 32: `carpctl status`, command to printed answer


def rss_floor(results: dict[str, list[dict[str, Any]]]) -> str:
    """The start-up run's RSS floors, for the scale section."""
    runs = results.get("start-up, carpd", [{}])
    if "imports_rss_mib" not in runs[0]:
        return "not measured in this run."
    m = medians(runs)
    model = (f"; and once it has built one pydantic model, as carpd's config does: "
             f"{m['model_rss_mib']:.1f} MiB" if "model_rss_mib" in m else "")  # fmt: skip
    return f"{m['imports_rss_mib']:.1f} MiB{model} (`python -c pass`: {m['python_rss_mib']:.1f})."


def own_import_cost(m: dict[str, Any]) -> list[str]:
    """bench/import_cost.py's split of carpd's own imports, below the start-up table."""
    if "own_import_ms" not in m:
        return []  # an older result
    rest = m["own_import_ms"] - m["own_dataclasses_ms"] - m["own_models_ms"]
    return [
        "",
        f"carpd's own imports, above the top floor and in the same process (bench/"
        f"import_cost.py, median of 5): {m['own_import_ms']:.0f} ms, of which building "
        f"its dataclasses {m['own_dataclasses_ms']:.0f} ms (each compiles its generated "
        f"methods as its class is made), its pydantic config models "
        f"{m['own_models_ms']:.0f} ms, and reading and running its {m['own_modules']:.0f} "
        f"modules {rest:.0f} ms.",
    ]


def progress(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)


# -- scale ----------------------------------------------------------------------------


def scale_carpd(count: int) -> dict[str, Any]:
    core.FOOTPRINT_SECONDS = SCALE_SECONDS
    r = core.footprint(count)
    return {
        "cpu_pct": r["cpu_schedstat_pct"],
        "rss_mib": r["rss_mib"],
        "processes": 1,
        "takeover_cpu_s": r["takeover_cpu_s"],
        "carpctl_status_ms": r["carpctl_status_ms"],
    }


def startup() -> dict[str, Any]:
    """carpd's start-up, and beside it the interpreter's own (the floor under it)."""
    return {**core.startup(), **core.interpreter_floor()}


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def scale_ucarp(count: int) -> dict[str, Any]:
    """ucarp runs one process per vhid: the same load as carpd's ``count`` vhids, sampled
    as carpd's is: once every one has logged MASTER, and core.ANNOUNCED after that. A
    process that died is counted and reported, not hidden."""
    with Lab("bsu") as lab:
        with core.setting_up(f"{count} ucarp processes MASTER"):
            host = lab.add_host("node1", core.NODE1)
            own = {core.NODE1.split("/")[0]}
            procs, logs = [], []
            for i, addr in enumerate(core.vips(count, own)):
                vip = addr.split("/")[0]
                argv = [core.UCARP, "-i", "eth0", "-s", "192.0.2.1", "-v", str(i + 1),
                        "-p", "secret", "-a", vip, "-b", "1", "-f", "none"]  # fmt: skip
                proc = host.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                assert proc.stdout is not None
                procs.append(proc)
                logs.append(LogWatch(proc.stdout))
            deadline = time.monotonic() + 60
            for proc, log in zip(procs, logs, strict=True):
                while proc.poll() is None:  # a dead one is counted below, not waited for
                    try:
                        log.wait_for("Switching to state: MASTER", 0.5)
                        break
                    except TimeoutError:
                        if time.monotonic() > deadline:
                            raise
            time.sleep(core.ANNOUNCED)
        dead_before = sum(p.poll() is not None for p in procs)
        pids = [p.pid for p in procs if p.poll() is None]
        before = [core.sample_cpu(p) for p in pids]
        time.sleep(SCALE_SECONDS)
        alive = [i for i, p in enumerate(procs) if p.poll() is None and p.pid in pids]
        after = {procs[i].pid: core.sample_cpu(procs[i].pid) for i in alive}
        cpu = sum(core.cpu_percent(b, after[p])[1] for p, b in zip(pids, before, strict=True)
                  if p in after)  # fmt: skip
        rss = sum(core.read_rss_kib(p) for p in after) / 1024
        pss = sum(pss_kib(p) for p in after) / 1024
        return {
            "cpu_pct": cpu,
            "rss_mib": rss,
            "pss_mib": pss,
            "processes": len(after),
            "dead": count - len(after),
            "dead_before_window": dead_before,
        }


# -- flood ----------------------------------------------------------------------------


def heard_and_sent(master: Any, backup: Any) -> tuple[int, int]:
    """Right after the backup heard one of the master's adverts (so none is in flight for
    most of an advert interval): the backup's adverts_received and the master's
    adverts_sent, read at that same moment (as tests/lab/test_flood.py does)."""
    backup.wait_counter("adverts_received", 1)
    return backup.counter("adverts_received"), master.counter("adverts_sent")


def flood(
    kind: str, rate: int, vhid: int = core.VHID, spoof: bool = False, varied: bool = False
) -> dict[str, Any]:
    """A master, a backup and an attacker sending forged adverts (wrong HMAC, advskew 0)
    for ``vhid`` at ``rate`` a second (0: as fast as the attacker can), from trafgen, with
    its own source address or (``spoof``) the master's; one frame over and over, or
    (``varied``) each with a random counter of its own."""
    with Lab(f"bfl{kind[0]}") as lab:
        with core.setting_up(f"{kind} pair"):
            if not os.path.exists(TRAFGEN):
                raise FatalError(f"{TRAFGEN} is missing: the flood needs trafgen (netsniff-ng)")
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
            pid, backup_pid = _proc(master).pid, _proc(backup).pid
            if kind == "carpd":
                heard0, sent0 = heard_and_sent(master.node, backup.node)
        before, backup_before = core.sample_cpu(pid), core.sample_cpu(backup_pid)
        out = attacker.run(
            [
                sys.executable,
                "-m",
                "carpd_lab.flood",
                core.NODE1.split("/")[0] if spoof else "192.0.2.66",
                str(vhid),
                str(rate),
                str(FLOOD_SECONDS),
                *(["varied"] if varied else []),
            ],
            timeout=FLOOD_SECONDS + 30,
        ).stdout.strip()
        after, backup_after = core.sample_cpu(pid), core.sample_cpu(backup_pid)
        sent = flood_sent(out)
        result: dict[str, Any] = {
            "rate": rate,
            "sent_pps": sent / FLOOD_SECONDS,
            "cpu_pct": core.cpu_percent(before, after)[1],
            "backup_cpu_pct": core.cpu_percent(backup_before, backup_after)[1],
            "master_transitions": _transitions(master, marks[0]),
            "backup_transitions": _transitions(backup, marks[1]),
            "sender": "trafgen",
        }
        if kind == "carpd":
            st = master.node.status()
            result["dropped_read"] = sum(st["vhosts"][0]["counters"]["dropped"].values()) + sum(
                n for r, n in st["dropped"]["eth0"].items() if r != "shed"
            )
            result["shed"] = st["dropped"]["eth0"].get("shed", 0)
            # The backup's side (counted since its start, a few adverts before the flood):
            # forged copies skipped unread, decoded and refused, shed by the kernel.
            bst = backup.node.status()
            result["backup_repeated"] = bst["dropped"]["eth0"].get("repeated", 0)
            result["backup_refused"] = sum(bst["vhosts"][0]["counters"]["dropped"].values())
            result["backup_shed"] = bst["dropped"]["eth0"].get("shed", 0)
            result["backup_dropped"] = {  # by reason, for the JSON
                **bst["vhosts"][0]["counters"]["dropped"],
                **bst["dropped"]["eth0"],
            }
            # The real master's adverts the backup verified, against those the master
            # sent, between two reads right after an advert was heard: no clamp, no
            # nominal count.
            heard1, sent1 = heard_and_sent(master.node, backup.node)
            result["master_adverts_heard"] = heard1 - heard0
            result["master_adverts_sent"] = sent1 - sent0
        return result


def flood_sent(out: str) -> int:
    """carpd_lab.flood's report, ``sent N in S s (trafgen)``: N; the benchmark's floods
    must come from trafgen (a Python sender manages a fraction of the rate)."""
    m = re.match(r"sent (\d+) in \S+ s \((\w+)", out)
    if m is None:
        raise RuntimeError(f"the flooder said {out!r}")
    if m.group(2) != "trafgen":
        raise FatalError(f"the flood was sent by {m.group(2)}, not trafgen")
    return int(m.group(1))


def _rate(rate: int) -> str:
    return f"{rate}/s" if rate else "at the attacker's most"


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
        with core.setting_up(f"a lone {kind} MASTER"):
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
    # Every crash row's n-th run of each daemon crashes at the same moment after the
    # master's advert (core.Phases): where it falls sets when the backup takes over.
    crash = core.Phases(runs)
    for kind in ("carpd", "ucarp"):
        out.append((f"crash failover, {kind}", lambda k=kind: core.failover(k, True, crash), runs))
    # keepalived's backup at priority 156: VRRPv3's skew (256 - 156)/256 s, so the same
    # master-down interval as CARP's advskew 100 (3.391 s): like with like.
    out.append(
        (
            "crash failover, keepalived (VRRPv3 1 s)",
            lambda: vrrp.one("keepalived", 1.0, KEEPALIVED_LIKE_CARP, crash),
            runs,
        )
    )
    for kind in ("carpd", "ucarp"):
        out.append((f"graceful SIGTERM, {kind}", lambda k=kind: core.failover(k, False), runs))
    out.append(("graceful maintenance, carpd", lambda: health.one_run("maintenance"), runs))
    out.append(("start-up, carpd", startup, runs))
    # A MASTER keeps what it owns: an address deleted under it, a client stale after a resume.
    out.append(("address deleted on the MASTER, carpd", keep.deleted_summary, runs))
    out.append(("stale client after the MASTER's resume, carpd", keep.resume, runs))
    # 1,000 connections through a firewall pair, crash: the daemons' n-th runs crash at
    # the same moment of the advert interval (core.Phases).
    phases = core.Phases(runs)
    for kind in firewall.DAEMONS:
        out.append(
            (
                f"firewall pair, {kind} + conntrackd",
                lambda k=kind: firewall.one(k, FIREWALL_CONNECTIONS, phases=phases),
                runs,
            )
        )
    for size in scale_sync.SIZES:  # state sync at a firewall's scale (issue 32)
        paired = core.Phases(min(others, 2))  # each size's kinds crash at the same phases
        for kind, mode, how in scale_sync.KINDS:
            out.append(
                (
                    f"state sync, {size} connections, {kind} + conntrackd ({how})",
                    lambda s=size, k=kind, m=mode, p=paired: scale_sync.one(
                        s, m, daemon=k, phases=p
                    ),
                    min(others, 2),
                )
            )
    for mode in ("ip", "arp"):  # a balanced address: two nodes against one (no peer has it)
        out.append((f"balance {mode}, carpd", lambda m=mode: balance.one(m, balance.RATE), others))
    for interval in (0.1, 0.01):
        sub = core.Phases(runs)
        for kind in ("carpd", "keepalived"):
            out.append(
                (
                    f"sub-second VRRPv3 {interval:g} s, {kind}",
                    lambda k=kind, i=interval, p=sub: vrrp.one(k, i, phases=p),
                    runs,
                )
            )
    # VRRPv3 at 10 ms: 16 VRIDs' jitter on one node (idle, and with every core busy, with
    # and without each daemon's real-time option), a pair left alone (flaps), and the
    # machine's own floor.
    out.append(
        ("10 ms jitter, floor of this machine", lambda: vrrp.timer_lateness(TEN_MS_SECONDS), others)
    )
    for label, kind, realtime, load in TEN_MS_JITTER:
        out.append(
            (
                f"10 ms jitter, 16 VRIDs, {label}",
                lambda k=kind, r=realtime, n=load: vrrp.jitter(k, TEN_MS_SECONDS, r, n),
                others,
            )
        )
    out.append((WHERE, lambda: where.profile(JITTER_SECONDS), others))
    for kind in ("carpd", "keepalived"):
        out.append(
            (
                f"10 ms pair left alone, {kind}",
                lambda k=kind: vrrp.steady(k, STEADY_SECONDS),
                others,
            )
        )
    for count in SCALE_COUNTS:
        out.append((f"scale, carpd, {count} vhids", lambda c=count: scale_carpd(c), others))
    out.append(("scale, ucarp, 255 processes", lambda: scale_ucarp(255), others))
    for rate in FLOOD_RATES:
        for kind in ("carpd", "ucarp"):
            out.append((f"flood {_rate(rate)}, {kind}", lambda k=kind, r=rate: flood(k, r), others))
    for kind in ("carpd", "ucarp"):
        out.append(
            (
                f"flood 50000/s of vhid {OTHER_VHID} (not ours), {kind}",
                lambda k=kind: flood(k, 50_000, OTHER_VHID),
                others,
            )
        )
    for varied in (False, True):
        for rate in SPOOFED_RATES:  # carpd's and ucarp's runs alternate at each rate
            for kind in ("carpd", "ucarp"):
                out.append(
                    (
                        spoofed_label(rate, kind, varied),
                        lambda k=kind, r=rate, v=varied: flood(k, r, spoof=True, varied=v),
                        others,
                    )
                )
    for kind in ("carpd", "ucarp"):
        out.append((f"jitter, {kind}", lambda k=kind: jitter(k), others))
    # 100 [[track]] trackers (1 s) on one MASTER, against real targets: its advert jitter.
    out.append(
        ("advert jitter with 100 trackers, carpd", lambda: trackers.one(JITTER_SECONDS), others)
    )
    return out


def group(label: str) -> str:
    """Scenarios compared with each other: the label before its first comma."""
    return label.split(",")[0]


def schedule(todo: list[Scenario]) -> list[tuple[int, Scenario, int]]:
    """The runs in order: consecutive scenarios of one group (carpd, ucarp and keepalived
    at one setting) take turns, run by run, so that the machine's moods (a VM: another
    guest's load, steal) fall on each alike rather than on whichever ran during them."""
    out: list[tuple[int, Scenario, int]] = []
    numbered = enumerate(todo, start=1)
    for _, together in itertools.groupby(numbered, key=lambda s: group(s[1][0])):
        block = list(together)
        for i in range(max(s[2] for _, s in block)):
            out += [(n, s, i) for n, s in block if i < s[2]]
    return out


def summarize(name: str, samples: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k, v in samples[0].items() if isinstance(v, int | float)]
    return {
        k: {
            "median": statistics.median(s[k] for s in samples if k in s),
            "max": max(s[k] for s in samples if k in s),
        }
        for k in keys
    }


def medians(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-key median over the runs (max for transition counts: one flap is one too many)."""
    out: dict[str, Any] = {}
    for key, value in samples[0].items():
        values = [s[key] for s in samples if key in s]
        if "transitions" in key or key == "dead":
            out[key] = max(values)
        elif isinstance(value, int | float):
            out[key] = statistics.median(values)
        else:
            out[key] = value
    return out


# -- attempts: only set-up failures are retried, and every failure is counted ---------

SETUP_RETRIES = 2  # a run whose set-up failed is tried up to this many times more

Failures = dict[str, list[dict[str, Any]]]  # scenario -> its failed attempts


class FatalError(Exception):
    """The benchmark could not measure what it says it does (trafgen missing): stop."""


def attempt(
    run: Callable[[], dict[str, Any]], retries: int = SETUP_RETRIES
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """One run of a scenario: its result (None: the run failed) and its failed attempts,
    each ``{"error", "setup", "lost"}``. A SetupError (a failure before the measured
    event) is tried again, up to ``retries`` times; any other failure ends the run
    without a result and is not tried again, since a retry would hide it. ``lost``: the
    attempt whose failure left the run without a result."""
    failed: list[dict[str, Any]] = []
    for _ in range(retries + 1):
        try:
            return run(), failed
        except core.SetupError as e:
            failed.append({"error": str(e), "setup": True, "lost": False})
        except core.SETUP_FAILURES as e:
            failed.append({"error": repr(e), "setup": False, "lost": True})
            return None, failed
    failed[-1]["lost"] = True
    return None, failed


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def failures_note(failures: list[dict[str, Any]]) -> str:
    """ "" or "1 failed attempt (at set-up)", "3 failed attempts (2 at set-up, 1 run lost)"."""
    if not failures:
        return ""
    setup = sum(1 for f in failures if f["setup"])
    lost = sum(1 for f in failures if f["lost"])
    parts = []
    if setup:
        parts.append("at set-up" if setup == len(failures) else f"{setup} at set-up")
    if lost:
        parts.append(_plural(lost, "run") + " lost")
    return f"{_plural(len(failures), 'failed attempt')} ({', '.join(parts)})"


def runs_cell(samples: int, failures: list[dict[str, Any]]) -> str:
    """A table's runs: "5", or "5, 1 failed attempt (at set-up)"."""
    note = failures_note(failures)
    return f"{samples}, {note}" if note else str(samples)


def not_measured(what: str, failures: list[dict[str, Any]] | None = None) -> str:
    """A target without data is shown unmet, never left out."""
    note = failures_note(failures or [])
    return f"- [ ] {what} (not measured{': ' + note if note else ''})"


def target_line(
    ok: bool, what: str, detail: str, failures: list[dict[str, Any]], every_run: bool
) -> str:
    """A target is ticked if it held on what was measured and: a claim about every run,
    only if no attempt of its scenarios failed (at set-up or not); any other, only if no
    run of its scenarios was lost (a median of the runs that worked is not the median of
    the runs). The failed attempts are shown in the line either way."""
    spoiled = failures if every_run else [f for f in failures if f["lost"]]
    held = ok and not spoiled
    note = failures_note(failures)
    return f"- [{'x' if held else ' '}] {what}: {detail}{'; ' + note if note else ''}"


class Targets:
    """The targets' lines, each from the scenarios it is about."""

    def __init__(self, results: dict[str, list[dict[str, Any]]], failed: Failures) -> None:
        self.results, self.failed = results, failed
        self.lines: list[str] = []

    def labels(self, keep: Callable[[str], bool]) -> list[str]:
        """The scenarios run (with a result or a failed attempt) whose label ``keep``s."""
        return [n for n in {**self.results, **self.failed} if keep(n)]

    def check(
        self,
        what: str,
        labels: list[str],
        measure: Callable[[], tuple[bool, str]],
        every_run: bool = False,
    ) -> None:
        failures = [f for label in labels for f in self.failed.get(label, [])]
        if not labels or not all(self.results.get(label) for label in labels):
            self.lines.append(not_measured(what, failures))
            return
        ok, detail = measure()
        self.lines.append(target_line(ok, what, detail, failures, every_run))


def from_last_advert(samples: list[dict[str, Any]]) -> tuple[bool, str]:
    """The takeover target: in every run, the new master's first advert no later than
    master-down + TAKEOVER_MARGIN_MS after the old master's last (a third host's
    kernel stamps of both)."""
    worst = max(s["after_last_advert_ms"] for s in samples)
    bound = max(s["master_down_ms"] for s in samples)
    from_kill = max(s["master_ms"] for s in samples)
    return worst <= bound + TAKEOVER_MARGIN_MS, (
        f"worst {worst:.0f} ms from the old master's last advert to the new master's "
        f"first (a third host's kernel stamps), master-down {bound:.0f} ms + "
        f"{TAKEOVER_MARGIN_MS:g}; from the kill: worst {from_kill:.0f} ms"
    )


def heard_every_advert(samples: list[dict[str, Any]]) -> tuple[bool, str]:
    """The backup heard every one of the master's adverts: heard == sent in every run
    (both read at the same two moments)."""
    pairs = [(s["master_adverts_heard"], s["master_adverts_sent"]) for s in samples]
    short = [(h, n) for h, n in pairs if h != n]
    heard, sent = sum(h for h, _ in pairs), sum(n for _, n in pairs)
    detail = f"{heard} of {sent} heard over {_plural(len(pairs), 'run')}"
    if short:
        detail += ", short in " + ", ".join(f"{h}/{n}" for h, n in short)
    return not short, detail


def data_flowing_again(
    carpd: list[dict[str, Any]], keepalived: list[dict[str, Any]], step: float
) -> tuple[bool, str]:
    """carpd's worst run (its last connection to carry data again) no later than
    keepalived's worst plus one backoff step ``step``: finer than that, the
    retransmission a connection rides decides, not the daemon."""
    cw = max(r["data_again_max_s"] for r in carpd)
    kw = max(r["data_again_max_s"] for r in keepalived)
    cm = statistics.median(r["data_again_max_s"] for r in carpd)
    km = statistics.median(r["data_again_max_s"] for r in keepalived)
    return cw <= kw + step, (
        f"worst run {cw:.2f} vs {kw:.2f} s (medians {cm:.2f} vs {km:.2f}), equal within one "
        f"backoff step ({step:g} s: the client and server cap TCP's backoff at TCP_RTO_MAX)"
    )


def markdown(results: dict[str, list[dict[str, Any]]], failed: Failures | None = None) -> str:
    failed = failed or {}

    def runs(name: str) -> str:
        return runs_cell(len(results.get(name, [])), failed.get(name, []))

    lines = [
        "# carpd benchmark",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')}, "
        f"{platform.node()}, kernel {platform.release()}, Python {platform.python_version()}",
        "",
        "Runs: runs with a result, and the failed attempts. Only a failure before the "
        "measured event (set-up) is tried again; every failed attempt is counted here and "
        "in the targets, and a target about every run is unmet if any attempt failed.",
        "",
        "## Failover (ms, median / max)",
        "",
        "New MASTER: from the kill (or action) to the new master's first advert, stamped by "
        "the client's kernel (a third host), the same way for every daemon; after the last "
        "advert: from the old master's last advert to that one (crash: the protocol's "
        "master-down interval plus the daemon's own delay). The crash rows are paired: the "
        "n-th run of each daemon at one setting crashed the master at the same moment after "
        "its advert (one moment in each n-th of the interval), which sets when the backup "
        "takes over.",
        "",
        "| scenario | setting | runs | client outage | kill or action -> new MASTER "
        "| last advert -> new MASTER (master-down) |",
        "|---|---|---|---:|---:|---:|",
    ]
    for name, samples in results.items():
        if "outage_ms" in samples[0]:
            s = summarize(name, samples)
            master = "-"
            if "master_ms" in s:
                master = f"{s['master_ms']['median']:.1f} / {s['master_ms']['max']:.1f}"
                if "after_last_advert_ms" not in s:  # not on the wire: say whose stamp
                    master += " (its log)"
            last = (
                f"{s['after_last_advert_ms']['median']:.1f} / "
                f"{s['after_last_advert_ms']['max']:.1f} ({samples[0]['master_down_ms']:.0f})"
                if "after_last_advert_ms" in s
                else "-"
            )
            lines.append(
                f"| {name} | {samples[0].get('setting', '-')} | {runs(name)} | "
                f"{s['outage_ms']['median']:.0f} / {s['outage_ms']['max']:.0f} | {master} "
                f"| {last} |"
            )
    lines += crash_by_phase(results)
    startup = results.get("start-up, carpd")
    if startup:
        s = summarize("start-up, carpd", startup)
        lines += [
            "",
            "## Start-up (ms, median / max; a lone carpd, advbase 1, advskew 0)",
            "",
            f"Runs: {runs('start-up, carpd')}.",
            "",
            "| from the spawn to | runs | median | max |",
            "|---|---:|---:|---:|",
        ]
        for key, label in STARTUP_ROWS.items():
            if key not in s:  # an older result, from before the floor was measured
                continue
            lines.append(
                f"| {label} | {len(startup)} | {s[key]['median']:.0f} | {s[key]['max']:.0f} |"
            )
        lines += own_import_cost(medians(startup))
    deleted = results.get("address deleted on the MASTER, carpd")
    stale = results.get("stale client after the MASTER's resume, carpd")
    if deleted and stale:
        d = summarize("deleted", deleted)
        b = summarize("stale", stale)
        n = sum(r["deletes"] for r in deleted)
        lines += [
            "",
            "## A MASTER keeps what it owns (ms, median / max; bench/keep.py)",
            "",
            f"Runs: deleted {runs('address deleted on the MASTER, carpd')}; stale "
            f"{runs('stale client after the MASTER' + chr(39) + 's resume, carpd')}.",
            "",
            "| measurement | samples | median | max |",
            "|---|---:|---:|---:|",
            f"| `ip addr del` of the VIP on the MASTER -> put back (kernel's stamps) | {n} "
            f"| {d['restore_median_ms']['median']:.1f} | {d['restore_max_ms']['max']:.1f} |",
            f"| the same: client's longest gap (ping every 10 ms) | {n} "
            f"| {d['outage_median_ms']['median']:.0f} | {d['outage_max_ms']['max']:.0f} |",
            f"| MASTER resumed after a 2.5 s pause -> a stale client's entry right again "
            f"| {len(stale)} | {b['back_ms']['median']:.0f} | {b['back_ms']['max']:.0f} |",
        ]
    pairs = {n[len("firewall pair, ") :]: s for n, s in results.items() if "firewall" in n}
    if pairs:
        lines += [
            "",
            f"## Firewall pair: {FIREWALL_CONNECTIONS} TCP connections across a crash "
            "(bench/firewall.py)",
            "",
            "Runs: "
            + "; ".join(f"{k} {runs('firewall pair, ' + k)}" for k in pairs)
            + f". TCP's backoff capped at {firewall.TCP_RTO_MAX:g} s on the client and the "
            "server (TCP_RTO_MAX, as the lab tests do), so a connection carries data again "
            "within a second of the takeover and its commit. Takeover: from the crash to the "
            "new master's first advert, stamped by the client's kernel. The daemons' runs "
            "are paired: the n-th of each crashed at the same moment after the master's "
            "advert (the phase, a share of the 1 s interval: n runs, one in each n-th), "
            "which sets when the backup takes over.",
            "",
            firewall.table(pairs),
            "",
            "Data flowing again (s after the crash), run by run at the same phase:",
            "",
            firewall.paired(pairs),
        ]
    pooled = [s for n, ss in results.items() if n.startswith("balance") for s in ss]
    if pooled:
        balance_runs = "; ".join(f"{n} {runs(n)}" for n in results if n.startswith("balance"))
        lines += [
            "",
            balance.markdown(pooled, balance.RATE).replace("# ", "## ", 1),
            f"Runs: {balance_runs}.",
        ]
    lines += _section(
        results,
        "scale",
        "",
        f"## Scale (over {SCALE_SECONDS:g} s, lone node, MASTER of every vhid)",
        "",
        "`carpctl status`: command to printed answer, a new process each time (median of "
        "5 per run). RSS floor: a python that has imported asyncio, hmac, pydantic and "
        "pyroute2's rtnetlink as carpd does, what it loads before its first line: "
        + rss_floor(results),
        "",
        "| scenario | runs | processes | CPU % of one core | RSS MiB | carpctl status ms |",
        "|---|---|---:|---:|---:|---:|",
    )
    for name, samples in results.items():
        if name.startswith("scale"):
            r = medians(samples)
            extra = f" (PSS {r['pss_mib']:.1f})" if "pss_mib" in r else ""
            dead = f", {r['dead']} died (worst run)" if r.get("dead") else ""
            status = f"{r['carpctl_status_ms']:.0f}" if "carpctl_status_ms" in r else "-"
            lines.append(
                f"| {name} | {runs(name)} | {r['processes']}{dead} | {r['cpu_pct']:.2f} | "
                f"{r['rss_mib']:.1f}{extra} | {status} |"
            )
    lines += _section(
        results,
        "flood",
        "",
        f"## Forged-advert flood ({FLOOD_SECONDS:g} s, wrong HMAC, advskew 0, sent by trafgen)",
        "",
        "CPU % of one core (schedstat) of the master's daemon and the backup's; heard/sent: "
        "the real master's adverts the backup verified against those the master sent, "
        "both read at the same two moments (the worst run); read and shed: "
        "forged adverts carpd's master read (and refused) and those the kernel dropped "
        "unread past the budget for unknown sources.",
        "",
        "| scenario | runs | sent/s | master transitions | backup transitions | master CPU % "
        "| backup CPU % | heard/sent | read | shed |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    )
    for name, samples in results.items():
        if name.startswith("flood"):
            r = medians(samples)

            def cell(key: str, fmt: str, r: dict[str, Any] = r) -> str:
                return format(r[key], fmt) if key in r else "-"

            heard = "-"
            if "master_adverts_sent" in samples[0]:
                worst = min(
                    samples, key=lambda x: x["master_adverts_heard"] - x["master_adverts_sent"]
                )
                heard = f"{worst['master_adverts_heard']}/{worst['master_adverts_sent']}"
            lines.append(
                f"| {name} | {runs(name)} | {r['sent_pps']:.0f} | {r['master_transitions']} | "
                f"{r['backup_transitions']} | {r['cpu_pct']:.1f} | "
                f"{cell('backup_cpu_pct', '.1f')} | {heard} "
                f"| {cell('dropped_read', '.0f')} | {cell('shed', '.0f')} |"
            )
    lines += spoofed_markdown(results, runs)
    lines += ten_ms_markdown(results, runs)
    lines += _section(
        results,
        "jitter",
        "",
        f"## Advert jitter (|interval - 1 s|, {JITTER_SECONDS:g} s)",
        "",
        "| scenario | runs | adverts | p50 ms | p99 ms | max ms |",
        "|---|---|---:|---:|---:|---:|",
    )
    for name, samples in results.items():
        if name.startswith("jitter"):
            r = medians(samples)
            lines.append(
                f"| {name} | {runs(name)} | {r['adverts']} | {r['p50_ms']:.2f} | "
                f"{r['p99_ms']:.2f} | {r['max_ms']:.2f} |"
            )
    tracked = results.get("advert jitter with 100 trackers, carpd")
    if tracked:
        r = medians(tracked)
        lines += [
            "",
            f"## Advert jitter with 100 trackers ({r['seconds']:g} s windows, median of "
            f"{runs('advert jitter with 100 trackers, carpd')} runs; bench/trackers.py)",
            "",
            "One carpd MASTER of a CARP vhid (advbase 1) and a VRRPv3 VRID (0.1 s), from a "
            "fresh start each time: without trackers, then with 100 probing real targets in "
            "the lab every second (25 ping, 25 tcp, 20 http, 10 interface, 10 file, 10 "
            "process). p99 of |gap - interval| and the longest gap between its adverts, "
            "stamped by a third host's kernel; carpd's CPU % of one core (schedstat) over "
            "the window, its RSS at the end.",
            "",
            "| carpd | CARP adverts | CARP p99 ms | CARP max gap ms | VRRPv3 adverts "
            "| VRRPv3 p99 ms | VRRPv3 max gap ms | CPU % | RSS MiB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for label, end in (("without trackers", "without"), ("with 100 trackers", "with"),
                           ("difference", "diff")):  # fmt: skip
            lines.append(
                f"| {label} | {r['carp_adverts_' + end]:.0f} | {r['carp_p99_ms_' + end]:.2f} "
                f"| {r['carp_max_gap_ms_' + end]:.2f} | {r['vrrp_adverts_' + end]:.0f} "
                f"| {r['vrrp_p99_ms_' + end]:.2f} | {r['vrrp_max_gap_ms_' + end]:.2f} "
                f"| {r['cpu_pct_' + end]:.2f} | {r['rss_mib_' + end]:.1f} |"
            )
        lines += [
            "",
            "Failed probes (rise 1 and fall 1: each is a logged down verdict) in all the "
            f"windows: {sum(x['probe_failures'] for x in tracked)}; trackers not up at a "
            f"window's end: {sum(x['trackers_not_up'] for x in tracked)}; state "
            f"transitions: {sum(x['transitions'] for x in tracked)}.",
        ]
    synced = [r for name, rs in results.items() if name.startswith("state sync, ") for r in rs]
    if synced:
        lines += ["", "## State sync at a firewall's scale (bench/scale_sync.py)", "",
                  scale_sync.table(synced)]  # fmt: skip
    if any(failed.values()):
        lines += ["", "## Failed attempts", "", "| scenario | run | at set-up | error |"]
        lines += ["|---|---:|---|---|"]
        for name, fs in failed.items():
            for f in fs:
                error = str(f["error"]).replace("|", "/").replace("\n", " ")[:200]
                lines.append(
                    f"| {name} | {f.get('run', '-')} | {'yes' if f['setup'] else 'no'} | {error} |"
                )
    lines += ["", "## Targets", "", *targets(results, failed)]
    return "\n".join(lines) + "\n"


CRASH_GROUPS = ("crash failover, ", "sub-second VRRPv3 0.1 s, ", "sub-second VRRPv3 0.01 s, ")


def crash_by_phase(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The crash rows run by run: each setting's daemons side by side at the same phase."""
    out: list[str] = []
    for prefix in CRASH_GROUPS:
        group = {
            n.removeprefix(prefix): ss
            for n, ss in results.items()
            if n.startswith(prefix) and ss and "phase" in ss[0]
        }
        if len(group) < 2:
            continue
        out += [
            "",
            f"{prefix.rstrip(', ')}: client outage, ms, run by run at the same phase (when "
            "the crash came after the master's last advert; the new MASTER after the crash):",
            "",
            core.by_phase(
                group,
                lambda r: (
                    f"{r['outage_ms']:.0f} (crash {1000 * r['phase_s']:.0f} ms after an "
                    f"advert, new MASTER {r['master_ms']:.0f} ms)"
                ),
            ),
        ]
    return out


def _section(results: dict[str, list[dict[str, Any]]], prefix: str, *head: str) -> list[str]:
    """A table's heading lines, if any scenario's label starts with ``prefix``."""
    return list(head) if any(n.startswith(prefix) for n in results) else []


def targets(results: dict[str, list[dict[str, Any]]], failed: Failures | None = None) -> list[str]:
    t = Targets(results, failed or {})

    def med(name: str, key: str) -> float:
        return statistics.median(s[key] for s in results[name])

    crash_c, crash_u = "crash failover, carpd", "crash failover, ucarp"
    t.check(
        "crash outage no longer than ucarp's",
        [crash_c, crash_u],
        lambda: (
            med(crash_c, "outage_ms") <= med(crash_u, "outage_ms"),
            f"{med(crash_c, 'outage_ms'):.0f} vs {med(crash_u, 'outage_ms'):.0f} ms (median)",
        ),
    )
    t.check(
        f"takeover within {TAKEOVER_MARGIN_MS:g} ms of the master-down interval after the "
        "last advert, in every run",
        [crash_c],
        lambda: from_last_advert(results[crash_c]),
        every_run=True,
    )
    for name in ("graceful SIGTERM, carpd", "graceful maintenance, carpd"):
        t.check(
            f"{name}: outage under 50 ms",
            [name],
            lambda n=name: (
                med(n, "outage_ms") < 50,
                f"{med(n, 'outage_ms'):.0f} ms (median; probe resolution ~16-20 ms)",
            ),
        )
    deleted = "address deleted on the MASTER, carpd"

    def deleted_check() -> tuple[bool, str]:
        worst = max(r["outage_max_ms"] for r in results[deleted])
        return worst < 100, (
            f"client outage median {med(deleted, 'outage_median_ms'):.0f} ms, max "
            f"{worst:.0f} ms (ping every 10 ms); put back "
            f"{med(deleted, 'restore_median_ms'):.1f} ms after the deletion (median)"
        )

    t.check(
        "an address deleted on the MASTER reaches its clients again within 100 ms",
        [deleted],
        deleted_check,
        every_run=True,
    )
    stale = "stale client after the MASTER's resume, carpd"
    t.check(
        "a client with a stale neighbour entry reaches the MASTER within one advert interval "
        "(1 s) of its resume",
        [stale],
        lambda: (
            max(r["back_ms"] for r in results[stale]) <= 1000 + 50,
            f"max {max(r['back_ms'] for r in results[stale]):.0f} ms",
        ),
        every_run=True,
    )
    s255 = "scale, carpd, 255 vhids"

    def cpu255() -> tuple[bool, str]:
        m = medians(results[s255])
        return m["cpu_pct"] < 2, (
            f"{m['cpu_pct']:.2f} % once all are MASTER (as ucarp's is measured); getting "
            f"there took {m['takeover_cpu_s']:.2f} CPU-seconds (Python's start-up and the "
            "255 takeovers)"
        )

    t.check("255 vhids under 2 % of one core", [s255], cpu255)
    t.check(
        "255 vhids under 60 MB RSS",
        [s255],
        lambda: (
            medians(results[s255])["rss_mib"] < 60,
            f"{medians(results[s255])['rss_mib']:.1f} MiB",
        ),
    )
    flood_targets(t)
    spoofed_targets(t)
    ten_ms_targets(t)
    fw, fk = "firewall pair, carpd + conntrackd", "firewall pair, keepalived + conntrackd"
    t.check(
        "every connection through the firewall pair survives a crash, in every run",
        [fw],
        lambda: (
            all(r["lost"] == 0 for r in results[fw]),
            ", ".join(f"{r['survived']}/{r['connections']}" for r in results[fw]),
        ),
        every_run=True,
    )
    t.check(
        "data flowing again no later than keepalived's",
        [fw, fk],
        lambda: data_flowing_again(results[fw], results[fk], firewall.TCP_RTO_MAX),
        every_run=True,
    )
    t.check(
        "no packet dropped as invalid on the new master (the commit comes before the "
        "addresses), in every run",
        [fw],
        lambda: (
            not any(r["invalid_on_new_master"] for r in results[fw]),
            f"carpd {[r['invalid_on_new_master'] for r in results[fw]]}, keepalived "
            f"{[r['invalid_on_new_master'] for r in results.get(fk, [])]}",
        ),
        every_run=True,
    )
    t.check(
        "advert jitter p99 under 5 ms",
        ["jitter, carpd"],
        lambda: (
            medians(results["jitter, carpd"])["p99_ms"] < 5,
            f"{medians(results['jitter, carpd'])['p99_ms']:.2f} ms (median of the runs' p99)",
        ),
    )
    tracked = "advert jitter with 100 trackers, carpd"

    def trackers_check() -> tuple[bool, str]:
        m = medians(results[tracked])
        failures = sum(x["probe_failures"] + x["trackers_not_up"] for x in results[tracked])
        moved = max(m["carp_p99_ms_diff"], m["vrrp_p99_ms_diff"])
        return failures == 0 and moved <= trackers.MARGIN_MS, (
            f"p99 {m['carp_p99_ms_with']:.2f} vs {m['carp_p99_ms_without']:.2f} ms without "
            f"(CARP 1 s), {m['vrrp_p99_ms_with']:.2f} vs {m['vrrp_p99_ms_without']:.2f} "
            f"ms (VRRPv3 0.1 s), within {trackers.MARGIN_MS:g} ms; for "
            f"{m['cpu_pct_diff']:+.2f} % of a core and {m['rss_mib_diff']:+.1f} MiB; "
            f"failed probes {failures}"
        )

    t.check("100 trackers (1 s) do not move advert jitter", [tracked], trackers_check, True)
    level_targets(t)
    return t.lines


def level_targets(t: Targets) -> None:
    """Issue 32's item 2: level with the C peers, each figure beside its peer's from the
    same run, or under its number with the floor beside it."""
    results = t.results

    def at_or_below(what: str, ours: str, theirs: str, key: str, unit: str) -> None:
        def measure() -> tuple[bool, str]:
            a, b = medians(results[ours])[key], medians(results[theirs])[key]
            return a <= b, f"{a:.2f} vs {b:.2f} {unit} (medians of the runs)"

        t.check(what, [ours, theirs], measure)

    at_or_below("1 s advert jitter p99 at or below ucarp's", "jitter, carpd", "jitter, ucarp",
                "p99_ms", "ms")  # fmt: skip
    c16, k16 = "10 ms jitter, 16 VRIDs, carpd", "10 ms jitter, 16 VRIDs, keepalived"
    at_or_below("16 VRIDs at 10 ms: CPU at or below keepalived's", c16, k16, "cpu_pct", "%")
    at_or_below("16 VRIDs at 10 ms: jitter p99 at or below keepalived's", c16, k16, "p99_ms",
                "ms")  # fmt: skip
    at_or_below("16 VRIDs at 10 ms: late p99 (the long side) at or below keepalived's", c16,
                k16, "p99_late_ms", "ms")  # fmt: skip
    at_or_below("CPU under a 1,000/s forged flood at or below ucarp's", "flood 1000/s, carpd",
                "flood 1000/s, ucarp", "cpu_pct", "%")  # fmt: skip
    up = "start-up, carpd"

    def floor() -> str:
        m = medians(results[up])
        if "imports_rss_mib" not in m:
            return "floor not measured in this run"
        text = (f"floor: python -c pass {m['python_rss_mib']:.1f} MiB, {m['python_ms']:.0f} ms;"
                f" with asyncio, hmac, pydantic and rtnetlink imported {m['imports_rss_mib']:.1f}"
                f" MiB, {m['imports_ms']:.0f} ms")  # fmt: skip
        if "model_rss_mib" in m:
            text += (f"; and one pydantic model built {m['model_rss_mib']:.1f} MiB,"
                     f" {m['model_ms']:.0f} ms")  # fmt: skip
        return text

    for count, limit in RSS_TARGETS_MIB.items():
        name = f"scale, carpd, {count} vhids"

        def rss(name: str = name, limit: float = limit) -> tuple[bool, str]:
            r = medians(results[name])["rss_mib"]
            return r < limit, f"{r:.1f} MiB; {floor()}"

        t.check(f"RSS for {count} vhid{'s' if count > 1 else ''} under {limit:g} MiB",
                [name, up], rss)  # fmt: skip

    def spawn() -> tuple[bool, str]:
        ms = medians(results[up])["backup_ms"]
        return ms < STARTUP_TARGET_MS, f"{ms:.0f} ms (median); {floor()}"

    t.check(f"spawn to BACKUP under {STARTUP_TARGET_MS:g} ms", [up], spawn)
    statuses = [f"scale, carpd, {n} vhids" for n in SCALE_COUNTS]

    def status() -> tuple[bool, str]:
        worst = {n: max(r["carpctl_status_ms"] for r in results[n]) for n in statuses}
        return all(v < STATUS_TARGET_MS for v in worst.values()), ", ".join(
            f"{n.rsplit(', ', 1)[1]}: {v:.0f} ms" for n, v in worst.items()
        ) + " (the worst run's median of 5)"

    t.check(f"`carpctl status` under {STATUS_TARGET_MS:g} ms, command to printed answer",
            statuses, status)  # fmt: skip


def ten_ms_markdown(
    results: dict[str, list[dict[str, Any]]], runs: Callable[[str], str]
) -> list[str]:
    rows = [n for n in results if n.startswith("10 ms")]
    if not rows:
        return []
    lines = [
        "",
        f"## VRRPv3 at 10 ms adverts ({TEN_MS_SECONDS:g} s windows)",
        "",
        "Jitter: |gap - 10 ms| between each VRID's consecutive adverts, stamped by a third "
        "host's kernel (SO_TIMESTAMPNS). CPU % of one core over the window (keepalived: "
        "parent and VRRP child). The timer floor: a process doing nothing but sleeping to "
        "10 ms deadlines, for how late this machine wakes anything. p99 late: the long "
        "side only (max(0, gap - 10 ms)), what a backup's master-down timer sees: carpd "
        "keeps its schedule, so a late advert is followed by a short gap that |gap - 10 ms| "
        "counts again; keepalived restarts its timer from the send and has none.",
        "",
        "| scenario | runs | adverts | p50 ms | p99 ms | p99 late ms | max ms | CPU % |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in rows:
        r = medians(results[name])
        if "p99_ms" in r:
            adverts = f"{r['adverts']:.0f}" if "adverts" in r else "-"
            cpu = f"{r['cpu_pct']:.1f}" if "cpu_pct" in r else "-"
            late = f"{r['p99_late_ms']:.2f}" if "p99_late_ms" in r else "-"
            lines.append(
                f"| {name} | {runs(name)} | {adverts} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                f"{late} | {r['max_ms']:.2f} | {cpu} |"
            )
    lines += [
        "",
        "| a pair left alone | runs | seconds each | master transitions | backup transitions |",
        "|---|---|---:|---:|---:|",
    ]
    for name in rows:
        r = medians(results[name])
        if "seconds" in r:
            lines.append(
                f"| {name} | {runs(name)} | {r['seconds']:.0f} | "
                f"{r['master_transitions']} | {r['backup_transitions']} |"
            )
    return lines + where_markdown(results, runs)


WHERE_STAGES = {  # bench/where.py's stages, as the table names them
    "wakeup": "the wakeup: epoll_wait returning (the kernel's switch back to carpd)",
    "loop": "asyncio's own Python (its ready queue, its handles)",
    "timer": "the timer: reading the timerfd, arming it again",
    "send": "the adverts' sendto (the kernel's IP and veth path)",
    "core": "the core: the decision and the advert",
    "runtime": "the runtime's bookkeeping (transmit, vhosts, events)",
    "other": "the rest of carpd (netlink, link watch)",
}


def where_markdown(
    results: dict[str, list[dict[str, Any]]], runs: Callable[[str], str]
) -> list[str]:
    """bench/where.py's stages of carpd's time at 16 VRIDs and 10 ms."""
    if WHERE not in results:
        return []
    r = medians(results[WHERE])
    lines = [
        "",
        f"Where carpd's time goes at 16 VRIDs and 10 ms (bench/where.py: py-spy, "
        f"{where.RATE} samples a second of the process on a CPU, a syscall's time on the "
        f"line that made it; runs: {runs(WHERE)}, medians; {r['samples']:.0f} samples and "
        f"{r['cpu_pct']:.2f} % of a core in the window, sampler included):",
        "",
        "| stage | share of the samples | % of one core |",
        "|---|---:|---:|",
    ]
    for stage, label in WHERE_STAGES.items():
        share = r[f"share {stage}"]
        lines.append(f"| {label} | {100 * share:.0f} % | {share * r['cpu_pct']:.2f} |")
    return lines


def ten_ms_targets(t: Targets) -> None:
    results = t.results
    c, k = "sub-second VRRPv3 0.01 s, carpd", "sub-second VRRPv3 0.01 s, keepalived"
    probe = 1000 * vrrp.probe_interval(0.01)  # the outage's resolution

    def outage() -> tuple[bool, str]:
        co, ko = medians(results[c])["outage_ms"], medians(results[k])["outage_ms"]
        return co <= ko + probe, (
            f"{co:.0f} vs {ko:.0f} ms (median; ping every {probe:.0f} ms, so equal within "
            f"{probe:.0f} ms)"
        )

    t.check("10 ms crash outage no longer than keepalived's", [c, k], outage)
    rt, normal = f"10 ms jitter, 16 VRIDs, carpd, {RT_CARPD}", "10 ms jitter, 16 VRIDs, carpd"

    def jitter16() -> tuple[bool, str]:
        r, o = medians(results[rt]), medians(results[normal])
        return r["p99_ms"] < 2, (
            f"{r['p99_ms']:.2f} ms with {RT_CARPD} (the README's setting for 10 ms adverts), "
            f"at {r['cpu_pct']:.1f} % of a core; {o['p99_ms']:.2f} ms under the normal policy"
        )

    t.check("16 VRIDs at 10 ms: jitter p99 under 2 ms", [rt, normal], jitter16)
    pairs = t.labels(lambda n: n.startswith("10 ms pair"))

    def flaps() -> tuple[bool, str]:
        counts = {
            n.rsplit(", ", 1)[1]: max(r["master_transitions"] + r["backup_transitions"] for r in ss)
            for n, ss in results.items()
            if n.startswith("10 ms pair")
        }
        return counts.get("carpd", 1) == 0, ", ".join(f"{k} {v}" for k, v in counts.items())

    carpd_pairs = [n for n in pairs if n.endswith("carpd")] or ["10 ms pair left alone, carpd"]
    t.check("no flap at 10 ms, in every run", carpd_pairs, flaps, every_run=True)


def spoofed_label(rate: int, kind: str, varied: bool) -> str:
    return f"{SPOOFED}{' ' + VARIED if varied else ''} {_rate(rate)}, {kind}"


def spoofed_markdown(
    results: dict[str, list[dict[str, Any]]], runs: Callable[[str], str]
) -> list[str]:
    names = [n for n in results if n.startswith(SPOOFED)]
    if not names:
        return []
    lines = [
        "",
        f"## Forged-advert flood from the master's own address ({FLOOD_SECONDS:g} s, wrong "
        "HMAC, advskew 0, sent by trafgen)",
        "",
        "The attacker (a third host) sends with the real master's source address, so the "
        "flood shares the queue of the master's adverts on the backup: one frame over and "
        f"over, or ({VARIED}) each with a random counter, so that no two are alike. False "
        "takeovers: "
        "runs in which the backup became MASTER (or the master left it), of all runs; "
        "heard/sent: the real master's adverts the backup verified against those the master "
        "sent, both read at the same two moments (the worst run); repeated: forged copies "
        "carpd's backup skipped unread (its memo of refused datagrams) in the worst run's "
        "window, refused: those it decoded and refused.",
        "",
        "| scenario | runs | sent/s | false takeovers | backup CPU % | heard/sent "
        "| backup repeated | backup refused | backup shed |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        samples = results[name]
        r = medians(samples)
        flips = sum(1 for x in samples if x["master_transitions"] + x["backup_transitions"])
        heard = repeated = refused = shed = "-"
        if "master_adverts_sent" in samples[0]:
            w = min(samples, key=lambda x: x["master_adverts_heard"] - x["master_adverts_sent"])
            heard = f"{w['master_adverts_heard']}/{w['master_adverts_sent']}"
            repeated = f"{w['backup_repeated']}"
            refused = f"{w['backup_refused']}"
            shed = f"{w['backup_shed']}"
        lines.append(
            f"| {name} | {runs(name)} | {r['sent_pps']:.0f} | {flips}/{len(samples)} | "
            f"{r['backup_cpu_pct']:.1f} | {heard} | {repeated} | {refused} | {shed} |"
        )
    return lines


def spoofed_targets(t: Targets) -> None:
    for varied in (False, True):
        _spoofed_target(t, varied)


def _spoofed_target(t: Targets, varied: bool) -> None:
    """No false takeover for carpd at any rate at which ucarp held in every run."""
    results = t.results
    names = [spoofed_label(r, k, varied) for r in SPOOFED_RATES for k in ("carpd", "ucarp")]
    present = [n for n in names if n in results]
    if not present:
        return

    def held(name: str) -> bool:
        return all(not (x["master_transitions"] + x["backup_transitions"]) for x in results[name])

    def check() -> tuple[bool, str]:
        ok, parts = True, []
        for r in SPOOFED_RATES:
            c, u = spoofed_label(r, "carpd", varied), spoofed_label(r, "ucarp", varied)
            if c not in results or u not in results:
                continue
            if held(u) and not held(c):
                ok = False
            parts.append(f"{_rate(r)}: carpd {'held' if held(c) else 'fell'}, ucarp "
                         f"{'held' if held(u) else 'fell'}")  # fmt: skip
        return ok, "; ".join(parts)

    t.check(
        f"a flood from the master's own address{' ' + VARIED if varied else ''}: no false "
        "takeover at any rate where ucarp held, in every run",
        present,
        check,
        every_run=True,
    )


def flood_targets(t: Targets) -> None:
    results = t.results
    top = f"flood {_rate(0)}"
    most = {k: f"{top}, {k}" for k in ("carpd", "ucarp")}

    def no_takeover() -> tuple[bool, str]:
        def flips(k: str) -> int:
            return max(r["master_transitions"] + r["backup_transitions"] for r in results[k])

        rates = {k: max(r["sent_pps"] for r in results[n]) for k, n in most.items() if n in results}
        text = ", ".join(f"{k} {flips(most[k])} at up to {rates[k]:.0f}/s" for k in rates)
        return flips(most["carpd"]) == 0, text

    t.check(
        "no false takeover at the attacker's most, in every run",
        [most["carpd"]],
        no_takeover,
        every_run=True,
    )
    floods = t.labels(lambda n: n.startswith("flood") and n.endswith("carpd"))
    t.check(
        "the backup heard every one of the master's adverts in every flood run (heard == sent)",
        floods,
        lambda: heard_every_advert([r for n in floods for r in results[n]]),
        every_run=True,
    )
    c50, u50 = "flood 50000/s, carpd", "flood 50000/s, ucarp"
    t.check(
        "CPU under a 50k/s flood no higher than ucarp's",
        [c50, u50],
        lambda: (
            medians(results[c50])["cpu_pct"] <= medians(results[u50])["cpu_pct"],
            f"{medians(results[c50])['cpu_pct']:.1f} vs {medians(results[u50])['cpu_pct']:.1f} %",
        ),
    )


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
    global FLOOD_RATES, FIREWALL_CONNECTIONS, SCALE_COUNTS
    window(10.0)
    FLOOD_RATES, SCALE_COUNTS, FIREWALL_CONNECTIONS = (50_000, 0), (255,), 200
    balance.WINDOW = 2.0  # of 4: the sinks' caps set the figure either way; keeps --quick short


def window(seconds: float) -> None:
    """The measuring windows of scale, flood, jitter and 10 ms (pairs left alone: half as
    long again) set to about ``seconds`` (a flood: a third of it)."""
    global SCALE_SECONDS, FLOOD_SECONDS, JITTER_SECONDS, TEN_MS_SECONDS, STEADY_SECONDS
    SCALE_SECONDS, JITTER_SECONDS = seconds, seconds
    FLOOD_SECONDS = max(1.0, seconds / 3)
    TEN_MS_SECONDS, STEADY_SECONDS = max(1.0, seconds * 0.4), max(1.0, seconds / 2)


def select(todo: list[Scenario], only: list[str]) -> list[Scenario]:
    """The scenarios whose label contains one of ``only`` (all of them without)."""
    if not only:
        return todo
    return [s for s in todo if any(o in s[0] for o in only)]


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
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="TEXT",
        help="only the scenarios whose label contains TEXT (repeatable); writes "
        "results/only.md and only.json",
    )
    parser.add_argument(
        "--window",
        type=float,
        metavar="SECONDS",
        help="measuring windows of scale, flood, jitter and 10 ms scenarios (a check that a "
        "scenario works, not figures)",
    )
    args = parser.parse_args()
    name = "latest"
    if args.quick:
        quick()
        args.runs = args.others = 1
        name = "quick"
    if args.window is not None:
        window(args.window)
    todo = select(scenarios(args.runs, args.others), args.only)
    if args.only or args.window is not None:
        name = "only"
    if not todo:
        parser.error(f"no scenario's label contains any of {args.only}")
    if any(label.startswith("flood") for label, _, _ in todo) and not os.path.exists(TRAFGEN):
        print(f"{TRAFGEN} is missing: the floods need trafgen (netsniff-ng)", file=sys.stderr)
        return 1
    restore = terminate_on_sigterm()
    results: dict[str, list[dict[str, Any]]] = {}
    failed: Failures = {}
    try:
        for n, (label, run, repeats), i in schedule(todo):
            t0 = time.monotonic()
            r, failures = attempt(run)
            for f in failures:
                failed.setdefault(label, []).append({"run": i + 1, **f})
                kind = "at set-up, tried again" if f["setup"] and not f["lost"] else "run lost"
                progress(
                    f"[{n}/{len(todo)}] {label} ({i + 1}/{repeats}) failed ({kind}): {f['error']}"
                )
            if r is None:
                continue
            results.setdefault(label, []).append(r)
            shown = ", ".join(f"{k} {v:.1f}" for k, v in r.items() if isinstance(v, int | float))
            progress(
                f"[{n}/{len(todo)}] {label} ({i + 1}/{repeats}, "
                f"{time.monotonic() - t0:.0f} s): {shown[:110]}"
            )
    except KeyboardInterrupt:
        print("interrupted: labs removed", file=sys.stderr)
        return 130
    except FatalError as e:
        print(f"stopped: {e}", file=sys.stderr)
        return 1
    finally:
        restore()
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {"results": results, "failed_attempts": failed}
    (RESULTS / f"{name}.json").write_text(json.dumps(doc, indent=2, default=str))
    text = markdown(results, failed)
    if name == "latest" and results:
        made = plots(results)
        text += "\n" + "\n".join(f"![{m}]({m})" for m in made) + "\n"
    (RESULTS / f"{name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
