"""Flood a segment with forged CARP adverts (right vhid, wrong HMAC, best advskew).

    python -m carpd_lab.flood SRC VHID RATE SECONDS [varied]

Sends RATE packets per second (0: as fast as it can) for SECONDS on eth0 and prints how
many it sent and by which sender: ``sent N in S s (trafgen)`` or ``sent N in S s (socket,
M tried)``; N counts only the packets the sender handed to the kernel. IPv4 floods go
through trafgen (netsniff-ng: a packet ring, some 800,000 packets a second from one core
here, where Python manages about 140,000); IPv6 ones, and IPv4 ones where trafgen is
missing, from a raw socket (SRC: an address of eth0's, for IPv6). Used by the benchmark
(which refuses a flood not sent by trafgen) and the lab, inside a lab namespace only.
``varied`` (trafgen only): every advert with its own random counter (and the checksum
to match), so no two are alike; otherwise one frame is sent over and over.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from carpd.core.packet import (
    CARP_GROUP_V4,
    CARP_GROUP_V6,
    CARP_TTL,
    IPPROTO_CARP,
    CarpPacket,
    build_ipv4,
)

TRAFGEN = "/usr/sbin/trafgen"


# In an Ethernet frame of an IPv4 CARP advert (no IP options): the CARP header, its
# checksum and the low half of its counter.
CARP_AT = 14 + 20
CARP_CSUM_AT = CARP_AT + 6
COUNTER_LOW_AT = CARP_AT + 12


def trafgen(frame: bytes, rate: int, seconds: float, *, varied: bool = False) -> int:
    """``frame`` at ``rate`` a second (0: at once) for ``seconds``; how many were sent.
    ``varied``: ``frame`` is a CARP advert whose counter's low 4 bytes trafgen draws at
    random per packet, the CARP checksum computed to match. Never tunes the host: not
    its socket memory, not its IRQ affinity."""
    parts = [f"0x{b:02x}" for b in frame]
    if varied:
        end = CARP_AT + 36 - 1
        parts[COUNTER_LOW_AT : COUNTER_LOW_AT + 4] = ["drnd(4)"]
        parts[CARP_CSUM_AT : CARP_CSUM_AT + 2] = [f"csumip({CARP_AT}, {end})"]
    with tempfile.NamedTemporaryFile("w", suffix=".cfg") as cfg:
        cfg.write("{ " + ", ".join(parts) + " }\n")
        cfg.flush()
        argv = [TRAFGEN, "--no-sock-mem", "--notouch-irq", "-C", "-P", "1"]
        argv += ["--dev", "eth0", "--conf", cfg.name]
        if rate:
            argv += ["--rate", f"{rate}pps"]
        # Its own process group: trafgen forks a sender, and both must hear the SIGINT.
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGINT)  # it prints what it sent on the way out
            try:
                out, _ = proc.communicate(timeout=10)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
    m = re.search(r"(\d+) packets outgoing", out)
    if m is None:
        raise SystemExit(f"trafgen: {out.strip()}")
    return int(m.group(1))


def main() -> int:
    src = ipaddress.ip_address(sys.argv[1])
    vhid, rate, seconds = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    varied = sys.argv[5:] == ["varied"]
    payload = CarpPacket(vhid, 1, 0, 1, bytes(20)).encode()  # an HMAC of zeros
    if isinstance(src, ipaddress.IPv4Address) and os.path.exists(TRAFGEN):
        mac = bytes.fromhex(Path("/sys/class/net/eth0/address").read_text().replace(":", ""))
        ether = bytes.fromhex("01005e000012") + mac + b"\x08\x00"  # to 224.0.0.18
        started = time.perf_counter()
        frame = ether + build_ipv4(src, CARP_GROUP_V4, payload, 1)
        sent = trafgen(frame, rate, seconds, varied=varied)
        print(f"sent {sent} in {time.perf_counter() - started:.2f} s (trafgen)", flush=True)
        return 0
    if varied:
        raise SystemExit("varied adverts need trafgen and an IPv4 source")
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
    sent = tried = 0
    while (now := time.perf_counter() - start) < seconds:
        due = int(now * rate) if rate else tried + 1000  # paced, never ahead of the rate
        while tried < due:
            tried += 1
            try:
                s.sendto(datagram, dst)
            except OSError:
                continue  # a full queue: not sent, and the flood goes on
            sent += 1
        time.sleep(0.0005)
    took = time.perf_counter() - start
    print(f"sent {sent} in {took:.2f} s (socket, {tried} tried)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
