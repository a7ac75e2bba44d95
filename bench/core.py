"""Core benchmark: failover outages (carpd vs ucarp), start-up time, memory and CPU.

Run as root from anywhere:  .venv/bin/python bench/core.py [--runs N]

Everything runs in throwaway labs of network namespaces (carpd_lab) with documentation
addresses; each scenario run has its own ``with Lab(...)``, so every namespace and
process is removed on every exit path. Results: a markdown table on stdout, and
bench/results/core.json and bench/results/core.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, Protocol

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The daemons are spawned as `python -m carpd`: let them find the package from any cwd.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p
)

from import_cost import FLOORS  # noqa: E402

from carpd.core.timing import master_down_interval  # noqa: E402
from carpd_lab.cluster import Node, VhidSpec, line_time  # noqa: E402
from carpd_lab.netlab import Host, Lab, LogWatch, carpd_argv  # noqa: E402
from carpd_lab.probe import Pinger, sniff  # noqa: E402

RESULTS = ROOT / "bench" / "results"
UCARP = "/usr/sbin/ucarp"
VHID, PASSWORD, VIP = 7, "secret", "192.0.2.100"
NODE1, NODE2, CLIENT = "192.0.2.1/24", "192.0.2.2/24", "192.0.2.9/24"
MASTER_SKEW, BACKUP_SKEW, ADVBASE = 0, 100, 1
FOOTPRINT_SECONDS = 10.0
ANNOUNCED = 2.0  # after the last takeover: its address and announcement steps are done
VERSION_SPAWNS = 5  # `carpd --version` runs per start-up run; their median is the sample
WIRE_TIMEOUT = 10.0  # seconds to wait for the new master's first advert on the wire

# key -> (label, unit), in table order.
METRICS: dict[str, tuple[str, str]] = {
    "crash_outage_carpd": ("crash (kill -9 + link down): client outage, carpd", "ms"),
    "crash_outage_ucarp": ("crash (kill -9 + link down): client outage, ucarp", "ms"),
    "crash_master_carpd": ("crash: kill -> new master's first advert, carpd", "ms"),
    "crash_master_ucarp": ("crash: kill -> new master's first advert, ucarp", "ms"),
    "crash_last_carpd": ("crash: last advert -> new master's first (bound 3391), carpd", "ms"),
    "crash_last_ucarp": ("crash: last advert -> new master's first (bound 3391), ucarp", "ms"),
    "stop_outage_carpd": ("graceful stop (SIGTERM): client outage, carpd", "ms"),
    "stop_outage_ucarp": ("graceful stop (SIGTERM, ucarp -z): client outage, ucarp", "ms"),
    "stop_master_carpd": ("graceful stop: SIGTERM -> new master's first advert, carpd", "ms"),
    "stop_master_ucarp": ("graceful stop: SIGTERM -> new master's first advert, ucarp", "ms"),
    "startup_backup": ("start-up: spawn -> INIT -> BACKUP line, carpd", "ms"),
    "startup_started": ("start-up: spawn -> started line, carpd", "ms"),
    "startup_advert": ("start-up: spawn -> first advert on the wire, carpd (lone node)", "ms"),
    "startup_advert_own": ("start-up: that, less the 3 s master-down interval, carpd", "ms"),
    "startup_version": ("start-up: `carpd --version` wall time, carpd", "ms"),
    "rss_1": ("RSS, all MASTER, carpd, 1 vhid", "MiB"),
    "rss_255": ("RSS, all MASTER, carpd, 255 vhids", "MiB"),
    "cpu_1": ("CPU over 10 s, all MASTER (utime+stime), carpd, 1 vhid", "%"),
    "cpu_255": ("CPU over 10 s, all MASTER (utime+stime), carpd, 255 vhids", "%"),
    "cpu_sched_1": ("CPU over 10 s, all MASTER (schedstat), carpd, 1 vhid", "%"),
    "cpu_sched_255": ("CPU over 10 s, all MASTER (schedstat), carpd, 255 vhids", "%"),
}


def interrupt_on_signals() -> Callable[[], None]:
    """SIGTERM and SIGINT unwind like Ctrl-C, so every ``with Lab`` cleans up; returns
    a restorer.

    Unlike carpd_lab.netlab.terminate_on_sigterm, only in this very process: pyroute2's
    NetNS forks helpers that inherit the handler and stops them with SIGTERM; raising
    there would unwind the fork's copy of our stack and close the parent's lab.
    """
    pid = os.getpid()

    def handler(signum: int, frame: object) -> None:
        if os.getpid() != pid:
            os._exit(128 + signum)
        raise KeyboardInterrupt

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, previous in old.items():
            signal.signal(sig, previous)

    return restore


def progress(text: str) -> None:
    print(text, flush=True)


# -- failures before the measured event -------------------------------------------------


class SetupError(RuntimeError):
    """A failure before the measured event: a lab that would not build, a daemon that did
    not start, settle or become MASTER the first time. bench/run.py retries these, and only
    these; whatever fails from the measured event on is a failed run."""


# What a set-up step raises when it fails (the lab's waits raise TimeoutError, its checks
# RuntimeError or AssertionError, its commands OSError or CalledProcessError).
SETUP_FAILURES: tuple[type[BaseException], ...] = (
    RuntimeError,
    TimeoutError,
    OSError,
    subprocess.SubprocessError,
    AssertionError,
)


@contextlib.contextmanager
def setting_up(what: str) -> Iterator[None]:
    """Everything in the block comes before the measured event: its failures are
    SetupErrors (the original chained)."""
    try:
        yield
    except SetupError:
        raise
    except SETUP_FAILURES as e:
        raise SetupError(f"{what}: {e!r}") from e


# -- the wire, as a third host sees it ---------------------------------------------------


def takeover_on_the_wire(lines: list[str], old: str, new: str, since: float) -> tuple[float, float]:
    """From ``carpd_lab.sniff --times`` lines of a third host: the kernel stamps of the
    first advert from ``new`` at or after ``since`` and of the last advert from ``old``
    before it, as (last_old, first_new). RuntimeError if either is missing."""
    last_old: float | None = None
    for line in lines:
        parts = line.split()
        if len(parts) < 3 or parts[1] not in ("carp", "vrrp"):
            continue  # an ARP line (no stamp), or the sniffer's own
        try:
            at = float(parts[0])
        except ValueError:
            continue
        if parts[2] == new and at >= since:
            if last_old is None:
                raise RuntimeError(f"no advert from {old} before {new}'s first")
            return last_old, at
        if parts[2] == old:
            last_old = at
    raise RuntimeError(f"no advert from {new} after {since:.6f}")


def wait_new_master_advert(watch: LogWatch, new: str, start: int) -> None:
    """Block until the sniffer has printed an advert from ``new`` (after line ``start``)."""
    watch.wait_for(rf"^\S+ (carp|vrrp) {re.escape(new)} ", WIRE_TIMEOUT, start)


# -- the two daemons behind one interface ---------------------------------------------


class Phases:
    """When each run crashes the master, as a share of the advert interval after its
    advert: the n-th run of every daemon at the n-th phase, so that the daemons are
    compared at the same moments. Stratified: one phase in each n-th of the interval, in
    a shuffled order (a slow spell of the machine does not meet only the late ones).
    A run takes its phase when it crashes: one whose set-up failed and is tried again
    keeps it."""

    def __init__(self, runs: int, rng: random.Random | None = None) -> None:
        rng = rng or random.Random()
        self.phases = [(i + rng.random()) / runs for i in range(runs)]
        rng.shuffle(self.phases)
        self._taken: dict[str, int] = {}

    def next(self, kind: str) -> float:
        return self.phases[self._taken.get(kind, 0) % len(self.phases)]

    def take(self, kind: str) -> None:
        self._taken[kind] = self._taken.get(kind, 0) + 1


@contextlib.contextmanager
def crash_phase(phases: Phases | None, kind: str) -> Iterator[float]:
    """``phases``' next moment for ``kind`` (a random one without phases), taken however
    the crash ends: a run lost there is not tried again, the next one takes the next."""
    if phases is None:
        yield random.random()
        return
    try:
        yield phases.next(kind)
    finally:
        phases.take(kind)


def by_phase(raw: dict[str, list[dict[str, Any]]], cell: Callable[[dict[str, Any]], str]) -> str:
    """Run by run, the daemons side by side at the same phase (Phases): one row a phase,
    each daemon's run there as ``cell`` shows it, "-" where its run was lost."""
    kinds = list(raw)
    rows = [f"| phase | {' | '.join(kinds)} |", "|---:|" + "---:|" * len(kinds)]
    phases: dict[float, dict[str, dict[str, Any]]] = {}
    for kind, samples in raw.items():
        for r in samples:
            phases.setdefault(r["phase"], {})[kind] = r
    for phase, runs in sorted(phases.items()):
        cells = [cell(runs[k]) if k in runs else "-" for k in kinds]
        rows.append(f"| {phase:.2f} | {' | '.join(cells)} |")
    return "\n".join(rows)


