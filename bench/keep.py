"""A MASTER keeps what it owns: how long a client is without the address after another
program removed it from the MASTER, and how long a client with a stale neighbour entry
waits after the MASTER's resume.

Two carpd nodes (node1 MASTER, node2 BACKUP) and a client on one bridge.

- ``deleted``: the client pings the VIP every 10 ms; ``ip addr del`` of the VIP on the
  MASTER, ``DELETES`` times a run: from the kernel's deletion to its re-addition, as
  ``ip -ts monitor address`` on the MASTER stamps them (``restore_ms``), and the client's
  longest gap between two replies (``outage_ms``; the probe's resolution is its 10 ms
  interval);
- ``resume``: node1's carpd paused for 2.5 s (longer than a resume's 2 s threshold,
  shorter than node2's master-down interval, so no role moves) while the client's entry
  for the VIP is made to point at node2: from the resume until the entry points at node1
  again (``back_ms``; the design says one advert interval, 1 s).
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import time
from datetime import datetime
from typing import Any

from core import setting_up

from carpd_lab.cluster import Node, VhidSpec, start_master_first
from carpd_lab.netlab import Host, Lab, LogWatch
from carpd_lab.probe import Pinger

VIP = "192.0.2.100"
DELETES = 5
PAUSE = 2.5  # see tests/lab/test_reassert.py


def _pair(lab: Lab) -> tuple[Node, Node, Host]:
    h1 = lab.add_host("n1", "192.0.2.1/24")
    h2 = lab.add_host("n2", "192.0.2.2/24")
    client = lab.add_host("cl", "192.0.2.9/24")
    n1 = Node(lab, h1, [VhidSpec(1, (f"{VIP}/24",), advskew=0)])
    n2 = Node(lab, h2, [VhidSpec(1, (f"{VIP}/24",), advskew=100)])
    start_master_first(n1, n2)
    h1.wait_address(VIP)
    return n1, n2, client


def _mac(host: Host) -> str:
    return str(json.loads(host.check("ip", "-j", "link", "show", "eth0"))[0]["address"])


def _neighbour(client: Host) -> str | None:
    found = json.loads(client.check("ip", "-j", "neigh", "show", VIP, "dev", "eth0") or "[]")
    return found[0].get("lladdr") if found else None


def _stamp(line: str) -> float:
    """``[2026-12-06T11:15:26.216684] ...`` (ip -ts): seconds since the epoch."""
    return datetime.fromisoformat(line[1 : line.index("]")]).timestamp()


def deleted() -> list[dict[str, Any]]:
    """``DELETES`` samples: restore_ms and outage_ms of each ``ip addr del``."""
    out = []
    with Lab("bkd") as lab:
        with setting_up("carpd pair"):
            n1, _, client = _pair(lab)
            argv = ["stdbuf", "-oL", "ip", "-ts", "monitor", "address", "dev", "eth0"]
            monitor = LogWatch(n1.host.spawn(argv, stdout=subprocess.PIPE).stdout)  # type: ignore[arg-type]
        for _ in range(DELETES):
            ping = Pinger(client, VIP)
            ping.wait_reply()
            time.sleep(0.2)  # a steady run of replies before
            mark = monitor.mark()
            n1.host.check("ip", "addr", "del", f"{VIP}/24", "dev", "eth0")
            i, gone = monitor.wait_for(rf"\] Deleted .* inet {VIP}/24 ", 5, mark)
            _, back = monitor.wait_for(rf"\] \d+: eth0 +inet {VIP}/24 ", 5, i + 1)
            ping.log.wait_for(r"bytes from", timeout=5, start=ping.mark())
            time.sleep(0.2)  # and after
            outage = ping.stop()
            restore = (_stamp(back) - _stamp(gone)) * 1000
            out.append({"restore_ms": restore, "outage_ms": outage.longest_gap_ms})
    return out


def deleted_summary() -> dict[str, Any]:
    """One run of ``deleted``: its ``DELETES`` samples' median and max."""
    samples = deleted()
    out: dict[str, Any] = {"deletes": len(samples)}
    for key in ("restore_ms", "outage_ms"):
        values = [s[key] for s in samples]
        out[f"{key[:-3]}_median_ms"] = statistics.median(values)
        out[f"{key[:-3]}_max_ms"] = max(values)
    return out


def resume() -> dict[str, Any]:
    with Lab("bkr") as lab:
        with setting_up("carpd pair"):
            n1, n2, client = _pair(lab)
            right, wrong = _mac(n1.host), _mac(n2.host)
            n2.wait_counter("adverts_received", 1)  # right after an advert: the most slack
        n1.signal(signal.SIGSTOP)
        try:
            client.check("ip", "neigh", "replace", VIP, "lladdr", wrong, "dev", "eth0", "nud",
                         "stale")  # fmt: skip
            time.sleep(PAUSE)
        finally:
            n1.signal(signal.SIGCONT)
        t0 = time.monotonic()
        while _neighbour(client) != right:
            if time.monotonic() - t0 > 10:
                raise RuntimeError("the client's entry never came back to node1")
            time.sleep(0.005)
        back = time.monotonic() - t0
        masters = n1.states(), n2.states()
        if masters != ({"carp1": "MASTER"}, {"carp1": "BACKUP"}):
            raise RuntimeError(f"a role moved during the pause: {masters}")
        return {"back_ms": back * 1000}
