"""A carpd that dies leaves nothing behind (issue 28, item 2), against the real kernel:
the addresses carpd adds have a lifetime it renews while it holds them, so after a kill
-9 of the MASTER's carpd alone (its namespace and link stay up) the kernel removes them
by itself about when the peer takes over; a live MASTER keeps them (and a TCP connection
to them) through many lifetimes; a SIGTERM still removes them at once; and a MASTER whose
loop stalls past the lifetime finds its addresses expired and puts them back.

The claims are about the kernel's lifetimes and carpd's renewals, which depend on the
protocol only through the master-down interval ("auto": ceil(master-down) + 1 s). So the
vhid runs VRRPv3 at a tenth of a second (the least carpd runs at without a real-time
policy, docs/keepalived.md; test_flapping runs the same): master-down 0.3 + skew s, so
the lifetime is 2 s, the shortest "auto" makes, and every wait below (one
master-down, a few lifetimes) is the protocol's bound for the shortest timers carpd
supports, not CARP's whole seconds.
"""

from __future__ import annotations

import math
import re
import signal
import subprocess
import sys
import time

import pytest

from carpd.daemon.runtime.lifetimes import MARGIN
from carpd_lab import bounds
from carpd_lab.cluster import Node, VhidSpec, line_time, start_master_first
from carpd_lab.netlab import Host, Lab

VIPS = ("192.0.2.100/24", "2001:db8::100/64")

# The kernel keeps lifetimes in whole seconds and checks them on whole-second timers
# (round_jiffies_up in check_lifetime and addrconf_verify): an address goes up to one
# second after its lifetime ran out.
KERNEL_ROUNDING = 1.0
# The test's own poll of the dead node's addresses (a netlink dump every 10 ms).
POLL = 0.1


# n1 the better (priority 200), n2 the backup (100): master-down 0.32 s and 0.36 s.
ADVBASE = 0.1
N1 = {"protocol": "vrrp3", "priority": 200, "advbase": ADVBASE}
N2 = {"protocol": "vrrp3", "priority": 100, "advbase": ADVBASE}


def lifetime(node: Node) -> int:
    """The lifetime of the node's addresses, as ``address_lifetime = "auto"`` makes it."""
    return math.ceil(node.vhids[0].master_down) + MARGIN


def pair(lab: Lab) -> tuple[Node, Node]:
    h1 = lab.add_host("n1", "192.0.2.1/24", "2001:db8::1/64")
    h2 = lab.add_host("n2", "192.0.2.2/24", "2001:db8::2/64")
    n1 = Node(lab, h1, [VhidSpec(vhid=1, addresses=VIPS, extra=dict(N1))])
    n2 = Node(lab, h2, [VhidSpec(vhid=1, addresses=VIPS, extra=dict(N2))])
    start_master_first(n1, n2)
    h1.wait_address("192.0.2.100")
    h1.wait_address("2001:db8::100")
    return n1, n2


def valid_lft(host: Host, vip: str) -> str:
    """What `ip addr` says of the address's valid lifetime ("4sec", "forever")."""
    out = host.check("ip", "addr", "show", "dev", "eth0")
    m = re.search(rf"inet6? {re.escape(vip)}/\d+ .*\n\s+valid_lft (\S+) preferred_lft (\S+)", out)
    assert m is not None, out
    assert m.group(1) == m.group(2), out  # preferred = valid: never deprecated
    return m.group(1)


def gone(host: Host, vips: tuple[str, ...], timeout: float) -> float:
    """Poll until none of ``vips`` is on the host; when (wall clock) the last one went."""
    deadline = time.monotonic() + timeout
    while any(host.has_address(v) for v in vips):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{host.name}: {vips} still there after {timeout:.1f} s")
        time.sleep(0.01)
    return time.time()


@pytest.mark.solo  # measures timings: run alone
def test_kill_9_of_the_master_leaves_its_addresses_for_at_most_their_lifetime(lab: Lab) -> None:
    n1, n2 = pair(lab)
    life = lifetime(n1)  # 3 x 0.1 + 56 x 0.1 / 256 s, rounded up, + 1 s: 2 s
    for vip in ("192.0.2.100", "2001:db8::100"):
        assert valid_lft(n1.host, vip).removesuffix("sec").isdigit()
    mark = n2.mark()
    n2.wait_counter("adverts_received", 1)
    killed = time.time()
    n1.signal(signal.SIGKILL)  # carpd alone: n1's namespace and link stay up
    _, line = n2.wait_state("MASTER", timeout=3 * bounds.takeover(n2.master_down), start=mark)
    took_over = line_time(line)
    # The last renewal was at most one period before the kill; the address lives its
    # lifetime from there, and the kernel's check may come a second later.
    bound = life + KERNEL_ROUNDING + POLL
    went = gone(n1.host, ("192.0.2.100", "2001:db8::100"), timeout=3 * bound)
    both, after_kill = went - took_over, went - killed
    print(
        f"\nlifetime {life} s: addresses gone {after_kill:.2f} s after the kill -9; "
        f"peer MASTER {took_over - killed:.2f} s after it; both held them {both:.2f} s"
    )
    assert after_kill <= bound, f"gone {after_kill:.2f} s after the kill, bound {bound:.2f}"
    assert both <= bound - (took_over - killed)
    # And the peer holds them from its takeover on.
    n2.host.wait_address("192.0.2.100")
    n2.host.wait_address("2001:db8::100")


ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 7007)); s.listen(); print("listening", flush=True)
while True:
    c, _ = s.accept()
    while data := c.recv(100):
        c.sendall(data)
