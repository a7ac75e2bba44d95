"""``./scripts/demo --firewall``: a TCP connection through a firewall pair survives a crash.

The lab of carpd_lab.firewall: a LAN client, fw1 and fw2 (carpd with a LAN and a WAN
vhid, nftables with SNAT and a strict stateful policy, conntrackd on a sync link), and a
server on the WAN. One TCP connection sends a record every 20 ms; fw1 crashes; the same
connection carries on through fw2.
"""

from __future__ import annotations

import time
from pathlib import Path

from carpd.ctl.main import format_status
from carpd_lab import bounds
from carpd_lab.cluster import Node
from carpd_lab.firewall import CLIENT, SERVER, WAN_VIP, FirewallPair, failover_limit
from carpd_lab.netlab import Lab


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run(verbose: bool) -> int:
    with Lab("demofw") as lab:
        say(
            f"building the lab: client {CLIENT} -> LAN -> fw1 / fw2 -> WAN -> server "
            f"{SERVER}, and a sync link between the firewalls"
        )
        pair = FirewallPair(lab)
        fw1, fw2 = pair.fw
        print(f"   conntrackd.conf written by `carpd --conntrackd-conf` ({fw1.name}):")
        conf = fw1.tables["conntrackd"]["config"]
        for line in Path(conf).read_text().splitlines()[3:17]:
            print(f"     {line}")
        say("starting fw1, then fw2 (each drives its conntrackd; fw2 waits for fw1's table)")
        pair.start(echo=verbose)
        for node in pair.fw:
            print(f"   carpctl status on {node.name}:")
            for line in _status(node):
                print(f"     {line}")
        say("the client opens one TCP connection to the server and sends every 20 ms")
        flows = pair.flows()
        accepted = flows.server_events("accept")[0]
        print(f"   the server sees it from {accepted[0]} port {accepted[1]} (SNAT by fw1)")
        time.sleep(1.0)  # conntrackd sends it to fw2
        say("crash of fw1: every process stopped, its cables pulled, then killed")
        since = flows.mark(pair.crash(fw1))
        start = fw2.mark()
        fw2.wait_state("MASTER", "lan", bounds.takeover(fw2.master_down), start)
        resumed = flows.wait_resumed(failover_limit(fw2), since)
        report = flows.report(bounds.COMMAND)
        accepts = flows.server_events("accept")
        print(f"   fw2 committed fw1's connections, then took the addresses ({WAN_VIP} too)")
        print(
            f"   the same connection carries data again {resumed['resumed']:.2f} s after the "
            f"crash; errors: {report['errors'] or 'none'}; connections the server accepted: "
            f"{len(accepts)}, from {accepts[-1][0]} port {accepts[-1][1]}"
        )
        print(
            "   (without state sync fw2 drops its packets as invalid and it stalls: "
            "tests/lab/test_firewall.py has that control)"
        )
        say("tearing the lab down")
    print("done: every namespace and process of the demo is gone")
    return 0


def _status(node: Node) -> list[str]:
    return format_status(node.status()).splitlines()
