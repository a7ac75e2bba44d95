"""VRRPv3: carpd and a real keepalived (vrrp_version 3) on one VRID, both ways, v4 and v6."""

from __future__ import annotations

import math
import os
import signal
import time

import pytest

from carpd_lab import bounds
from carpd_lab.cluster import Node, VhidSpec, line_time, start_master_first
from carpd_lab.keepalived import KEEPALIVED, Keepalived, instance
from carpd_lab.netlab import Lab
from carpd_lab.probe import sniff

FAMILIES = {
    4: (9, "192.0.2.200/24", "V4"),
    6: (10, "2001:db8::200/64", "V6"),
}


# Half a second: keepalived takes fractional intervals with VRRPv3, and the test waits
# two master-down intervals of each side plus a takeover.
INTERVAL = 0.5


@pytest.fixture
def keepalived_bin() -> str:
    if not os.path.exists(KEEPALIVED):
        pytest.skip("needs the Debian package keepalived")
    return KEEPALIVED


def vrrp_spec(vrid: int, address: str, priority: int, advbase: float = 1) -> VhidSpec:
    extra = {"protocol": "vrrp3", "priority": priority, "advbase": advbase}
    return VhidSpec(vrid, (address,), password="", extra=extra)


def assert_status(node: Node, role: str) -> None:
    spec = node.vhids[0]
    vrid, priority = spec.vhid, spec.extra["priority"]
    advbase = spec.extra["advbase"]
    assert node.ctl("status")[1].splitlines()[0] == (
        f"carp{vrid}: {role} carpdev eth0 vrid {vrid} advbase {advbase:.2f} priority {priority} "
        "(VRRPv3, no authentication)"
    )


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("preferred", ["carpd", "keepalived"])
def test_carpd_and_keepalived_elect_one_master_and_fail_over(
    lab: Lab, keepalived_bin: str, family: int, preferred: str
) -> None:
    """The preferred side starts alone and becomes MASTER; the other side, started next,
    must never become MASTER while it hears the preferred side; killed, the preferred side
    is replaced within the other's master-down interval. Both advertise every INTERVAL."""
    vrid, address, name = FAMILIES[family]
    ka_prio, cd_prio = (100, 200) if preferred == "carpd" else (200, 100)
    hk = lab.add_host("ka", "192.0.2.1/24", "2001:db8::1/64")
    hc = lab.add_host("cd", "192.0.2.2/24", "2001:db8::2/64")
    spec = vrrp_spec(vrid, address, cd_prio, INTERVAL)
    node = Node(lab, hc, [spec])
    ka_down = bounds.vrrp_master_down(INTERVAL, ka_prio)
    vip = address.split("/")[0]
    if preferred == "carpd":
        node.start()
        node.wait_state("MASTER", timeout=bounds.first_master(spec.master_down))
        ka = Keepalived(lab, hk, [instance(name, vrid, ka_prio, address, INTERVAL)])
        ka.wait_state(name, "BACKUP", timeout=bounds.START_UP)
        # Past two of keepalived's master-down intervals: it heard carpd all along.
        node.wait_counter("adverts_sent", math.ceil(2 * ka_down / INTERVAL))
        assert ka.log.count(r"Entering MASTER STATE") == 0
        assert_status(node, "MASTER")
        assert node.status()["vhosts"][0]["counters"]["dropped"] == {}
        mark = ka.log.mark()
        node.signal(signal.SIGKILL)
        ka.wait_state(name, "MASTER", timeout=bounds.takeover(ka_down), start=mark)
    else:
        ka = Keepalived(lab, hk, [instance(name, vrid, ka_prio, address, INTERVAL)])
        ka.wait_state(name, "MASTER", timeout=bounds.first_master(ka_down))
        node.start()
        node.wait_state("BACKUP", timeout=bounds.START_UP)
        node.wait_ready()
        node.wait_counter("adverts_received", math.ceil(2 * spec.master_down / INTERVAL))
        assert_status(node, "BACKUP")
        assert node.log is not None and node.log.count(r"-> MASTER") == 0
        assert node.status()["vhosts"][0]["counters"]["dropped"] == {}
        mark = node.mark()
        ka.kill()
        node.wait_state("MASTER", timeout=bounds.takeover(spec.master_down), start=mark)
        hc.wait_address(vip)


