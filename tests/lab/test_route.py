"""[route] with a real BGP daemon: a router (BIRD) learns the virtual /32 from the MASTER
only, and the route moves on failover."""

from __future__ import annotations

import signal
import time

import pytest

from carpd_lab import bounds
from carpd_lab.bgp import HOLD, Bird, nexthop, node_config, router_config
from carpd_lab.cluster import Node, VhidSpec, start_master_first
from carpd_lab.netlab import Host, Lab

VIP = "192.0.2.100"
ROUTER = "198.51.100.254"
BGP_UP = 10.0  # BIRD's sessions: connect retry 1 s, then OPEN and the first UPDATE
KEEPALIVE_MARGIN = bounds.COMMAND  # a BGP UPDATE and the router's kernel route


def wait_nexthop(router: Host, want: str | None, timeout: float) -> float:
    """Until the router's route to the VIP goes via ``want``; the seconds it took."""
    t0 = time.monotonic()
    while (hop := nexthop(router, f"{VIP}/32")) != want:
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"the router's route to {VIP} is via {hop}, not {want}")
        time.sleep(0.02)
    return time.monotonic() - t0


@pytest.fixture
def fabric(lab: Lab) -> tuple[Node, Node, Host, list[Bird]]:
    router = lab.add_host("router", f"{ROUTER}/24", bridge="brfab")
    nodes, birds = [], []
    for i, skew in ((1, 0), (2, 100)):
        host = lab.add_host(f"n{i}", f"192.0.2.{i}/24")
        lab.add_interface(host, "fab0", "brfab", f"198.51.100.{i}/24")
        node = Node(lab, host, [VhidSpec(1, (f"{VIP}/24",), advskew=skew, name="lan")])
        node.global_["preempt"] = True
        # lo: this lab's kernel has no dummy driver (CONFIG_DUMMY), the default carpd0's
        node.tables["route"] = {"enabled": True, "device": "lo"}
        nodes.append(node)
        birds.append(Bird(lab, host, node_config(f"198.51.100.{i}", ROUTER, "lo")))
    rbird = Bird(lab, router, router_config(ROUTER, ["198.51.100.1", "198.51.100.2"]))
    for i in (1, 2):
        rbird.wait_established(f"peer{i}", BGP_UP)
    start_master_first(nodes[0], nodes[1])
    return nodes[0], nodes[1], router, [*birds, rbird]


def test_the_router_learns_the_address_from_the_master_only_and_follows_failover(
    fabric: tuple[Node, Node, Host, list[Bird]], lab: Lab
) -> None:
    n1, n2, router, birds = fabric
    wait_nexthop(router, "198.51.100.1", BGP_UP)
    rbird = birds[-1]
    routes = rbird.birdc("show", "route", "all", f"{VIP}/32")
    assert routes.count("BGP.as_path") == 1  # one path: n2, BACKUP, announces nothing
    # Graceful: maintenance on n1; it withdraws before its address goes.
    assert n1.ctl("maintenance", "on")[0] == 0
    moved = wait_nexthop(router, "198.51.100.2", bounds.REACTION + KEEPALIVE_MARGIN)
    print(f"maintenance: the route moved to n2 after {moved:.3f} s")
    assert n1.ctl("maintenance", "off")[0] == 0  # preempt on: back to n1
    wait_nexthop(router, "198.51.100.1", n2.vhids[0].advert_interval + KEEPALIVE_MARGIN)
    # A crash of n1 (carpd and its BIRD stopped, cables pulled, killed): its stale route
    # goes with its BGP session (hold time), n2's comes with its takeover.
    assert n1.proc is not None
    for proc in (n1.proc, birds[0].proc):
        lab.kill(proc, signal.SIGSTOP)
    crashed = time.monotonic()
    lab.cut(n1.host)
    for proc in (n1.proc, birds[0].proc):
        lab.kill(proc, signal.SIGKILL)
    limit = max(bounds.takeover(n2.master_down), HOLD) + KEEPALIVE_MARGIN
    wait_nexthop(router, "198.51.100.2", limit)
    took = time.monotonic() - crashed
    print(f"crash: the route moved to n2 after {took:.3f} s (BGP hold time {HOLD} s)")


def test_a_host_route_removed_on_the_master_is_put_back_and_the_router_keeps_it(
    fabric: tuple[Node, Node, Host, list[Bird]],
) -> None:
    """Another program deletes the /32 from the device (a flush, a network manager): the
    MASTER puts it back at once, and the router routes the VIP to it again."""
    n1, _, router, _ = fabric
    wait_nexthop(router, "198.51.100.1", BGP_UP)
    mark = n1.mark()
    n1.host.check("ip", "addr", "del", f"{VIP}/32", "dev", "lo")
    n1.wait_log(rf"lan: {VIP}/32 removed from lo by another program: put back", start=mark,
                timeout=bounds.COMMAND)  # fmt: skip
    assert f"{VIP}/32" in n1.host.check("ip", "-br", "addr", "show", "dev", "lo")
    wait_nexthop(router, "198.51.100.1", bounds.REACTION + KEEPALIVE_MARGIN)
