"""A MASTER keeps what it owns (issue 28), against the real kernel: another program's
`ip addr del` or flush on the MASTER is undone and announced, an address added by hand
on the BACKUP is taken away, and a MASTER that cannot hold its addresses demotes itself
so that the peer takes over."""

from __future__ import annotations

from carpd_lab import bounds
from carpd_lab.cluster import Node, VhidSpec, start_master_first
from carpd_lab.netlab import Lab
from carpd_lab.probe import Pinger

VIPS = ("192.0.2.100/24", "2001:db8::100/64")


def pair(lab: Lab, preempt: bool = False) -> tuple[Node, Node]:
    h1 = lab.add_host("n1", "192.0.2.1/24", "2001:db8::1/64")
    h2 = lab.add_host("n2", "192.0.2.2/24", "2001:db8::2/64")
    extra = {"preempt": preempt}
    n1 = Node(lab, h1, [VhidSpec(vhid=1, advskew=0, addresses=VIPS, extra=extra)])
    n2 = Node(lab, h2, [VhidSpec(vhid=1, advskew=100, addresses=VIPS, extra=extra)])
    start_master_first(n1, n2)
    h1.wait_address("192.0.2.100")
    return n1, n2


def test_an_address_deleted_on_the_master_is_put_back_and_the_client_reaches_it(
    lab: Lab,
) -> None:
    n1, n2 = pair(lab)
    client = lab.add_host("cl", "192.0.2.9/24", "2001:db8::9/64")
    ping = Pinger(client, "192.0.2.100")
    ping.wait_reply()
    mark = n1.mark()
    n1.host.check("ip", "addr", "del", "192.0.2.100/24", "dev", "eth0")
    n1.wait_log(
        r"carp1: 192\.0\.2\.100/24 removed from eth0 by another program: put back",
        timeout=bounds.COMMAND,
        start=mark,
    )
    n1.host.wait_address("192.0.2.100")
    since = ping.mark()
    ping.log.wait_for(r"bytes from", timeout=bounds.COMMAND, start=since)
    ping.stop()
    kept = n1.status()["addresses"]["vhids"]["carp1"]
    assert (kept["restored"], kept["failed"]) == (1, 0)
    # No role moved: the peer never noticed.
    assert n1.states() == {"carp1": "MASTER"} and n2.states() == {"carp1": "BACKUP"}


def test_a_flush_of_the_masters_carpdev_is_undone_for_both_families(lab: Lab) -> None:
    n1, _ = pair(lab)
    mark = n1.mark()
    # NetworkManager or networkd reconfiguring the link: every address goes, the
    # node's own too (that one is not carpd's to put back).
    n1.host.check("ip", "addr", "flush", "dev", "eth0")
    n1.wait_log(r"carp1: .* removed from eth0 by another program: put back", start=mark,
                timeout=bounds.COMMAND)  # fmt: skip
    for vip in ("192.0.2.100", "2001:db8::100"):
        n1.host.wait_address(vip)
    assert not n1.host.has_address("192.0.2.1")
    # Both families put back; `ip addr flush` dumps and deletes again until a round finds
    # nothing, so it may take a VIP away once more after carpd put it back.
    assert n1.status()["addresses"]["vhids"]["carp1"]["restored"] >= 2


def test_an_address_added_by_hand_on_the_backup_is_taken_away(lab: Lab) -> None:
    _, n2 = pair(lab)
    mark = n2.mark()
    n2.host.check("ip", "addr", "add", "192.0.2.100/24", "dev", "eth0")
    n2.wait_log(r"carp1: 192\.0\.2\.100/24 on eth0 while BACKUP: taken away", start=mark,
                timeout=bounds.COMMAND)  # fmt: skip
    n2.host.wait_address("192.0.2.100", present=False)
    assert n2.status()["addresses"]["vhids"]["carp1"]["removed"] == 1


def test_a_master_that_cannot_hold_its_ipv6_address_hands_over(lab: Lab) -> None:
    """IPv6 turned off on the MASTER's carpdev (its IPv6 addresses go, and none can be
    added): it cannot put its address back, so it demotes itself, and the peer (with
    preempt, as OPNsense sets it) takes over at its next demoted advert."""
    n1, n2 = pair(lab, preempt=True)
    mark1, mark2 = n1.mark(), n2.mark()
    n1.host.check("sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1")
    n1.wait_log(r"carp: demoted by \d+ to \d+ \(addresses lost: carp1: cannot put back ",
                start=mark1, timeout=bounds.COMMAND)  # fmt: skip
    n2.wait_state("MASTER", start=mark2, timeout=bounds.takeover(n2.master_down))
    n1.wait_state("BACKUP", start=mark1, timeout=bounds.COMMAND)
    status = n1.status()
    assert status["demotion"]["addresses lost"] > 0
    assert status["addresses"]["demoted"].startswith("carp1: cannot put back 2001:db8::100/64")
    n2.host.wait_address("192.0.2.100")


def test_a_masters_virtual_mac_interface_deleted_or_set_down_is_made_again(lab: Lab) -> None:
    h1 = lab.add_host("n1", "192.0.2.1/24", "2001:db8::1/64")
    client = lab.add_host("cl", "192.0.2.9/24", "2001:db8::9/64")
    n1 = Node(lab, h1, [VhidSpec(vhid=1, addresses=VIPS, extra={"vmac": True})])
    n1.start()
    n1.wait_state("MASTER", timeout=bounds.first_master(n1.master_down))

    def reached() -> None:
        # -w: echo requests go out until one is answered (the address may still be on
        # its way back: the interface is made first, then its addresses).
        for vip in ("192.0.2.100", "2001:db8::100"):
            client.check("ping", "-c", "1", "-w", str(int(2 * bounds.COMMAND)), vip)

    reached()
    mark = n1.mark()
    h1.check("ip", "link", "del", "carp1")
    n1.wait_log(r"carp1: virtual MAC interface carp1 deleted by another program: made again",
                start=mark, timeout=bounds.COMMAND)  # fmt: skip
    reached()
    h1.check("ip", "link", "set", "carp1", "down")  # which also flushes its IPv6 address
    h1.wait_address("2001:db8::100", present=False)
    reached()
    assert n1.states() == {"carp1": "MASTER"}