def sleep_to_phase(watch: LogWatch, advert: str, interval: float, phase: float) -> None:
    """Sleep until ``phase`` of an interval after the old master's next advert (``advert``
    matches its line; the client's kernel stamp, wall clock)."""
    _, line = watch.wait_for(advert, 2 * interval + 1, watch.mark())
    at = float(line.split()[0]) + phase * interval
    while at < time.time() + 0.005:  # the line came late: the next interval's moment
        at += interval
    time.sleep(at - time.time())


class Stamp(NamedTuple):
    logged: float  # wall-clock time the daemon stamped on its log line
    read: float  # wall-clock time the benchmark read the line


class Member(Protocol):
    host: Host

    def mark(self) -> int: ...
    def signal(self, sig: int) -> None: ...
    def wait_exit(self, timeout: float = 10.0) -> None: ...
    def masters(self, start: int = 0) -> int: ...
    def wait_state(self, state: str, start: int = 0, timeout: float = 10.0) -> Stamp: ...


class Carpd:
    """A carpd node (carpd_lab.cluster.Node) on vhid 7."""

    def __init__(self, lab: Lab, host: Host, advskew: int) -> None:
        spec = VhidSpec(VHID, (f"{VIP}/24",), advskew=advskew, advbase=ADVBASE, password=PASSWORD)
        self.host = host
        self.node = Node(lab, host, [spec])
        self.node.start()

    def mark(self) -> int:
        return self.node.mark()

    def signal(self, sig: int) -> None:
        self.node.signal(sig)

    def wait_exit(self, timeout: float = 10.0) -> None:
        assert self.node.proc is not None
        self.node.proc.wait(timeout)

    def masters(self, start: int = 0) -> int:
        assert self.node.log is not None
        return sum("-> MASTER" in line for line in self.node.log.lines[start:])

    def wait_state(self, state: str, start: int = 0, timeout: float = 10.0) -> Stamp:
        _, line = self.node.wait_state(state, timeout=timeout, start=start)
        return Stamp(line_time(line), time.time())


