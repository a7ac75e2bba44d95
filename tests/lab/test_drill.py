"""`carpctl drill` with two real nodes: a rehearsed failover that passes and records
itself everywhere, and one whose --check fails and rolls back at once."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest

from carpd.daemon.effects.conntrack import STATS_INTERVAL
from carpd_lab import bounds
from carpd_lab.cluster import Node, VhidSpec, start_master_first
from carpd_lab.firewall import BULK_TIMEOUT, SERVER, FirewallPair
from carpd_lab.netlab import Lab
from carpd_lab.pairview import PORT, join

LAN = "192.0.2.100/24"


def pair(lab: Lab, preempt: bool = False) -> tuple[Node, Node]:
    nodes = {}
    for i, skew in ((1, 0), (2, 100)):
        host = lab.add_host(f"n{i}", f"192.0.2.{i}/24")
        spec = VhidSpec(1, (LAN,), advskew=skew, name="lan", extra={"preempt": preempt})
        nodes[f"192.0.2.{i}"] = Node(lab, host, [spec])
    join(lab, nodes)
    n1, n2 = nodes.values()
    start_master_first(n1, n2)
    n2.wait_ready()
    return n1, n2


def drill(node: Node, *args: str) -> tuple[int, str, str]:
    """carpctl drill on the node, as an operator there runs it (it reaches the peer)."""
    r = node.host.run(
        [sys.executable, "-m", "carpd.ctl", "--socket", str(node.socket), "drill",
         "--config", str(node.config), *args],
        timeout=120,
    )  # fmt: skip
    return r.returncode, r.stdout, r.stderr


def test_a_drill_hands_over_and_back_and_says_so(lab: Lab) -> None:
    n1, n2 = pair(lab)
    rc, out, _ = drill(n1, "--hold", "1", "--json", "-m", "monthly drill")
    report = json.loads(out)
    assert rc == 0, "\n".join(f"{s['step']}: {s['ok']}: {s['detail']}" for s in report["steps"])
    assert report["result"] == "passed", report
    steps = [s["step"] for s in report["steps"]]
    assert steps == [
        "checks before the drill",
        "hand over",
        "the peer took over",
        "hold 1 s",
        "hand back",
        "this node took back",
    ], steps
    assert all(s["ok"] for s in report["steps"]), report
    assert n1.states() == {"lan": "MASTER"} and n2.states() == {"lan": "BACKUP"}
    assert not n1.status()["maintenance"] and not n2.status()["maintenance"]
    rc, text, _ = n1.ctl("drill", "--config", str(n1.config), "--last")
    assert rc == 0 and "drill passed" in text, text


def test_a_failed_check_rolls_back_at_once(lab: Lab) -> None:
    n1, _ = pair(lab)
    rc, out, _ = drill(n1, "--hold", "30", "--json", "--check", "echo no such service; false")
    report = json.loads(out)
    assert rc == 1 and report["result"] == "failed", report
    failed = [s for s in report["steps"] if not s["ok"]]
    assert [s["step"] for s in failed] == ["check here: echo no such service; false"]
    assert failed[0]["detail"] == "exit 1: no such service"
    assert report["steps"][-1]["step"] == "roll back" and report["steps"][-1]["ok"]
    # At once: no hold of 30 s, and this node is out of maintenance mode again.
    assert report["finished"] - report["started"] < 30
    assert not n1.status()["maintenance"]
    # The daemon shows it, in status and in /metrics.
    assert n1.status()["drill"]["result"] == "failed"
    metrics = n1.host.check("curl", "-sk", f"https://127.0.0.1:{PORT}/metrics")
    assert "carpd_drill_last_result 0.0" in metrics, metrics
    rc, text, _ = n1.ctl("drill", "--config", str(n1.config), "--last")
    assert rc == 1 and "check here: echo no such service; false: FAILED" in text, text


def firewall_pair(lab: Lab) -> FirewallPair:
    """The firewall pair, each firewall's page on the sync link for the other (and its
    own input policy told to let the peer's reads in, as an operator would)."""
    fw = FirewallPair(lab)
    for node in fw.fw:
        node.host.check(
            "nft", "add rule inet carpd_lab_fw input iifname sync0 tcp dport 8473 accept"
        )
    join(lab, {f"203.0.113.{n}": node for n, node in enumerate(fw.fw, start=1)})
    fw.start()
    return fw


@pytest.mark.solo
def test_a_drill_through_the_firewall_pair_keeps_every_connection(lab: Lab) -> None:
    fw = firewall_pair(lab)
    fw1, fw2 = fw.fw
    flows = fw.flows(tcp=20, active=20)
    fw.wait_synced(20, bounds.COMMAND * 2)
    # Refused while the peer's conntrackd is dead: nothing changes.
    start = fw2.mark()
    os.kill(fw.conntrackd_pid(fw2), signal.SIGKILL)
    fw2.wait_log(r"\(state sync conntrackd down\)", STATS_INTERVAL + bounds.COMMAND, start)
    rc, out, _ = drill(fw1, "--json")
    report = json.loads(out)
    assert rc == 4 and report["result"] == "refused", report
    # Demoted for it: conntrackd down, or (carpd started it again) its bulk resync.
    assert "fw2 is demoted by 240 (state sync 240)" in report["why"], report["why"]
    assert [s["step"] for s in report["steps"]] == ["checks before the drill"]
    assert fw1.states() == {"lan": "MASTER", "wan": "MASTER"}
    print(fw1.ctl("drill", "--config", str(fw1.config), "--last")[1])  # the docs' report
    # fw2 starts it again and resyncs; then the drill runs, a client probing throughout.
    fw2.wait_log(r"\(state sync bulk done\)", BULK_TIMEOUT + STATS_INTERVAL * 2, start)
    try:
        fw.wait_synced(20, bounds.COMMAND * 2)
    except TimeoutError:
        print("\n".join(fw2.log.lines[start:]))
        raise
    probe = f"ip netns exec {fw.client.ns} ping -c 1 -W 1 {SERVER}"
    since = flows.mark(time.monotonic())
    rc, out, _ = drill(fw1, "--json", "--hold", "2", "--probe", probe)
    report = json.loads(out)
    assert rc == 0, "\n".join(f"{s['step']}: {s['ok']}: {s['detail']}" for s in report["steps"])
    took_over = next(s for s in report["steps"] if s["step"] == "the peer took over")
    assert "fw2 committed the connections (conntrackd)" in took_over["detail"]
    # Every connection carried data again, none reset or reconnected.
    flows.wait_resumed(bounds.COMMAND * 2, since)
    flows_report = flows.report(bounds.COMMAND)
    assert flows_report["errors"] == {} and flows_report["sending_working"] == 20
    assert flows.server_events("closed") == []
    assert len(flows.server_events("accept")) == 20
    outage = report["probe"]
    assert outage["recovered"] and outage["probes"] > 10, outage
    print(f"drill: probe outage {outage['outage']} s; {outage['failed']} of {outage['probes']}")
    assert fw1.states() == {"lan": "MASTER", "wan": "MASTER"}
    print(fw1.ctl("drill", "--config", str(fw1.config), "--last")[1])  # the docs' report
