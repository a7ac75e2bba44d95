"""Capture the wire-format test vectors (tests/vectors) from real peers on a lab segment:

    python -m carpd_lab.capture_vectors OUTDIR

Runs ucarp and keepalived from Debian's packages (programs this project did not write) in
network namespaces joined by a bridge, and writes what a third host receives as classic
libpcap files (link type Ethernet), one advert per record, with the kernel's receive
time:

- ``ucarp-v4-vhid7-secret.pcap``: 4 consecutive adverts from the MASTER of two ucarps
  (vhid 7, password ``secret``, 192.0.2.100, advbase 1, preempt): 192.0.2.2 with advskew
  50 starts alone and becomes MASTER, then 192.0.2.1 with advskew 0 hears it and takes
  over. Having heard a peer, its counter is the one it heard plus one, then one more per
  advert (a ucarp that never heard one sends a new random counter every time): the 4
  kept are the first that follow one another so;
- ``keepalived-vrrp3.pcap``: 6 VRRPv3 adverts of one keepalived, 4, 6, 4, 6, 4, 6 (vrid 9,
  priority 200, 192.0.2.200 from 192.0.2.1; vrid 10, priority 200, 2001:db8::200 from the
  link-local address of its MAC, 22:07:69:b8:d6:af, set so that the source is known).

Needs root (namespaces, a packet socket) and the Debian packages ucarp and keepalived.
Everything it starts is removed by its own name or pid on every exit path; documentation
addresses only.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from pyroute2 import NetNS, netns

from carpd_lab import bounds
from carpd_lab.keepalived import KEEPALIVED, Keepalived, instance
from carpd_lab.netlab import Host, Lab, LogWatch, terminate_on_sigterm

UCARP = shutil.which("ucarp") or "/usr/sbin/ucarp"
UCARP_PCAP = "ucarp-v4-vhid7-secret.pcap"
KEEPALIVED_PCAP = "keepalived-vrrp3.pcap"
KEEPALIVED_MAC = "22:07:69:b8:d6:af"  # locally administered: fe80::2007:69ff:feb8:d6af

ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = 35
IPPROTO_CARP = 112  # VRRP's too
UCARP_ADVERTS = 4
KEEPALIVED_ORDER = [4, 6, 4, 6, 4, 6]
# How long a capture may take: its adverts, one a second, plus a start-up's worth.
CAPTURE = len(KEEPALIVED_ORDER) * 2 * 1.0 + bounds.START_UP


def family(frame: bytes) -> int | None:
    """4 or 6 for a CARP or VRRP datagram (IP protocol 112, no IPv6 extension header),
    None for anything else."""
    ethertype = int.from_bytes(frame[12:14], "big")
    if ethertype == 0x0800 and len(frame) >= 34 and frame[23] == IPPROTO_CARP:
        return 4
    if ethertype == 0x86DD and len(frame) >= 54 and frame[20] == IPPROTO_CARP:
        return 6
    return None


class Capture:
    """A packet socket on a lab host's eth0: the frames it receives, kernel-stamped."""

    def __init__(self, host: Host) -> None:
        self.sock = netns.create_socket(
            host.ns, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)
        )
        self.sock.bind(("eth0", 0))  # the name is looked up in the socket's namespace
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.settimeout(0.2)

    def frames(self, timeout: float) -> list[tuple[float, bytes]]:
        """Every frame received until ``timeout`` runs out, with its receive time."""
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with_next = self.next(deadline - time.monotonic())
            if with_next is not None:
                out.append(with_next)
        return out

    def next(self, timeout: float) -> tuple[float, bytes] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                frame, cmsgs, _flags, addr = self.sock.recvmsg(65535, socket.CMSG_SPACE(16))
            except TimeoutError:
                continue
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            for level, kind, data in cmsgs:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("=qq", data[:16])
                    return sec + nsec / 1e9, frame
            return time.time(), frame
        return None

    def take(
        self, wanted: Callable[[list[tuple[float, bytes]]], bool], keep: int, timeout: float
    ) -> list[tuple[float, bytes]]:
        """Adverts (CARP or VRRP frames) as they come, until the last ``keep`` of them
        are ``wanted``; those."""
        seen: list[tuple[float, bytes]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.next(deadline - time.monotonic())
            if got is None or family(got[1]) is None:
                continue
            seen.append(got)
            if len(seen) >= keep and wanted(seen[-keep:]):
                return seen[-keep:]
        raise TimeoutError(f"not the adverts wanted within {timeout} s: {len(seen)} seen")

    def close(self) -> None:
        self.sock.close()


def write_pcap(path: Path, records: list[tuple[float, bytes]]) -> None:
    """Classic libpcap, little-endian, microsecond stamps, link type Ethernet (1)."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for at, frame in records:
        usec = round(at * 1_000_000)
        out += struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(frame), len(frame))
        out += frame
    path.write_bytes(bytes(out))


def segment(lab: Lab) -> Host:
    """The listener, on a bridge that forwards every multicast frame to every port (no
    snooping: the listener joins no group)."""
    no_snooping = ["ip", "link", "set", "br0", "type", "bridge", "mcast_snooping", "0"]
    subprocess.run(["ip", "netns", "exec", lab.switch, *no_snooping], check=True)
    return lab.add_host("listen")


def ucarp(lab: Lab, host: Host, skew: int) -> LogWatch:
    script = lab.tmp / "ucarp-updown.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    address = host.ipv4.split("/")[0] if host.ipv4 else ""
    argv = [UCARP, "-i", "eth0", "-s", address, "-v", "7", "-p", "secret", "-a", "192.0.2.100"]
    argv += ["-u", str(script), "-d", str(script), "-P", "-b", "1", "-k", str(skew), "-f", "none"]
    proc = host.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    return LogWatch(proc.stdout)


def capture_ucarp(out: Path) -> Path:
    with Lab("vectors") as lab:
        listener = segment(lab)
        h1 = lab.add_host("u1", "192.0.2.1/24")
        h2 = lab.add_host("u2", "192.0.2.2/24")
        capture = Capture(listener)
        try:
            # The slower one first, alone: MASTER. Then the preferred one, which hears it
            # and preempts (carpd_lab.bounds: one at a time, no start-up race).
            backup = ucarp(lab, h2, 50)
            was, _ = backup.wait_for("Switching to state: MASTER", bounds.START_UP * 2)
            master = ucarp(lab, h1, 0)
            master.wait_for("Switching to state: BACKUP", bounds.START_UP)
            mark = master.mark()
            takeover = bounds.START_UP + bounds.ucarp_takeover(1, 50)
            master.wait_for("Switching to state: MASTER", takeover, mark)
            backup.wait_for("Switching to state: BACKUP", takeover, was + 1)

            def from_master(frames: list[tuple[float, bytes]]) -> bool:
                """From 192.0.2.1 for vhid 7, its counter (CARP header bytes 8-15) one more
                each time: once it has heard the peer (its first advert as MASTER may
                carry a new random counter)."""
                if not all(f[26:30] == bytes([192, 0, 2, 1]) and f[35] == 7 for _, f in frames):
                    return False
                counters = [int.from_bytes(f[42:50], "big") for _, f in frames]
                return counters == list(range(counters[0], counters[0] + len(frames)))

            records = capture.take(from_master, UCARP_ADVERTS, CAPTURE)
        finally:
            capture.close()
    path = out / UCARP_PCAP
    write_pcap(path, records)
    return path


def capture_keepalived(out: Path) -> Path:
    with Lab("vectors") as lab:
        listener = segment(lab)
        host = lab.add_host("ka", "192.0.2.1/24")
        with NetNS(host.ns) as ipr:  # its MAC, hence its link-local source, fixed
            idx = ipr.link_lookup(ifname="eth0")[0]
            ipr.link("set", index=idx, state="down")
            ipr.link("set", index=idx, address=KEEPALIVED_MAC)
            ipr.link("set", index=idx, state="up")
        capture = Capture(listener)
        try:
            ka = Keepalived(
                lab,
                host,
                [
                    instance("V4", 9, 200, "192.0.2.200/24", 1),
                    instance("V6", 10, 200, "2001:db8::200/64", 1),
                ],
            )
            for name in ("V4", "V6"):
                ka.wait_state(name, "MASTER", bounds.first_master(bounds.vrrp_master_down(1, 200)))

            def alternating(frames: list[tuple[float, bytes]]) -> bool:
                return [family(f) for _, f in frames] == KEEPALIVED_ORDER

            records = capture.take(alternating, len(KEEPALIVED_ORDER), CAPTURE)
        finally:
            capture.close()
    path = out / KEEPALIVED_PCAP
    write_pcap(path, records)
    return path


def main() -> int:
    p = argparse.ArgumentParser(
        prog="python -m carpd_lab.capture_vectors",
        description=textwrap.dedent(__doc__ or "").split("\n\n")[0],
    )
    p.add_argument("outdir", type=Path)
    args = p.parse_args()
    for binary, package in ((UCARP, "ucarp"), (KEEPALIVED, "keepalived")):
        if not Path(binary).exists():
            print(f"needs the Debian package {package}", file=sys.stderr)
            return 1
    args.outdir.mkdir(parents=True, exist_ok=True)
    restore = terminate_on_sigterm()
    try:
        for capture in (capture_ucarp, capture_keepalived):
            path = capture(args.outdir)
            print(f"{path}: {path.stat().st_size} bytes")
    except KeyboardInterrupt:
        return 130
    finally:
        restore()
    return 0


if __name__ == "__main__":
    sys.exit(main())