@pytest.mark.solo  # measures timings: run alone
def test_vrrp3_at_a_tenth_of_a_second_fails_over_in_under_half_a_second(lab: Lab) -> None:
    h1 = lab.add_host("n1", "192.0.2.1/24")
    h2 = lab.add_host("n2", "192.0.2.2/24")
    n1 = Node(lab, h1, [vrrp_spec(5, "192.0.2.150/24", 200, advbase=0.1)])
    n2 = Node(lab, h2, [vrrp_spec(5, "192.0.2.150/24", 100, advbase=0.1)])
    start_master_first(n1, n2)
    n2.wait_counter("adverts_received", 10)
    mark = n2.mark()
    killed = time.time()
    n1.signal(signal.SIGKILL)
    # Master_Down_Interval = 3 x 0.1 + (256 - 100)/256 x 0.1 = 0.361 s from the last advert.
    down = n2.master_down
    # Wait past the bound, so that a late takeover is reported with its figure.
    _, line = n2.wait_state("MASTER", timeout=3 * bounds.takeover(down), start=mark)
    took = line_time(line) - killed
    assert took < bounds.takeover(down) < 0.5, f"takeover after {took:.3f} s"


@pytest.mark.parametrize("accept", [False, True, None])
def test_accept_mode_decides_whether_the_master_takes_packets(
    lab: Lab, accept: bool | None
) -> None:
    """None: no accept key. The default takes packets, as keepalived does unless
    vrrp_strict: a keepalived user's first ping is answered. A MASTER that drops them
    says so on each address in carpctl status, and accepting = false in the JSON."""
    h1 = lab.add_host("n1", "192.0.2.1/24")
    client = lab.add_host("cl", "192.0.2.9/24")
    spec = vrrp_spec(5, "192.0.2.150/24", 200)
    if accept is not None:
        spec.extra["accept"] = accept
    takes = accept is not False
    node = Node(lab, h1, [spec])
    node.start()
    node.wait_state("MASTER", timeout=bounds.first_master(spec.master_down))
    h1.wait_address("192.0.2.150")
    r = client.run(["ping", "-c", "2", "-i", "0.2", "-W", "1", "192.0.2.150"])
    assert (r.returncode == 0) is takes
    (vh,) = node.status()["vhosts"]
    assert vh["accepting"] is takes
    rc, out, _ = node.ctl("status")
    assert rc == 0
    assert out.splitlines()[1] == "\tinet 192.0.2.150/24" + (
        "" if takes else " (not accepting: accept = false)"
    )
    # Either way the MASTER answers ARP for the address (RFC 5798 6.4.3).
    assert client.run(["ip", "neigh", "show", "192.0.2.150"]).stdout.split()[-1] in (
        "REACHABLE",
        "STALE",
        "DELAY",
    )
    assert node.stop(signal.SIGTERM) == 0
    assert "carpd" not in h1.run(["nft", "list", "tables"]).stdout  # its table is gone


def test_vrrp3_with_a_virtual_mac_advertises_from_it(lab: Lab) -> None:
    """RFC 5798 7.3: a VRRP master sources its adverts from the virtual MAC
    (00:00:5e:00:01:VRID), so switches learn where the virtual router is."""
    h1 = lab.add_host("n1", "192.0.2.1/24")
    client = lab.add_host("cl", "192.0.2.9/24")
    spec = vrrp_spec(5, "192.0.2.150/24", 200)
    spec.extra["vmac"] = True
    node = Node(lab, h1, [spec])
    watch = sniff(client)
    node.start()
    node.wait_state("MASTER", timeout=bounds.first_master(spec.master_down))
    # The first advert goes out at once, before the virtual MAC is up (the wire never
    # waits for the host); the next one, an interval later, from the virtual MAC.
    i, _ = watch.wait_for(r"^vrrp 192\.0\.2\.1 vrid=5 ", bounds.COMMAND)
    _, line = watch.wait_for(r"^vrrp 192\.0\.2\.1 vrid=5 ", 1 + bounds.COMMAND, i + 1)
    assert line.endswith(" mac=00:00:5e:00:01:05"), line
