"""ICMP echo at a fixed rate, answered or not: the client of the 10 ms benchmarks.

    python -m carpd_lab.echo TARGET INTERVAL

iputils ping, asked for -i 0.002, sends one probe every 10 ms while its probes go
unanswered (measured in a lab namespace, with -l, -f and -A too), so the outage it sees
lands on a 10 ms grid: the "22 or 32 ms" of the 10 ms crash benchmark were that grid, not
the daemons. This one keeps its schedule through an outage. It prints ping -D's reply
lines (``[STAMP] 64 bytes from TARGET: icmp_seq=N``), the stamp from the kernel
(SO_TIMESTAMPNS), so carpd_lab.probe.Pinger reads either.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import sys
import threading
import time

SO_TIMESTAMPNS = 35
PAYLOAD = bytes(56)  # ping's default size: 64 bytes with the ICMP header


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def request(ident: int, seq: int) -> bytes:
    head = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    return struct.pack("!BBHHH", 8, 0, checksum(head + PAYLOAD), ident, seq) + PAYLOAD


def replies(sock: socket.socket, ident: int, target: str) -> None:
    while True:
        data, anc, _, _ = sock.recvmsg(2048, 64)
        ihl = (data[0] & 0x0F) * 4
        kind, _, _, rid, seq = struct.unpack("!BBHHH", data[ihl : ihl + 8])
        if kind != 0 or rid != ident:
            continue
        stamp = time.time()
        for level, what, raw in anc:
            if level == socket.SOL_SOCKET and what == SO_TIMESTAMPNS and len(raw) >= 16:
                sec, nsec = struct.unpack("=qq", raw[:16])
                stamp = sec + nsec / 1e9
        print(f"[{stamp:.6f}] {len(data) - ihl} bytes from {target}: icmp_seq={seq}", flush=True)


def main() -> int:
    target, interval = sys.argv[1], float(sys.argv[2])
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    ident = os.getpid() & 0xFFFF
    threading.Thread(target=replies, args=(sock, ident, target), daemon=True).start()
    seq, due = 1, time.monotonic()
    while True:
        # A send refused (no route or neighbour yet) is a probe lost, not the end.
        with contextlib.suppress(OSError):
            sock.sendto(request(ident, seq & 0xFFFF), (target, 0))
        seq += 1
        due += interval
        time.sleep(max(0.0, due - time.monotonic()))


if __name__ == "__main__":
    sys.exit(main())
