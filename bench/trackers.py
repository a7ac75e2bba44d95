"""100 [[track]] trackers must not move a MASTER's advert jitter (issue 30).

One carpd on ``node1``, MASTER of a CARP vhid (advbase 1) and of a VRRPv3 VRID (0.1 s
adverts), measured twice in the same lab, each time from a fresh start: without
trackers, then with ``sum(MIX)`` trackers probing every second real targets inside the
lab: ping, tcp (a listening socket) and http (python's http.server) against a second
host, and this node's interfaces, files holding 0 and processes (by pid file and by
name). No script tracker: each of its probes is a process start, which is not what
"cheap" asks about.

Each window: the MASTER's adverts as a third host's kernel stamps them (the jitter
scenario's sniffer, ``carpd_lab.sniff --times``), p99 of |gap - advert interval| and the
longest gap; carpd's CPU % of one core over the window (schedstat: every thread's time
on a CPU, in ns) and its RSS at the window's end.

Honest: every tracker has rise 1 and fall 1, so a single failed probe takes its tracker
down at once and carpd logs it; the down verdicts in the window are counted and reported
(``probe_failures``), as are the trackers not up at its end and any state transition;
nothing is retried. The window is the caller's (run.py passes its jitter window, 60 s:
about 60 CARP and 600 VRRPv3 gaps).
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import check_pid, cpu_percent, read_rss_kib, sample_cpu, setting_up  # noqa: E402

from carpd_lab import bounds  # noqa: E402
from carpd_lab.cluster import Node, VhidSpec  # noqa: E402
from carpd_lab.netlab import Host, Lab, LogWatch  # noqa: E402
from carpd_lab.probe import sniff  # noqa: E402

SECONDS = 60.0  # a window: 60 CARP adverts (and 600 VRRPv3 ones)
NODE, SERVICE, WATCH = "192.0.2.1/24", "192.0.2.80/24", "192.0.2.9/24"
CARP_VHID, VRRP_VRID, VRRP_INTERVAL = 7, 9, 0.1
HTTP_PORT, TCP_PORT = 8080, 9000
INTERVAL = 1.0  # every tracker's probe interval (and timeout)
MIX = {"ping": 25, "tcp": 25, "http": 20, "interface": 10, "file": 10, "process": 10}
# "Must not move advert jitter": p99 with trackers within this of without, a fifth of
# run.py's advert jitter target (p99 under 5 ms).
MARGIN_MS = 1.0
SETTLED = 1.0  # after MASTER (and every tracker's first verdict): announcements done
# A down verdict as carpd logs it: "demoted by 1 to 1 (track tcp3: down (...))".
_DOWN = re.compile(r"\(track \S+: down\b")
ADDR = SERVICE.split("/")[0]
# The targets' listen backlog: every tracker probes at the same moment of each second
# (they start together, each on its own fixed beat), so 25 connections arrive at once;
# http.server's default backlog of 5 drops SYNs and a probe waits out its timeout.
BACKLOG = 256
# The TCP target: accepts and closes, for ever.
_LISTENER = f"""\
import socket
s = socket.create_server(({ADDR!r}, {TCP_PORT}), backlog={BACKLOG})
print("listening", flush=True)
while True:
    s.accept()[0].close()
"""
# The HTTP target: python's http.server (threads, a file to GET), quiet, that backlog.
_HTTP = f"""\
import functools, http.server, sys
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = {BACKLOG}
server = Server(({ADDR!r}, {HTTP_PORT}), functools.partial(Quiet, directory=sys.argv[1]))
print("serving", flush=True)
server.serve_forever()
"""


def specs() -> list[VhidSpec]:
    vrrp = {"protocol": "vrrp3", "priority": 200, "advbase": VRRP_INTERVAL, "accept": True}
    return [
        VhidSpec(CARP_VHID, ("192.0.2.100/24",), advskew=0, advbase=1, password="secret"),
        VhidSpec(VRRP_VRID, ("192.0.2.200/24",), password="", extra=vrrp),
    ]


def _wait_line(host: Host, argv: list[str], pattern: str) -> None:
    proc = host.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    LogWatch(proc.stdout).wait_for(pattern, bounds.START_UP)


def targets(lab: Lab, service: Host) -> list[dict[str, Any]]:
    """Start the targets (the lab stops them) and return the ``[[track]]`` tables."""
    www = lab.tmp / "www"
    www.mkdir()
    (www / "health").write_text("ok\n")
    addr = ADDR
    _wait_line(service, [sys.executable, "-u", "-c", _HTTP, str(www)], "serving")
    _wait_line(service, [sys.executable, "-u", "-c", _LISTENER], "listening")
    worker = service.spawn(["sleep", "86400"])
    pidfile = lab.tmp / "worker.pid"
    pidfile.write_text(f"{worker.pid}\n")
    files = [lab.tmp / f"level{i}" for i in range(MIX["file"])]
    for f in files:
        f.write_text("0\n")

    def target(kind: str, i: int) -> str:
        if kind == "interface":
            return ("eth0", "lo")[i % 2]  # operstate up; lo: unknown, and a carrier
        if kind == "file":
            return str(files[i])
        if kind == "process":
            return (str(pidfile), "sleep")[i % 2]  # a pid file; a scan of /proc
        return {"ping": addr, "tcp": f"{addr}:{TCP_PORT}",
                "http": f"http://{addr}:{HTTP_PORT}/health"}[kind]  # fmt: skip

    common = {"interval": INTERVAL, "timeout": INTERVAL, "rise": 1, "fall": 1, "weight": 1}
    return [
        {"name": f"{kind}{i}", "kind": kind, "targets": target(kind, i), **common}
        for kind, count in MIX.items()
        for i in range(count)
    ]


def _trackers_up(node: Node) -> tuple[int, int]:
    """(trackers up, trackers) as carpd's status says."""
    found = (node.status().get("trackers") or {}).get("trackers", [])
    return sum(t["up"] is True for t in found), len(found)


