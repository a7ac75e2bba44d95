"""Unicast peers keep the TTL 255 rule (issue 26, item 3): a host off the link, routed
through another namespace, spoofs the configured peer's address with TTL 64 against a
VRRPv3 MASTER. VRRPv3 has no authentication, so the TTL is the vhid's only defence."""

from __future__ import annotations

import sys
import time

from carpd_lab import bounds
from carpd_lab.cluster import Node, VhidSpec
from carpd_lab.netlab import Host, Lab

PEER = "192.0.2.50"  # the configured peer: not in the lab, only its address is used
OWN = "192.0.2.1"

# Run in the attacker's namespace: VRRPv3 adverts for VRID 9, priority 254, from the
# peer's address to carpd's, with TTL 64 (the router makes it 63).
SPOOF = """
import ipaddress, socket, sys
from carpd.core.packet import VRRP_TOS, build_ipv4
from carpd.core.vrrp import VrrpPacket
src, dst = ipaddress.IPv4Address(sys.argv[1]), ipaddress.IPv4Address(sys.argv[2])
vip = (ipaddress.IPv4Address("192.0.2.200"),)
payload = VrrpPacket(vrid=9, priority=254, interval_cs=100, addresses=vip).encode(src, dst)
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
for n in range(int(sys.argv[3])):
    s.sendto(build_ipv4(src, dst, payload, n, ttl=64, tos=VRRP_TOS), (str(dst), 0))
"""
SENT = 6


def routed_attacker(lab: Lab) -> Host:
    """198.51.100.2, whose packets reach 192.0.2.0/24 only through a router that
    forwards without reverse-path filtering (so a spoofed source passes)."""
    router = lab.add_host("rt", "192.0.2.2/24")
    lab.add_interface(router, "eth1", "br1", "198.51.100.1/24")
    router.check(
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0",
        "net.ipv4.conf.eth0.rp_filter=0",
        "net.ipv4.conf.eth1.rp_filter=0",
    )
    attacker = lab.add_host("at", "198.51.100.2/24", bridge="br1")
    attacker.check("ip", "route", "add", "default", "via", "198.51.100.1")
    return attacker


def vrrp_master(lab: Lab, **extra: object) -> Node:
    host = lab.add_host("cd", f"{OWN}/24")
    # The peer's MAC, so carpd's unicast adverts to it go out without an ARP failure.
    host.check("ip", "neigh", "add", PEER, "lladdr", "02:00:00:00:00:50", "dev", "eth0")
    spec = VhidSpec(
        9,
        ("192.0.2.200/24",),
        name="v9",
        extra={"protocol": "vrrp3", "priority": 100, "peers": [PEER], **extra},
    )
    node = Node(lab, host, [spec])
    node.start()
    node.wait_state("MASTER", timeout=bounds.first_master(spec.master_down))
    node.wait_ready()
    return node


def spoof(attacker: Host) -> None:
    r = attacker.run([sys.executable, "-c", SPOOF, PEER, OWN, str(SENT)], timeout=20)
    assert r.returncode == 0, r.stderr


def test_a_spoofed_peer_from_off_the_link_is_dropped_as_bad_ttl(lab: Lab) -> None:
    node = vrrp_master(lab)
    attacker = routed_attacker(lab)
    transitions = node.counter("transitions")
    spoof(attacker)
    deadline = time.monotonic() + bounds.COMMAND
    while node.status()["dropped"].get("eth0", {}).get("bad_ttl", 0) < SENT:
        assert time.monotonic() < deadline, node.status()["dropped"]
        time.sleep(0.05)
    status = node.status()
    assert status["dropped"]["eth0"] == {"bad_ttl": SENT}
    assert status["vhosts"][0]["state"] == "MASTER"
    assert status["vhosts"][0]["counters"]["adverts_received"] == 0
    assert node.counter("transitions") == transitions
    assert node.log is not None
    assert node.log.count(rf"carp: bad_ttl from {PEER} on eth0: received ttl 63 != 255") == 1


def test_with_peers_routed_the_same_advert_is_accepted(lab: Lab) -> None:
    node = vrrp_master(lab, peers_routed=True)
    attacker = routed_attacker(lab)
    mark = node.mark()
    spoof(attacker)
    node.wait_log(
        r"v9: state transition: MASTER -> BACKUP \(higher priority master advertised\)",
        timeout=bounds.COMMAND,
        start=mark,
    )
    assert node.status()["dropped"].get("eth0", {}) == {}
