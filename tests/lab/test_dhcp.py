"""The DHCP problem end to end (seed 004): an ISP that leases its one address only by
DHCP (dnsmasq), two firewalls whose external NIC follows the lan vhid with the same MAC
(udhcpc), a LAN client behind them; crash the master and the client carries on."""

from __future__ import annotations

import signal
import time

import pytest

from carpd.daemon.effects.follow import ROUTE_CHECK
from carpd.linux.dhcp import STOP_GRACE
from carpd_lab import bounds
from carpd_lab.cluster import start_master_first
from carpd_lab.dhcp import LEASE, POOL, SHARED_MAC, DhcpProblem
from carpd_lab.netlab import Lab

# A ping's own timeout and the moment between two tries.
PING = 0.5


@pytest.mark.parametrize("client", ["udhcpc", "dhclient"])
def test_the_new_master_gets_the_same_lease_and_the_old_one_routes_through_it(
    lab: Lab, client: str
) -> None:
    p = DhcpProblem(lab, client)
    p.start_isp()
    fw1, fw2 = p.fw
    start_master_first(fw1, fw2)
    address = p.wait_lease(fw1, LEASE)
    assert POOL[0] <= address <= POOL[1]
    assert p.mac(fw1) == SHARED_MAC and p.link_up(fw1)
    # The BACKUP: ext0 down with the shared MAC and no address, out through the peer.
    fw2.wait_log(r"ext0: down: following lan out of MASTER", bounds.COMMAND)
    assert (p.lease(fw2), p.link_up(fw2), p.mac(fw2)) == (None, False, SHARED_MAC)
    assert p.default_route(fw2).startswith("default via 192.0.2.1 dev eth0")
    if client == "udhcpc":  # (once is enough) another program removes it: put back
        mark = fw2.mark()
        fw2.host.check("ip", "route", "del", "default", "via", "192.0.2.1")
        fw2.wait_log(r"ext0: the default route through 192\.0\.2\.1 was removed by another "
                     r"program: put back", ROUTE_CHECK + bounds.COMMAND, mark)  # fmt: skip
        assert p.default_route(fw2).startswith("default via 192.0.2.1 dev eth0")
    p.reaches(p.client, bounds.COMMAND)
    p.reaches(fw2.host, bounds.COMMAND)

    # Crash fw1: fw2 takes over, gets the same lease, and the client carries on.
    crashed = lab.crash(fw1.host)
    assert fw1.proc is not None
    fw1.proc.wait(timeout=bounds.COMMAND)
    fw2.wait_state("MASTER", "lan", fw2.master_down + bounds.REACTION + bounds.COMMAND)
    assert p.wait_lease(fw2, LEASE) == address  # the same MAC: the same lease
    leased = time.monotonic() - crashed
    p.reaches(p.client, LEASE + PING)
    print(
        f"after the crash: lease on the new master {leased:.2f} s, the client through "
        f"it {time.monotonic() - crashed:.2f} s (master down {fw2.master_down:.2f} s)"
    )

    # fw1 comes back (preempt off): BACKUP, ext0 down, out through fw2.
    lab.cut(fw1.host, on=False)
    fw1.start()
    fw1.wait_state("BACKUP", "lan", bounds.START_UP)
    fw1.wait_log(r"ext0: down: following lan out of MASTER", bounds.COMMAND)
    assert (p.lease(fw1), p.link_up(fw1)) == (None, False)
    p.reaches(fw1.host, bounds.COMMAND)
    assert p.wait_lease(fw2, 0) == address

    # A stop (SIGTERM) of the master: it releases the lease and takes ext0 down, and
    # fw1 takes over with a lease of its own.
    leases = lab.tmp / "dnsmasq.leases"
    assert SHARED_MAC in leases.read_text()
    mark, mark1 = fw2.mark(), fw1.mark()
    fw2.signal(signal.SIGTERM)
    assert fw2.proc is not None
    # Its stop releases the lease: the client's release (a process), then the client
    # itself, each given STOP_GRACE.
    fw2.proc.wait(timeout=2 * STOP_GRACE + bounds.COMMAND)
    assert fw2.log is not None
    fw2.log.join()  # every line it wrote before it exited
    fw2.wait_log(r"ext0: down: following lan out of MASTER", 0, mark)  # before it exited
    assert (p.lease(fw2), p.link_up(fw2)) == (None, False)
    assert client not in p.commands(fw2)
    fw1.wait_state("MASTER", "lan", fw1.master_down, mark1)  # at once: fw2 bowed out
    assert POOL[0] <= p.wait_lease(fw1, LEASE) <= POOL[1]
    p.reaches(p.client, LEASE + PING)