def ucarp_stamp(line: str) -> float:
    """ucarp -f none stamps its lines itself: '2024-01-02T03:04:05.123456: [WARNING] ...'."""
    return datetime.strptime(line.split(": ", 1)[0], "%Y-%m-%dT%H:%M:%S.%f").timestamp()


class Ucarp:
    """ucarp on vhid 7; up/down scripts add/remove the VIP."""

    def __init__(self, lab: Lab, host: Host, advskew: int, shutdown: bool) -> None:
        assert host.ipv4 is not None
        up, down = self._scripts(lab)
        argv = [UCARP, "-i", "eth0", "-s", host.ipv4.split("/")[0], "-v", str(VHID)]
        argv += ["-p", PASSWORD, "-a", VIP, "-u", str(up), "-d", str(down)]
        argv += ["-b", str(ADVBASE), "-k", str(advskew), "-f", "none"]
        if shutdown:
            argv.append("-z")
        self.host = host
        self.lab = lab
        self.proc = host.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.proc.stdout is not None
        self.log = LogWatch(self.proc.stdout)

    @staticmethod
    def _scripts(lab: Lab) -> tuple[Path, Path]:
        up, down = lab.tmp / "vip-up.sh", lab.tmp / "vip-down.sh"
        up.write_text(f'#!/bin/sh\nip addr add {VIP}/24 dev "$1"\n')
        down.write_text(f'#!/bin/sh\nip addr del {VIP}/24 dev "$1" 2>/dev/null\nexit 0\n')
        for p in (up, down):
            p.chmod(0o755)
        return up, down

    def mark(self) -> int:
        return self.log.mark()

    def signal(self, sig: int) -> None:
        self.lab.kill(self.proc, sig)

    def wait_exit(self, timeout: float = 10.0) -> None:
        self.proc.wait(timeout)

    def masters(self, start: int = 0) -> int:
        return sum("Switching to state: MASTER" in line for line in self.log.lines[start:])

    def wait_state(self, state: str, start: int = 0, timeout: float = 10.0) -> Stamp:
        _, line = self.log.wait_for(rf"Switching to state: {state}\b", timeout, start)
        read = time.time()
        return Stamp(ucarp_stamp(line), read)


