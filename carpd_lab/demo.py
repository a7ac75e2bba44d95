"""The demo: two carpd nodes and a client in a throwaway lab of network namespaces.

Shows the election, a crash (kill -9) of the master, the backup taking over and the
client's outage in milliseconds, then a graceful hand-over (SIGTERM), and tears
everything down, Ctrl-C included. ``--firewall``: a TCP connection through a firewall
pair (carpd, conntrackd, nftables) survives a crash (carpd_lab.demo_firewall).
"""

from __future__ import annotations

import os
import signal
import sys
import time

from carpd_lab import bounds
from carpd_lab.cluster import Node, VhidSpec, line_time
from carpd_lab.netlab import Lab, terminate_on_sigterm
from carpd_lab.probe import Pinger

VIP = "192.0.2.100"
VIP6 = "2001:db8::100"


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run(verbose: bool) -> int:
    with Lab("demo") as lab:
        say("building the lab: bridge, node1 (192.0.2.1), node2 (192.0.2.2), client (192.0.2.9)")
        h1 = lab.add_host("node1", "192.0.2.1/24", "2001:db8::1/64")
        h2 = lab.add_host("node2", "192.0.2.2/24", "2001:db8::2/64")
        client = lab.add_host("client", "192.0.2.9/24", "2001:db8::9/64")

        def vhid(skew: int) -> list[VhidSpec]:
            return [VhidSpec(1, (f"{VIP}/24", f"{VIP6}/64"), advskew=skew, name="carp0")]

        n1 = Node(lab, h1, vhid(0))
        n2 = Node(lab, h2, vhid(100))

        say("starting carpd on node1 (advskew 0)")
        t0 = time.monotonic()
        n1.start(echo=verbose)
        n1.wait_state("BACKUP", timeout=bounds.START_UP)
        n1.wait_ready()  # the control socket answers from now on
        print(f"   BACKUP after {1000 * (time.monotonic() - t0):.0f} ms")
        n1.wait_state("MASTER", timeout=bounds.first_master(n1.master_down))
        print(
            f"   MASTER after {time.monotonic() - t0:.2f} s "
            "(3 x advbase + advskew/256 of silence: nobody else advertises)"
        )
        say("starting carpd on node2 (advskew 100): it hears node1 and stays BACKUP")
        t0 = time.monotonic()
        n2.start(echo=verbose)
        n2.wait_state("BACKUP", timeout=bounds.START_UP)
        n2.wait_ready()
        print(f"   BACKUP after {1000 * (time.monotonic() - t0):.0f} ms")
        n2.wait_counter("adverts_received", 2)
        for node in (n1, n2):
            print(f"   carpctl status on {node.name}:")
            for line in _status_lines(node):
                print(f"     {line}")

        say(f"client pings {VIP} every 10 ms")
        ping = Pinger(client, VIP)
        ping.wait_reply()
        time.sleep(0.5)

        say("crash of the master: kill -9 of node1's carpd and its cable pulled at once")
        mark = n2.mark()
        killed = time.monotonic()
        n1.signal(signal.SIGKILL)
        lab.set_link(h1, False)
        n2.wait_state("MASTER", timeout=10, start=mark)
        takeover = time.monotonic() - killed
        time.sleep(0.5)
        outage = ping.stop()
        print(
            f"   node2 MASTER {takeover:.3f} s after the kill "
            "(master-down interval 3 x 1 + 100/256 = 3.391 s)"
        )
        print(
            f"   client outage: {outage.longest_gap_ms:.0f} ms "
            f"({outage.replies} replies to {outage.sent} pings)"
        )

        say(
            "node1 comes back: it removes the address kill -9 left behind, and as preempt "
            "is off it stays BACKUP"
        )
        lab.set_link(h1, True)
        n1.start(echo=verbose)
        n1.wait_state("BACKUP")
        n1.wait_ready()
        print(f"   node1: {n1.states()}  node2: {n2.states()}")

        say("graceful stop of the master (SIGTERM to node2): it sends the infinite advert")
        ping = Pinger(client, VIP)
        ping.wait_reply()
        time.sleep(0.3)
        mark = n1.mark()
        stopped = time.time()
        n2.signal(signal.SIGTERM)
        _, line = n1.wait_state("MASTER", timeout=10, start=mark)
        handover = line_time(line) - stopped
        rc = n2.stop(signal.SIGTERM)
        time.sleep(0.5)
        outage = ping.stop()
        print(f"   node2 exited {rc}; node1 MASTER {1000 * handover:.0f} ms after SIGTERM")
        print(
            f"   client outage: {outage.longest_gap_ms:.0f} ms "
            f"({outage.replies} replies to {outage.sent} pings)"
        )
        n1.stop()
        say("tearing the lab down")
    print("done: every namespace and process of the demo is gone")
    return 0


def _status_lines(node: Node) -> list[str]:
    from carpd.ctl.main import format_status

    return format_status(node.status()).splitlines()


def main() -> int:
    if os.geteuid() != 0:
        print("the demo builds network namespaces: run it as root", file=sys.stderr)
        return 1
    restore = terminate_on_sigterm()
    args = sys.argv[1:]
    try:
        if "--firewall" in args:
            from carpd_lab import demo_firewall

            return demo_firewall.run(verbose="-v" in args)
        return run(verbose="-v" in args)
    except KeyboardInterrupt:
        print("\ninterrupted: lab removed", file=sys.stderr)
        return 130
    finally:
        restore()


if __name__ == "__main__":
    raise SystemExit(main())
