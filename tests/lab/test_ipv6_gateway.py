"""IPv6 gateway failover the pfSense/OPNsense way (issue 28, item 4): the LAN's router is
the link-local VIP fe80::1, and only its MASTER runs radvd, which sends RAs from it.

    client (SLAAC) ── lan br0 ──┬── n1 eth0 2001:db8:1::2   (lan vhid 1: fe80::1)
                                └── n2 eth0 2001:db8:1::3
                                    n1 ext0 2001:db8:2::2 ─┬── out br (wan vhid 2: 2001:db8:2::1)
                                    n2 ext0 2001:db8:2::3 ─┘   outside 2001:db8:2::10

The outside host routes the LAN prefix back through the wan VIP, held by the same node.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from collections.abc import Callable

import pytest

from carpd_lab import bounds, radvd
from carpd_lab.cluster import Node, VhidSpec, start_master_first
from carpd_lab.netlab import Host, Lab
from carpd_lab.probe import Pinger

ROUTER = "fe80::1"  # the LAN's router address: the lan vhid's link-local VIP
LAN_PREFIX = "2001:db8:1::/64"
WAN_VIP = "2001:db8:2::1"
OUTSIDE = "2001:db8:2::10"
# The router lifetime the RAs give: far beyond any failover bound, so a client that
# reached the outside again only after it ran out would fail the test by minutes.
LIFETIME = 600


@pytest.fixture(autouse=True)
def _radvd() -> None:
    if not (shutil.which("radvd") or os.path.exists("/usr/sbin/radvd")):
        pytest.skip("needs the Debian package radvd (scripts/setup installs it)")


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:.1f} s")
        time.sleep(0.02)


def _mac(host: Host, ifname: str = "eth0") -> str:
    out = host.check("ip", "-o", "link", "show", "dev", ifname)
    return out.split("link/ether ")[1].split()[0]


def _default_route(client: Host) -> str:
    return client.check("ip", "-6", "route", "show", "default").strip()


def _neighbour(client: Host, address: str) -> str:
    """The client's neighbour entry's link-layer address for ``address`` ("" if none)."""
    out = client.check("ip", "-6", "neigh", "show", address, "dev", "eth0")
    m = re.search(r"lladdr (\S+)", out)
    return m.group(1) if m else ""


class Gateway:
    """Two firewalls (n1 MASTER, n2 BACKUP), a SLAAC client on the LAN and a host
    outside."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.client = lab.add_host("client")
        self.client.check(
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.forwarding=0",
            "net.ipv6.conf.eth0.accept_ra=1",
            "net.ipv6.conf.eth0.accept_ra_defrtr=1",
            "net.ipv6.conf.eth0.autoconf=1",
        )
        self.outside = lab.add_host("out", ipv6=f"{OUTSIDE}/64", bridge="brout")
        self.outside.check("ip", "-6", "route", "add", LAN_PREFIX, "via", WAN_VIP)
        self.n1 = self._firewall(1, advskew=0)
        self.n2 = self._firewall(2, advskew=100)

    def _firewall(self, n: int, advskew: int) -> Node:
        lab = self.lab
        host = lab.add_host(f"n{n}", ipv6=f"2001:db8:1::{n + 1}/64")
        lab.add_interface(host, "ext0", "brout", None)
        host.check("ip", "-6", "addr", "add", f"2001:db8:2::{n + 1}/64", "dev", "ext0", "nodad")
        host.check("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        conf = lab.tmp / f"n{n}-radvd.conf"
        conf.write_text(radvd.config("eth0", ROUTER, LAN_PREFIX, LIFETIME))
        lan = VhidSpec(1, (f"{ROUTER}/64",), advskew=advskew, name="lan")
        wan = VhidSpec(2, (f"{WAN_VIP}/64",), advskew=advskew, name="wan", carpdev="ext0")
        node = Node(lab, host, [lan, wan])
        node.arrays["action"] = radvd.actions(
            "lan", conf, lab.tmp / f"n{n}-radvd.pid", lab.tmp / f"n{n}-radvd.log"
        )
        return node

    def start(self) -> None:
        start_master_first(self.n1, self.n2)
        # The client learns its router and its address from n1's radvd, started by the
        # master action once fe80::1 is on n1: its first RA goes out at once.
        _wait(
            lambda: f"default via {ROUTER} dev eth0 proto ra" in _default_route(self.client),
            bounds.COMMAND,
            f"client: no default route via {ROUTER}",
        )
        _wait(
            lambda: (
                "2001:db8:1:" in self.client.check("ip", "-6", "addr", "show", "scope", "global")
            ),
            bounds.COMMAND,
            "client: no SLAAC address in 2001:db8:1::/64",
        )

    def reaches_outside(self, timeout: float) -> None:
        _wait(
            lambda: (
                self.client.run(["ping", "-n", "-q", "-c", "1", "-W", "0.2", OUTSIDE]).returncode
                == 0
            ),
            timeout,
            f"client: {OUTSIDE} unreachable",
        )


@pytest.mark.solo  # measures an outage: run alone
def test_the_client_keeps_its_router_through_a_crash_and_the_returning_node_sends_no_ra(
    lab: Lab,
) -> None:
    gw = Gateway(lab)
    n1, n2, client = gw.n1, gw.n2, gw.client
    mac1, mac2 = _mac(n1.host), _mac(n2.host)
    ras = radvd.watch(client)
    gw.start()

    # Only the MASTER advertises, from the VIP, with its own MAC; the BACKUP runs no radvd.
    ras.wait_for(rf"^ra {ROUTER} mac={mac1} lifetime={LIFETIME}$", bounds.COMMAND)
    assert radvd.running(n1.host) and not radvd.running(n2.host)
    assert not n2.host.has_address(ROUTER)
    assert not [line for line in ras.lines if line.startswith("ra ") and f"mac={mac1}" not in line]
    gw.reaches_outside(bounds.COMMAND)
    assert _neighbour(client, ROUTER) == mac1

    # A crash of n1 (carpd and radvd stopped, cables pulled, then killed).
    ping = Pinger(client, OUTSIDE)
    ping.wait_reply()
    mark, ra_mark = n2.mark(), ras.mark()
    lab.crash(n1.host)
    takeover = bounds.takeover(n2.master_down)
    for vhid in ("lan", "wan"):
        n2.wait_state("MASTER", vhid, takeover + bounds.REACTION, start=mark)
    ping.log.wait_for(r"bytes from", bounds.COMMAND, start=ping.mark())
    outage = ping.stop()
    print(f"client outage through the crash: {outage.longest_gap_ms:.0f} ms "
          f"(master down {n2.master_down:.2f} s)")  # fmt: skip
    # The protocol's bound: n2's master-down interval after n1's last advert, n2's
    # reaction, and one more ping interval and the new master's announcement (REACTION);
    # nothing waits for the RA's router lifetime (LIFETIME s).
    assert outage.longest_gap_ms < (takeover + bounds.REACTION) * 1000, outage
    # The client kept fe80::1 as its router; its neighbour entry moved to n2, and n2's
    # radvd (started by the master action) advertises from the same address.
    assert f"default via {ROUTER} dev eth0 proto ra" in _default_route(client)
    assert _neighbour(client, ROUTER) == mac2
    ras.wait_for(rf"^ra {ROUTER} mac={mac2} lifetime={LIFETIME}$", bounds.COMMAND, ra_mark)
    assert radvd.running(n2.host)

    # n1 comes back (preempt off: it stays BACKUP) and sends no RA, not even one with
    # lifetime 0: its radvd is not running, and the VIP it would send from is gone.
    lab.cut(n1.host, on=False)
    back = ras.mark()
    n1.start()
    for vhid in ("lan", "wan"):
        n1.wait_state("BACKUP", vhid, bounds.START_UP)
    n1.wait_ready()
    n1.wait_log(r"radvd-stop", bounds.COMMAND)  # the backup action ran (a no-op here)
    assert not n1.host.has_address(ROUTER)
    # The client asks for RAs: n2 answers (so the watcher hears RAs), n1 must not.
    asked = ras.mark()
    radvd.solicit(client)
    ras.wait_for(rf"^ra {ROUTER} mac={mac2} ", radvd.ANSWER, asked)
    assert not [line for line in ras.lines[back:] if f"mac={mac1}" in line]
    assert not radvd.running(n1.host)
    assert n1.states() == {"lan": "BACKUP", "wan": "BACKUP"}
    assert n2.states() == {"lan": "MASTER", "wan": "MASTER"}
    assert f"default via {ROUTER} dev eth0 proto ra" in _default_route(client)
    gw.reaches_outside(bounds.COMMAND)


def test_a_graceful_handover_sends_no_lifetime_0_ra_from_the_shared_router_address(
    lab: Lab,
) -> None:
    """radvd sends a last RA with router lifetime 0 when it stops (RFC 4861 6.2.5). From
    fe80::1 that would tell every client that the new master, which advertises from the
    same address, is no router. The backup action stops radvd after carpd removed fe80::1,
    so radvd has no source address left and sends nothing."""
    gw = Gateway(lab)
    n1, n2, client = gw.n1, gw.n2, gw.client
    mac2 = _mac(n2.host)
    ras = radvd.watch(client)
    gw.start()
    gw.reaches_outside(bounds.COMMAND)
    assert radvd.running(n1.host)

    mark, ra_mark = n2.mark(), ras.mark()
    n1.signal(signal.SIGTERM)
    n2.wait_state("MASTER", "lan", n2.master_down, start=mark)  # n1 bowed out
    assert n1.proc is not None
    n1.proc.wait(timeout=bounds.COMMAND)
    _wait(lambda: not radvd.running(n1.host), bounds.COMMAND, "n1: radvd still running")
    ras.wait_for(rf"^ra {ROUTER} mac={mac2} lifetime={LIFETIME}$", bounds.COMMAND, ra_mark)
    # Whatever n1's radvd sent before it exited is on the wire before n2's answer to a
    # solicitation sent now: the watcher reads frames in order.
    asked = ras.mark()
    radvd.solicit(client)
    ras.wait_for(rf"^ra {ROUTER} mac={mac2} ", radvd.ANSWER, asked)
    assert not [line for line in ras.lines[ra_mark:] if line.endswith(" lifetime=0")]
    assert f"default via {ROUTER} dev eth0 proto ra" in _default_route(client)
    gw.reaches_outside(bounds.COMMAND)