def _gaps(lines: list[str], pattern: str, interval: float) -> dict[str, float]:
    """p99 of |gap - interval| and the longest gap, ms, as run.py's jitter() computes them."""
    stamps = [float(x.split()[0]) for x in lines if pattern in x]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    dev = sorted(abs(g - interval) * 1000 for g in gaps)
    p99 = dev[min(len(dev) - 1, int(0.99 * len(dev)))] if dev else float("nan")
    return {"adverts": len(stamps), "p99_ms": p99,
            "max_gap_ms": max(gaps) * 1000 if gaps else float("nan")}  # fmt: skip


def window(
    lab: Lab, host: Host, watch: LogWatch, tracks: list[dict[str, Any]], seconds: float
) -> dict[str, float]:
    """A fresh carpd with ``tracks``, MASTER of both, measured for ``seconds``; stopped."""
    node = Node(lab, host, specs())
    if tracks:
        node.arrays["track"] = tracks
    with setting_up(f"carpd with {len(tracks)} trackers"):
        node.start()
        node.wait_ready()
        master_down = max(s.master_down for s in node.vhids)
        node.wait_states({s.ifname: "MASTER" for s in node.vhids},
                         bounds.first_master(master_down))  # fmt: skip
        # rise 1: each tracker's first probe is its verdict, within one timeout of its start.
        deadline = time.monotonic() + INTERVAL + bounds.START_UP
        while (ready := _trackers_up(node)[0]) < len(tracks):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ready} of {len(tracks)} trackers up before the window")
            time.sleep(0.1)
    time.sleep(SETTLED)
    pid = check_pid(node)
    mark, log_mark = watch.mark(), node.mark()
    before = sample_cpu(pid)
    time.sleep(seconds)
    after = sample_cpu(pid)
    end = watch.mark()
    rss = read_rss_kib(pid) / 1024
    assert node.log is not None
    logged = node.log.lines[log_mark:]
    up, total = _trackers_up(node)
    states = node.states()
    node.stop(timeout=bounds.START_UP + 10)
    lines = watch.lines[mark:end]
    src = NODE.split("/")[0]
    carp = _gaps(lines, f" carp {src} vhid={CARP_VHID} ", 1.0)
    vrrp = _gaps(lines, f" vrrp {src} vrid={VRRP_VRID} ", VRRP_INTERVAL)
    return {
        "carp_adverts": carp["adverts"],
        "carp_p99_ms": carp["p99_ms"],
        "carp_max_gap_ms": carp["max_gap_ms"],
        "vrrp_adverts": vrrp["adverts"],
        "vrrp_p99_ms": vrrp["p99_ms"],
        "vrrp_max_gap_ms": vrrp["max_gap_ms"],
        "cpu_pct": cpu_percent(before, after)[1],
        "rss_mib": rss,
        "probe_failures": sum(bool(_DOWN.search(x)) for x in logged),
        "trackers_not_up": total - up,
        "transitions": sum("state transition" in x for x in logged)
        + sum(v != "MASTER" for v in states.values()),
    }


def one(seconds: float = SECONDS) -> dict[str, Any]:
    """Both windows in one lab: without trackers, then with ``sum(MIX)``; each figure of
    both, and the difference (with - without)."""
    with Lab("btk") as lab:
        with setting_up("the lab and the targets"):
            host = lab.add_host("node1", NODE)
            service = lab.add_host("svc", SERVICE)
            watch = sniff(lab.add_host("watch", WATCH), "--times")
            tracks = targets(lab, service)
        without = window(lab, host, watch, [], seconds)
        with_ = window(lab, host, watch, tracks, seconds)
    out: dict[str, Any] = {"seconds": seconds, "trackers": len(tracks)}
    for key in ("carp_p99_ms", "cpu_pct", "carp_max_gap_ms", "vrrp_p99_ms", "vrrp_max_gap_ms",
                "rss_mib", "carp_adverts", "vrrp_adverts"):  # fmt: skip
        out[f"{key}_without"], out[f"{key}_with"] = without[key], with_[key]
        out[f"{key}_diff"] = with_[key] - without[key]
    out["probe_failures"] = with_["probe_failures"]
    out["trackers_not_up"] = with_["trackers_not_up"]
    out["transitions"] = without["transitions"] + with_["transitions"]
    return out
