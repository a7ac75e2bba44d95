"""A MASTER says again where its addresses are (issue 28, item 3), against the real
kernel: a client's neighbour entry that points at the wrong node is put right within
one garp_refresh, and after a resume within one advert interval."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from carpd_lab import bounds
from carpd_lab.cluster import Node, VhidSpec, start_master_first
from carpd_lab.netlab import Host, Lab

VIPS = ("192.0.2.100/24", "2001:db8::100/64")
# Longer than a resume's threshold (carpd.daemon.runtime.reassert.RESUMED, 2 s), shorter
# than n2's master-down interval (3 x 1 + 100/256 s) after n1's last advert.
PAUSE = 2.5


def pair(lab: Lab, **extra: object) -> tuple[Node, Node, Host]:
    h1 = lab.add_host("n1", "192.0.2.1/24", "2001:db8::1/64")
    h2 = lab.add_host("n2", "192.0.2.2/24", "2001:db8::2/64")
    client = lab.add_host("cl", "192.0.2.9/24", "2001:db8::9/64")
    n1 = Node(lab, h1, [VhidSpec(vhid=1, advskew=0, addresses=VIPS, extra=dict(extra))])
    n2 = Node(lab, h2, [VhidSpec(vhid=1, advskew=100, addresses=VIPS)])
    start_master_first(n1, n2)
    h1.wait_address("192.0.2.100")
    return n1, n2, client


def mac(host: Host) -> str:
    return str(json.loads(host.check("ip", "-j", "link", "show", "eth0"))[0]["address"])


def neighbour(client: Host, vip: str) -> str | None:
    found = json.loads(client.check("ip", "-j", "neigh", "show", vip, "dev", "eth0") or "[]")
    return found[0].get("lladdr") if found else None


def wait_neighbour(client: Host, vip: str, lladdr: str, timeout: float) -> float:
    """Until the client's entry for ``vip`` is ``lladdr``; how long that took."""
    start = time.monotonic()
    while (now := neighbour(client, vip)) != lladdr:
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{vip}: still {now}, not {lladdr}, after {timeout:.1f} s")
        time.sleep(0.02)
    return time.monotonic() - start


def test_a_stale_neighbour_entry_is_put_right_within_one_garp_refresh(lab: Lab) -> None:
    n1, n2, client = pair(lab, garp_refresh=1)
    wrong, right = mac(n2.host), mac(n1.host)
    for vip in ("192.0.2.100", "2001:db8::100"):
        # Left over from before a failover the client missed; it sends nothing to the
        # VIP, so only an announcement can put it right.
        client.check("ip", "neigh", "replace", vip, "lladdr", wrong, "dev", "eth0", "nud", "stale")
    for vip in ("192.0.2.100", "2001:db8::100"):
        took = wait_neighbour(client, vip, right, timeout=1 + bounds.COMMAND)
        print(f"{vip}: put right after {took:.2f} s")


def test_after_a_resume_the_master_puts_a_stale_client_right_within_an_advert_interval(
    lab: Lab,
) -> None:
    """n1's carpd is paused (a VM paused, a host suspended) for longer than a resume's
    threshold but shorter than n2's master-down interval, so no role moves, while a
    client's entry for the VIP goes wrong (it missed the last announcement). Resumed, n1
    notices that time jumped and announces again one advert interval later. (A pause long
    enough for n2 to take over ends in a split brain that n1 wins, which announces by
    itself.)"""
    n1, n2, client = pair(lab)
    right, wrong = mac(n1.host), mac(n2.host)
    mark1, mark2 = n1.mark(), n2.mark()
    n2.wait_counter("adverts_received", 1)  # pause right after an advert: the most slack
    n1.signal(signal.SIGSTOP)
    try:
        client.check("ip", "neigh", "replace", "192.0.2.100", "lladdr", wrong, "dev", "eth0",
                     "nud", "stale")  # fmt: skip
        time.sleep(PAUSE)
    finally:
        n1.signal(signal.SIGCONT)
    resumed = time.monotonic()
    n1.wait_log(
        r"carp: the loop was held for \d+\.\d s or more", start=mark1, timeout=bounds.COMMAND
    )
    wait_neighbour(client, "192.0.2.100", right, timeout=1 + bounds.COMMAND)
    took = time.monotonic() - resumed
    print(f"client back on n1 {took:.2f} s after the resume")
    assert took >= 1.0 - bounds.REACTION  # one advert interval: not before the protocol spoke
    assert not [line for line in n2.log.lines[mark2:] if "state transition" in line]
    assert n1.states() == {"carp1": "MASTER"}


def test_a_bridge_that_forwards_the_virtual_mac_to_the_old_port_is_put_right(lab: Lab) -> None:
    """A vhid with a virtual MAC: an entry of the bridge left pointing the virtual MAC at
    the BACKUP's port (a failover the bridge missed) is right again within one advert
    interval, with no garp_refresh: the MASTER's adverts leave from the virtual MAC, so
    every advert teaches the bridge where it is."""
    vmac = "00:00:5e:00:01:01"
    h1 = lab.add_host("n1", "192.0.2.1/24", "2001:db8::1/64")
    h2 = lab.add_host("n2", "192.0.2.2/24", "2001:db8::2/64")
    extra = {"vmac": True}
    n1 = Node(lab, h1, [VhidSpec(vhid=1, advskew=0, addresses=VIPS, extra=extra)])
    n2 = Node(lab, h2, [VhidSpec(vhid=1, advskew=100, addresses=VIPS, extra=extra)])
    start_master_first(n1, n2)

    def port_of_vmac() -> set[str]:
        fdb = lab_fdb(lab)
        return {e["ifname"] for e in fdb if e.get("mac") == vmac and "ifname" in e}

    subprocess.run(
        ["ip", "netns", "exec", lab.switch, "bridge", "fdb", "replace", vmac, "dev",
         h2.port, "master", "dynamic"],
        check=True,
    )  # fmt: skip
    start = time.monotonic()
    while port_of_vmac() != {h1.port}:
        assert time.monotonic() - start < n1.vhids[0].advert_interval + bounds.COMMAND, (
            port_of_vmac()
        )
        time.sleep(0.02)
    print(f"the bridge forwards {vmac} to n1 again after {time.monotonic() - start:.2f} s")


def lab_fdb(lab: Lab) -> list[dict[str, str]]:
    out = subprocess.run(
        ["ip", "netns", "exec", lab.switch, "bridge", "-j", "fdb", "show", "br", "br0"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return list(json.loads(out))