def make_pair(lab: Lab, kind: str, shutdown: bool) -> tuple[Member, Member]:
    h1, h2 = lab.add_host("node1", NODE1), lab.add_host("node2", NODE2)
    if kind == "carpd":
        return Carpd(lab, h1, MASTER_SKEW), Carpd(lab, h2, BACKUP_SKEW)
    return Ucarp(lab, h1, MASTER_SKEW, shutdown), Ucarp(lab, h2, BACKUP_SKEW, shutdown)


# -- scenarios ------------------------------------------------------------------------


def failover(kind: str, crash: bool, phases: Phases | None = None) -> dict[str, Any]:
    """node1 MASTER, a client pinging the VIP; then node1 crashes or gets SIGTERM, at
    ``phases``' next moment after its advert for ``kind`` (else a random one).

    The new MASTER is timed on the wire, the same way for every daemon: the client's
    kernel stamps (a third host's sniffer) of the old master's last advert and of the new
    master's first one; and, beside it, the daemon's own log stamp of its MASTER line."""
    with Lab(f"b{kind[0]}{'c' if crash else 's'}") as lab:
        with setting_up(f"{kind} pair"):
            master, backup = make_pair(lab, kind, shutdown=not crash)
            ping = settle(lab, kind, master, backup)
            watch = sniff(lab.hosts["client"], "--times")
            advert = rf"^\S+ carp {NODE1.split('/')[0]} "
            watch.wait_for(advert, 2 * ADVBASE + 1)
        with crash_phase(phases, kind) as phase, lab.cables(master.host) as pull:
            sleep_to_phase(watch, advert, ADVBASE, phase)
            mark, ping_mark, wire_mark = backup.mark(), ping.mark(), watch.mark()
            t0 = time.time()
            if crash:  # a power failure: the host's cables and the process at once
                pull()
                master.signal(signal.SIGKILL)
            else:
                master.signal(signal.SIGTERM)
            t1 = time.time()
        stamp = backup.wait_state("MASTER", start=mark)
        new, old = NODE2.split("/")[0], NODE1.split("/")[0]
        wait_new_master_advert(watch, new, wire_mark)
        last, first = takeover_on_the_wire(watch.lines, old, new, t0)
        backup.host.wait_address(VIP)
        if not crash:
            master.wait_exit()
        time.sleep(0.5)
        check_pinger(ping, ping_mark)
        outage = ping.stop()
        return {
            "outage_ms": outage.longest_gap_ms,
            "master_ms": 1000 * (first - t0),  # the new master's first advert, on the wire
            "after_last_advert_ms": 1000 * (first - last),
            "master_down_ms": 1000 * master_down_interval(ADVBASE, BACKUP_SKEW),
            "master_log_ms": 1000 * (stamp.logged - t0),
            "master_read_ms": 1000 * (stamp.read - t0),
            "signal_ms": 1000 * (t1 - t0),  # kill (+ link down) took this long
            "phase": phase,  # the one asked for (Phases), which pairs the daemons' runs
            "phase_s": round(t0 - last, 3),  # the crash, after the old master's last advert
            "replies": outage.replies,
            "sent": outage.sent,
            "setting": f"CARP advbase {ADVBASE}, advskew {MASTER_SKEW}/{BACKUP_SKEW}",
        }


