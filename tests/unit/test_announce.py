"""Gratuitous ARP and unsolicited NA frames, read back by scapy (an independent codec)."""

from __future__ import annotations

import ipaddress

from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr
from scapy.layers.l2 import ARP, Ether

from carpd.core.announce import gratuitous_arp, unsolicited_na

MAC = bytes.fromhex("00005e000101")


def test_a_gratuitous_arp_names_the_address_as_sender_and_target() -> None:
    frame = Ether(gratuitous_arp(MAC, ipaddress.IPv4Address("192.0.2.100")))
    assert frame.dst == "ff:ff:ff:ff:ff:ff" and frame.src == "00:00:5e:00:01:01"
    arp = frame[ARP]
    assert (arp.op, arp.psrc, arp.pdst, arp.hwsrc) == (1, "192.0.2.100", "192.0.2.100", frame.src)


def test_an_unsolicited_na_overrides_and_says_router_only_when_the_node_forwards() -> None:
    vip = ipaddress.IPv6Address("2001:db8::100")
    host = ICMPv6ND_NA(unsolicited_na(MAC, vip))
    router = ICMPv6ND_NA(unsolicited_na(MAC, vip, router=True))
    for na in (host, router):
        assert (na.type, na.tgt, na.S, na.O) == (136, str(vip), 0, 1)
        assert na[ICMPv6NDOptDstLLAddr].lladdr == "00:00:5e:00:01:01"
    assert (host.R, router.R) == (0, 1)
