"""carpd_lab.arping's frame, read by scapy: an ARP who-has, broadcast."""

from __future__ import annotations

import ipaddress

from scapy.layers.l2 import ARP, Ether

from carpd_lab.arping import request


def test_the_request_asks_everyone_who_has_the_target() -> None:
    mac = bytes.fromhex("020000000001")
    frame = Ether(
        request(mac, ipaddress.IPv4Address("192.0.2.9"), ipaddress.IPv4Address("192.0.2.1"))
    )
    arp = frame[ARP]
    assert frame.dst == "ff:ff:ff:ff:ff:ff" and frame.src == "02:00:00:00:00:01"
    assert (arp.op, arp.hwsrc, arp.psrc, arp.pdst) == (
        1,
        "02:00:00:00:00:01",
        "192.0.2.9",
        "192.0.2.1",
    )
    assert arp.hwdst == "00:00:00:00:00:00"