def settle(lab: Lab, kind: str, master: Member, backup: Member) -> Pinger:
    """Wait for node1 MASTER and node2 BACKUP, and the client hearing the VIP."""
    client = lab.add_host("client", CLIENT)
    master.wait_state("MASTER", timeout=15)
    backup.wait_state("BACKUP")
    master.host.wait_address(VIP)
    ping = Pinger(client, VIP)
    ping.wait_reply()
    time.sleep(0.5)
    if backup.masters():
        raise RuntimeError(f"{kind}: node2 was MASTER before the failover")
    return ping


def check_pinger(ping: Pinger, since: int) -> None:
    """The client must still be pinging, and hearing the new master."""
    if ping.proc.poll() is not None:
        raise RuntimeError("the client's ping died during the failover")
    if not any("bytes from" in line for line in ping.log.lines[since:][-10:]):
        raise RuntimeError("the client hears nobody after the failover")


def startup() -> dict[str, Any]:
    """A lone carpd (advbase 1, advskew 0), timed from its spawn: its 'INIT -> BACKUP' and
    'started' lines (carpd's own stamps) and its first advert, stamped by a third host as
    it arrives (a lone node sends it on becoming MASTER, a master-down interval after
    BACKUP); then the wall time of ``carpd --version``."""
    cache_bytecode()
    with Lab("bst") as lab:
        spec = VhidSpec(VHID, (f"{VIP}/24",), advskew=0, advbase=ADVBASE)
        node = Node(lab, lab.add_host("node1", NODE1), [spec])
        watch = sniff(lab.add_host("watch", CLIENT), "--times")
        t0 = time.time()
        node.start()
        _, backup = node.wait_log(r"state transition: INIT -> BACKUP", timeout=30)
        _, started = node.wait_log(r"carpd \S+ started", timeout=30)
        _, advert = watch.wait_for(rf" carp {NODE1.split('/')[0]} vhid={VHID} ", timeout=30)
        node.stop()
    advert_ms = 1000 * (float(advert.split()[0]) - t0)
    return {
        "backup_ms": 1000 * (line_time(backup) - t0),
        "started_ms": 1000 * (line_time(started) - t0),
        "advert_ms": advert_ms,
        "advert_own_ms": advert_ms - 1000 * master_down_interval(ADVBASE, 0),
        "version_ms": statistics.median(version_wall_ms() for _ in range(VERSION_SPAWNS)),
        **own_import_cost(),
    }


def own_import_cost() -> dict[str, float]:
    """bench/import_cost.py's split of carpd's own imports (median of 5 processes)."""
    script = Path(__file__).with_name("import_cost.py")
    argv = [sys.executable, str(script)]
    runs = [
        json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
        for _ in range(VERSION_SPAWNS)
    ]
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def cache_bytecode() -> None:
    """Compile carpd's modules as installing it does, so every run starts with cached
    bytecode (a checkout under PYTHONDONTWRITEBYTECODE would compile them at each start)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "carpd")], check=True)


def version_wall_ms() -> float:
    """Spawn to exit of ``carpd --version`` (the venv's script, else python -m carpd)."""
    script = Path(sys.executable).with_name("carpd")
    argv = [str(script), "--version"] if script.exists() else carpd_argv("--version")
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return 1000 * (time.perf_counter() - t0)


def carpctl_status_ms(node: Node) -> float:
    """Command to printed answer of ``carpctl status``, as an operator runs it (the venv's
    script, else python -m carpd.ctl.main): a new interpreter every time."""
    script = Path(sys.executable).with_name("carpctl")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "carpd.ctl.main"]
    t0 = time.perf_counter()
    subprocess.run([*cmd, "--socket", str(node.socket), "status"], check=True, capture_output=True)
    return 1000 * (time.perf_counter() - t0)


