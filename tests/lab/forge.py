"""Send malformed and forged CARP adverts from inside a lab namespace.

Run as: python forge.py SRC VHID  (inside `ip netns exec`); prints one line per kind sent.
"""

from __future__ import annotations

import ipaddress
import socket
import sys

from carpd.core.auth import Authenticator
from carpd.core.packet import CARP_GROUP_V4, CarpPacket, build_ipv4
from carpd.core.vrrp import VrrpPacket


def main() -> None:
    src = ipaddress.IPv4Address(sys.argv[1])
    vhid = int(sys.argv[2])
    vip = [ipaddress.ip_address("192.0.2.100")]
    wrong = Authenticator("not-the-password", vhid, vip)
    counter = 42
    good_shape = CarpPacket(vhid, 1, 0, counter, wrong.sign(counter.to_bytes(8, "big")))
    payload = good_shape.encode()
    kinds = {
        # A better advert (advskew 0) signed with the wrong password.
        "bad_hmac": build_ipv4(src, CARP_GROUP_V4, payload, 1),
        "bad_ttl": build_ipv4(src, CARP_GROUP_V4, payload, 2, ttl=64),
        "bad_checksum": build_ipv4(src, CARP_GROUP_V4, payload[:6] + b"\x00\x00" + payload[8:], 3),
        # Version 4: neither CARP (2) nor VRRP (3).
        "bad_version": build_ipv4(src, CARP_GROUP_V4, bytes([0x41]) + payload[1:], 4),
        "short": build_ipv4(src, CARP_GROUP_V4, payload[:20], 5),
        "bad_length": build_ipv4(src, CARP_GROUP_V4, payload + b"junk", 6),
        "unknown_vhid": build_ipv4(
            src,
            CARP_GROUP_V4,
            CarpPacket(vhid + 1, 1, 0, counter, wrong.sign(b"\0" * 8)).encode(),
            7,
        ),
        # A genuine-looking VRRPv3 advert for our vhid: a VRRP router on the same number.
        "vrrp_clash": build_ipv4(
            src,
            CARP_GROUP_V4,
            VrrpPacket(vhid, 100, 100, tuple(vip)).encode(src, CARP_GROUP_V4),  # type: ignore[arg-type]
            9,
        ),
        # The infinite advert, forged: must not make the BACKUP take over.
        "bad_hmac_bow_out": build_ipv4(
            src, CARP_GROUP_V4, CarpPacket(vhid, 255, 255, counter, bytes(20)).encode(), 8
        ),
    }
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
    for kind, datagram in kinds.items():
        for _ in range(5):
            s.sendto(datagram, (str(CARP_GROUP_V4), 0))
        print(kind, flush=True)


if __name__ == "__main__":
    main()
