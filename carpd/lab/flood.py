"""Flood a segment with forged CARP adverts (right vhid, wrong HMAC, best advskew).

    python -m carpd.lab.flood SRC VHID RATE SECONDS

Sends RATE packets per second (0: as fast as it can) for SECONDS from a raw socket on
eth0 and prints how many it sent. SRC may be IPv4 or IPv6 (an address of eth0's, for
IPv6). Used by the benchmark and the lab, inside a lab namespace only.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import time

from carpd.core.packet import (
    CARP_GROUP_V4,
    CARP_GROUP_V6,
    CARP_TTL,
    IPPROTO_CARP,
    CarpPacket,
    build_ipv4,
)


def main() -> int:
    src = ipaddress.ip_address(sys.argv[1])
    vhid, rate, seconds = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    payload = CarpPacket(vhid, 1, 0, 1, bytes(20)).encode()  # an HMAC of zeros
    if isinstance(src, ipaddress.IPv4Address):
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_CARP)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        datagram = build_ipv4(src, CARP_GROUP_V4, payload, 1)
        dst: tuple[str, int] | tuple[str, int, int, int] = (str(CARP_GROUP_V4), 0)
    else:  # the kernel writes the IPv6 header; the source is bound
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_CARP)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, CARP_TTL)
        s.bind((str(src), 0))
        datagram = payload
        dst = (str(CARP_GROUP_V6), 0, 0, socket.if_nametoindex("eth0"))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
    start = time.perf_counter()
    sent = 0
    while (now := time.perf_counter() - start) < seconds:
        due = int(now * rate) if rate else sent + 1000  # paced, never ahead of the rate
        while sent < due:
            try:  # noqa: SIM105 - the hot loop: no context manager per packet
                s.sendto(datagram, dst)
            except OSError:
                pass  # a full queue: the flood goes on
            sent += 1
        time.sleep(0.0005)
    print(f"sent {sent} in {time.perf_counter() - start:.2f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