def interpreter_floor() -> dict[str, float]:
    """What Python alone costs here, the floor under carpd's RSS and start-up, as RSS and
    the time from the spawn to the end of the work (the process stamps it, as carpd
    stamps its BACKUP line: the interpreter's exit is not part of it): ``python -c
    pass``; once asyncio, hmac, pydantic and pyroute2's rtnetlink (what carpd imports
    before its first line) are loaded, pyroute2 as carpd loads it (through
    carpd.linux.rtnl, without the package's ``__init__``); and once one pydantic model
    is built and validated too (pydantic loads its schema machinery at a program's first
    model, so every carpd start pays it)."""
    # VmRSS of the process itself (ru_maxrss would carry the forking parent's over exec).
    stamp = (
        "\nimport time; print(time.time(), "
        "open('/proc/self/status').read().split('VmRSS:')[1].split()[0])"
    )
    out: dict[str, float] = {}
    for key, code in FLOORS.items():
        runs = []
        for _ in range(VERSION_SPAWNS):
            t0 = time.time()  # the clock of the stamp, as startup() times carpd's lines
            done = subprocess.run([sys.executable, "-c", code + stamp], check=True,
                                  capture_output=True, text=True)  # fmt: skip
            at, rss = done.stdout.split()
            runs.append((1000 * (float(at) - t0), int(rss) / 1024))
        out[f"{key}_ms"] = statistics.median(r[0] for r in runs)
        out[f"{key}_rss_mib"] = statistics.median(r[1] for r in runs)
    return out


def vips(count: int, exclude: set[str]) -> list[str]:
    """``count`` distinct documentation addresses (/24), none of ``exclude``."""
    found: list[str] = []
    for net in ("198.51.100", "203.0.113", "192.0.2"):
        for i in range(1, 255):
            addr = f"{net}.{i}"
            if addr not in exclude:
                found.append(f"{addr}/24")
    if len(found) < count:
        raise ValueError(f"only {len(found)} documentation addresses, {count} wanted")
    return found[:count]


@dataclass(frozen=True)
class CpuSample:
    at: float  # time.monotonic()
    ticks: int  # utime + stime from /proc/<pid>/stat, all threads, in clock ticks
    ns: int  # time on a CPU from /proc/<pid>/task/*/schedstat, in nanoseconds


def sample_cpu(pid: int) -> CpuSample:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)
    tasks = Path(f"/proc/{pid}/task").glob("*/schedstat")
    ns = sum(int(t.read_text().split()[0]) for t in tasks)
    return CpuSample(time.monotonic(), ticks, ns)


def cpu_percent(a: CpuSample, b: CpuSample) -> tuple[float, float]:
    """CPU use between two samples: (from utime + stime, from schedstat)."""
    wall = b.at - a.at
    ticks = (b.ticks - a.ticks) / os.sysconf("SC_CLK_TCK")
    return 100 * ticks / wall, 100 * (b.ns - a.ns) / 1e9 / wall


def read_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def check_pid(node: Node) -> int:
    """ip netns exec execs: the pid we spawned is the carpd python process itself."""
    assert node.proc is not None
    pid = node.proc.pid
    reported = int(node.status()["pid"])
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    if reported != pid or b"carpd" not in cmdline:
        raise RuntimeError(f"spawned pid {pid}, carpd reports {reported}, cmdline {cmdline}")
    return pid


