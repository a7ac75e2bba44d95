"""One ARP request, broadcast: ``python -m carpd_lab.arping IFNAME SENDER_IP TARGET_IP``.

A lab barrier that does not depend on the neighbour cache. ``ping`` asks for a MAC only
when it has none, and a host can get one without asking: a peer's own ARP probe of it
(its entry for us gone stale) leaves our kernel an entry for that peer. This always asks.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys

from carpd.core.announce import BROADCAST_MAC, ETH_P_ARP


def request(mac: bytes, sender: ipaddress.IPv4Address, target: ipaddress.IPv4Address) -> bytes:
    """Who has ``target``? Tell ``sender`` (at ``mac``)."""
    eth = BROADCAST_MAC + mac + ETH_P_ARP.to_bytes(2, "big")
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
    return eth + arp + mac + sender.packed + bytes(6) + target.packed


def main() -> int:
    ifname, sender, target = sys.argv[1:4]
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((ifname, 0))
        mac = sock.getsockname()[4]
        sock.send(request(mac, ipaddress.IPv4Address(sender), ipaddress.IPv4Address(target)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
