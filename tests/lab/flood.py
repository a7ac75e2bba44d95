"""Flood a lab segment with forged and replayed CARP adverts, at a steady rate.

Run as (inside `ip netns exec`):

    python flood.py ATTACKER MASTER VHID RATE SECONDS [CAPTURED_HEX_FILE]

ATTACKER is this host's own address, MASTER the address of the node to impersonate.
Sends, in rotation, RATE datagrams a second for SECONDS:

- a better advert (advskew 0) signed with the wrong password, from ATTACKER and, spoofed,
  from MASTER;
- the "infinite" bow-out advert, forged (no valid HMAC), spoofed from MASTER: it would
  make a BACKUP take over at once if it were believed;
- an advert from MASTER with the highest counter there is and a wrong HMAC: if a receiver
  recorded counters before checking the HMAC, the master's genuine adverts would be
  refused as replays from then on;
- with CAPTURED_HEX_FILE (a genuine advert from carpd_lab.sniff --save-carp-from): that
  advert replayed as a bow-out and with advskew 0 (the HMAC does not cover either).

Prints ``flooding`` when it starts and ``sent N`` when it is done.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import sys
import time

from carpd.core.auth import Authenticator
from carpd.core.packet import (
    CARP_GROUP_V4,
    IPPROTO_CARP,
    CarpPacket,
    build_ipv4,
    decode_carp,
    parse_ipv4,
)

TICK = 0.01  # send in small bursts, 100 a second


def datagrams(
    attacker: ipaddress.IPv4Address, master: ipaddress.IPv4Address, vhid: int, captured: str
) -> list[bytes]:
    wrong = Authenticator("not-the-password", vhid, [ipaddress.ip_address("192.0.2.100")])
    top = 2**64 - 1
    better = CarpPacket(vhid, 1, 0, 7, wrong.sign((7).to_bytes(8, "big"))).encode()
    bow_out = CarpPacket(vhid, 255, 255, 8, bytes(20)).encode()
    poison = CarpPacket(vhid, 1, 0, top, wrong.sign(top.to_bytes(8, "big"))).encode()
    out = [
        build_ipv4(attacker, CARP_GROUP_V4, better, 1),
        build_ipv4(master, CARP_GROUP_V4, better, 2),
        build_ipv4(master, CARP_GROUP_V4, bow_out, 3),
        build_ipv4(master, CARP_GROUP_V4, poison, 4),
    ]
    if captured:
        with open(captured) as f:
            ip4 = parse_ipv4(bytes.fromhex(f.read()))
        genuine = decode_carp(ip4.payload)
        for i, (advbase, advskew) in enumerate(((255, 255), (1, 0))):
            pkt = dataclasses.replace(genuine, advbase=advbase, advskew=advskew)
            out.append(build_ipv4(ip4.src, ip4.dst, pkt.encode(), 5 + i))
    return out


def main() -> int:
    attacker = ipaddress.IPv4Address(sys.argv[1])
    master = ipaddress.IPv4Address(sys.argv[2])
    vhid, rate, seconds = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    kinds = datagrams(attacker, master, vhid, sys.argv[6] if len(sys.argv) > 6 else "")
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_CARP)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
    per_tick = max(1, round(rate * TICK))
    sent = 0
    print("flooding", flush=True)
    start = time.monotonic()
    ticks = round(seconds / TICK)
    for tick in range(ticks):
        for _ in range(per_tick):
            try:
                s.sendto(kinds[sent % len(kinds)], (str(CARP_GROUP_V4), 0))
            except BlockingIOError:  # a full queue: this one is not sent, go on
                continue
            sent += 1
        # Pace the bursts on a fixed schedule, so the rate does not drift.
        delay = start + (tick + 1) * TICK - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    print(f"sent {sent} in {time.monotonic() - start:.2f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