def footprint(count: int) -> dict[str, Any]:
    """A lone carpd with ``count`` vhids: RSS and CPU over FOOTPRINT_SECONDS once every
    vhid is MASTER and its announcements are done (steady state, as ucarp's is measured),
    and the CPU-seconds it took to get there (Python's start-up and the takeovers)."""
    with Lab(f"bfp{count}") as lab:
        # Set-up: everything before the window, the first MASTER of every vhid included.
        with setting_up(f"a lone carpd MASTER of {count} vhids"):
            host = lab.add_host("node1", NODE1)
            own = {NODE1.split("/")[0]}
            specs = [VhidSpec(i + 1, (a,)) for i, a in enumerate(vips(count, own))]
            node = Node(lab, host, specs)
            t0 = time.time()
            node.start()
            _, started = node.wait_log(r"carpd \S+ started", timeout=60)
            pid = check_pid(node)
            deadline = time.monotonic() + 60
            while sum(v == "MASTER" for v in node.states().values()) < count:  # (status: CPU)
                if time.monotonic() > deadline:
                    raise RuntimeError(f"not every one of {count} vhids MASTER within 60 s")
                time.sleep(0.5)
            time.sleep(ANNOUNCED)
        before = sample_cpu(pid)
        time.sleep(FOOTPRINT_SECONDS)
        after = sample_cpu(pid)
        rss = read_rss_kib(pid)
        status_ms = statistics.median(carpctl_status_ms(node) for _ in range(VERSION_SPAWNS))
        masters = sum(state == "MASTER" for state in node.states().values())
        if masters != count:
            raise RuntimeError(f"{masters} of {count} vhids MASTER after {FOOTPRINT_SECONDS} s")
        node.stop(timeout=60)
        cpu, cpu_sched = cpu_percent(before, after)
        return {
            "rss_mib": rss / 1024,
            "cpu_pct": cpu,
            "cpu_schedstat_pct": cpu_sched,
            "takeover_cpu_s": before.ns / 1e9,
            "started_ms": 1000 * (line_time(started) - t0),
            "carpctl_status_ms": status_ms,
            "pid": pid,
            "masters": masters,
        }


# -- runs, summary, output ------------------------------------------------------------


@dataclass
class Step:
    name: str
    run: Callable[[], dict[str, Any]]
    metrics: dict[str, str]  # metric key -> field of the result
    show: Callable[[dict[str, Any]], str]


def _show_failover(r: dict[str, Any]) -> str:
    return f"client outage {r['outage_ms']:.0f} ms, backup MASTER after {r['master_ms']:.0f} ms"


def _show_startup(r: dict[str, Any]) -> str:
    return (
        f"BACKUP after {r['backup_ms']:.0f} ms, started after {r['started_ms']:.0f} ms, "
        f"first advert after {r['advert_ms']:.0f} ms (3 s + {r['advert_own_ms']:.0f}), "
        f"--version {r['version_ms']:.0f} ms"
    )


def _show_footprint(r: dict[str, Any]) -> str:
    return f"RSS {r['rss_mib']:.1f} MiB, CPU {r['cpu_pct']:.2f} % ({r['cpu_schedstat_pct']:.2f} %)"


def steps(phases: Phases) -> Iterator[Step]:
    """One run of each scenario; the crashes at ``phases``' moments (paired by run)."""
    for crash in (True, False):
        what = "crash" if crash else "stop"
        for kind in ("carpd", "ucarp"):
            yield Step(
                f"{'crash failover' if crash else 'graceful stop'}, {kind}",
                partial(failover, kind, crash, phases if crash else None),
                {
                    f"{what}_outage_{kind}": "outage_ms",
                    f"{what}_master_{kind}": "master_ms",
                    **({f"crash_last_{kind}": "after_last_advert_ms"} if crash else {}),
                },
                _show_failover,
            )
    yield Step(
        "start-up, carpd",
        startup,
        {
            "startup_backup": "backup_ms",
            "startup_started": "started_ms",
            "startup_advert": "advert_ms",
            "startup_advert_own": "advert_own_ms",
            "startup_version": "version_ms",
        },
        _show_startup,
    )
    for count in (1, 255):
        yield Step(
            f"footprint, carpd, {count} vhid(s), {FOOTPRINT_SECONDS:.0f} s",
            partial(footprint, count),
            {
                f"rss_{count}": "rss_mib",
                f"cpu_{count}": "cpu_pct",
                f"cpu_sched_{count}": "cpu_schedstat_pct",
            },
            _show_footprint,
        )