"""


def test_a_live_master_keeps_its_addresses_and_connections_through_many_lifetimes(
    lab: Lab,
) -> None:
    n1, n2 = pair(lab)
    client = lab.add_host("cl", "192.0.2.9/24", "2001:db8::9/64")
    life = lifetime(n1)
    monitor = n1.host.spawn(["ip", "monitor", "address"], stdout=subprocess.PIPE)
    server = n1.host.spawn([sys.executable, "-c", ECHO, "192.0.2.100"], stdout=subprocess.PIPE)
    assert server.stdout is not None and server.stdout.readline() == b"listening\n"
    talk = (
        "import socket, sys\n"
        "c = socket.create_connection(('192.0.2.100', 7007), timeout=5)\n"
        "print('connected', flush=True)\n"
        "for line in sys.stdin:\n"
        "    c.sendall(line.encode()); print(c.recv(100).decode(), end='', flush=True)\n"
    )
    conn = client.spawn([sys.executable, "-c", talk], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert conn.stdin is not None and conn.stdout is not None
    assert conn.stdout.readline() == b"connected\n"
    mark = n1.mark()
    # Three lifetimes of the master's adverts, as the backup hears them (both families).
    adverts = 3 * life / n1.vhids[0].advert_interval
    n2.wait_counter("adverts_received", 2 * math.ceil(adverts), timeout=6 * life)
    # The addresses have a finite lifetime that was renewed all along: never expired,
    # never put back, and the connection made three lifetimes ago still answers.
    for vip in ("192.0.2.100", "2001:db8::100"):
        left = valid_lft(n1.host, vip)
        assert left.endswith("sec") and int(left.removesuffix("sec")) <= life, left
    conn.stdin.write(b"still there\n")
    conn.stdin.flush()
    assert conn.stdout.readline() == b"still there\n"
    for proc in (conn, server, monitor):
        lab.kill(proc)
    assert monitor.stdout is not None
    events = monitor.stdout.read().decode()
    assert not [e for e in events.splitlines() if e.startswith("Deleted")], events
    assert "192.0.2.100" in events  # the renewals were heard (RTM_NEWADDR each time)
    assert n1.log is not None
    assert not [x for x in n1.log.lines[mark:] if "put back" in x]
    assert n1.states() == {"carp1": "MASTER"} and n2.states() == {"carp1": "BACKUP"}


def test_sigterm_still_removes_the_addresses_at_once(lab: Lab) -> None:
    n1, n2 = pair(lab)
    mark = n2.mark()
    n1.signal(signal.SIGTERM)
    # n1 bows out (priority 0): n2 takes over after its skew time, within master-down.
    n2.wait_state("MASTER", timeout=bounds.takeover(n2.master_down), start=mark)
    assert n1.stop(signal.SIGTERM) == 0
    # Gone when carpd exits, not a lifetime later.
    assert not n1.host.has_address("192.0.2.100")
    assert not n1.host.has_address("2001:db8::100")


def test_a_master_stalled_past_the_lifetime_finds_its_addresses_gone_and_puts_them_back(
    lab: Lab,
) -> None:
    h1 = lab.add_host("n1", "192.0.2.1/24", "2001:db8::1/64")
    n1 = Node(lab, h1, [VhidSpec(vhid=1, addresses=VIPS, extra=dict(N1))])
    start_master_first(n1)
    h1.wait_address("192.0.2.100")
    life = lifetime(n1)
    mark = n1.mark()
    n1.signal(signal.SIGSTOP)  # the loop stalls (a VM paused, swapped out)
    try:
        gone(h1, ("192.0.2.100", "2001:db8::100"), timeout=life + KERNEL_ROUNDING + POLL)
    finally:
        n1.signal(signal.SIGCONT)
    n1.wait_log(r"carp1: .* removed from eth0 by another program: put back", start=mark,
                timeout=bounds.COMMAND)  # fmt: skip
    h1.wait_address("192.0.2.100")
    h1.wait_address("2001:db8::100")
    assert valid_lft(h1, "192.0.2.100") != "forever"  # put back with a lifetime again
    assert n1.states() == {"carp1": "MASTER"}