def run_all(runs: int) -> tuple[dict[str, list[float]], list[dict[str, Any]]]:
    samples: dict[str, list[float]] = {key: [] for key in METRICS}
    details: list[dict[str, Any]] = []
    phases = Phases(runs)
    for i in range(1, runs + 1):
        for step in steps(phases):
            progress(f"[run {i}/{runs}] {step.name} ...")
            result = step.run()
            progress(f"[run {i}/{runs}] {step.name}: {step.show(result)}")
            details.append({"run": i, "scenario": step.name, **result})
            for key, fieldname in step.metrics.items():
                samples[key].append(float(result[fieldname]))
    return samples, details


def summarize(samples: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    return {
        key: {
            "label": label,
            "unit": unit,
            "runs": len(samples[key]),
            "median": statistics.median(samples[key]),
            "max": max(samples[key]),
            "samples": samples[key],
        }
        for key, (label, unit) in METRICS.items()
        if samples[key]
    }


def _fmt(value: float, unit: str) -> str:
    return {"ms": f"{value:.0f}", "%": f"{value:.2f}"}.get(unit, f"{value:.1f}")


def table(summary: dict[str, dict[str, Any]]) -> str:
    lines = ["| measurement | unit | runs | median | max |", "|---|---|---:|---:|---:|"]
    for s in summary.values():
        median, top = _fmt(s["median"], s["unit"]), _fmt(s["max"], s["unit"])
        lines.append(f"| {s['label']} | {s['unit']} | {s['runs']} | {median} | {top} |")
    return "\n".join(lines)


def environment() -> dict[str, str]:
    ucarp = subprocess.run([UCARP, "--help"], capture_output=True, text=True)
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ucarp": (ucarp.stdout or ucarp.stderr).strip().splitlines()[0],
        "cpus": str(os.cpu_count()),
    }


NOTES = """\
advbase 1; node1 advskew 0 (master), node2 advskew 100: node2's master-down interval is
3 x 1 + 100/256 = 3.391 s, counted from the last advert it heard, which came up to one
advbase before the failure (the n-th runs crash at one phase of the interval each): kill
-> MASTER of carpd lies in 2.39..3.39 s, so the bound is checked from the last advert
instead. Outage = longest gap between replies to a client pinging the VIP every 10 ms
(ping manages about one per 16 ms here, so no outage reads as 16-20 ms). MASTER times:
the new master's first advert as the client's kernel stamps it (a third host, the same
for both daemons), from time.time() at the signal and from the old master's last advert;
each daemon's own log stamp is kept in the JSON (master_log_ms). RSS/CPU: a lone node,
10 s from its 'started' line (3 s BACKUP, then MASTER of every vhid); VmRSS from
/proc/<pid>/status, CPU from utime+stime of /proc/<pid>/stat (10 ms ticks: 0.1 %
resolution) and from the nanosecond run times in /proc/<pid>/task/*/schedstat. Start-up:
a lone node (advskew 0) from just before its spawn (through `ip netns exec`, a few ms),
carpd's bytecode cached as an install leaves it; the first advert is stamped by a third
host's sniffer, and less the master-down interval (3 s after BACKUP) it is the
start-up's own part; `carpd --version` is the median of 5 spawns."""


def write_results(summary: dict[str, Any], details: list[Any], env: dict[str, str]) -> str:
    md = table(summary)
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {"environment": env, "summary": summary, "details": details}
    (RESULTS / "core.json").write_text(json.dumps(doc, indent=2) + "\n")
    header = ", ".join(f"{k} {v}" for k, v in env.items())
    (RESULTS / "core.md").write_text(f"# carpd core benchmark\n\n{header}\n\n{md}\n\n{NOTES}\n")
    return md


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each scenario (5)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the benchmark builds network namespaces: run it as root", file=sys.stderr)
        return 1
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    restore = interrupt_on_signals()
    try:
        env = environment()
        samples, details = run_all(args.runs)
    except KeyboardInterrupt:
        print("\ninterrupted: labs removed, no results written", file=sys.stderr)
        return 130
    finally:
        restore()
    md = write_results(summarize(samples), details, env)
    print(f"\n{md}\n\n{NOTES}\n\nwritten: {RESULTS / 'core.json'}, {RESULTS / 'core.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
