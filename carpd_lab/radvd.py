"""radvd on a carpd pair, and a Router Advertisement watcher, for the lab.

    python -m carpd_lab.radvd watch IFNAME     one line per RA that reaches IFNAME
    python -m carpd_lab.radvd solicit IFNAME   send one Router Solicitation to ff02::2

Watch lines: ``ra SRC mac=SRC_MAC lifetime=SECONDS`` (flushed, so a LogWatch can wait for
them). SRC is the RA's IPv6 source, the router address a client keeps; the Ethernet
source tells which node sent it, as every node sends from the same link-local VIP.

The radvd of a node runs only while it is MASTER of the vhid that holds the VIP: a
``master`` [[action]] starts it (it daemonizes and holds a lock on its pid file), a
``backup`` [[action]] stops it if that lock is held. radvd.conf names the VIP in
``AdvRASrcAddress``, so RAs leave from it, and a radvd whose node lacks the VIP cannot
send at all.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

from carpd_lab import bounds
from carpd_lab.netlab import Host, LogWatch, pids

ETH_P_IPV6 = 0x86DD
ICMPV6 = 58
ROUTER_SOLICITATION = 133
ROUTER_ADVERTISEMENT = 134

# radvd's shortest allowed periodic interval (radvd.conf(5): MinRtrAdvInterval >= 3 s,
# MaxRtrAdvInterval >= 4 s) and its rate limit for RAs sent to all nodes, solicited ones
# included (MinDelayBetweenRAs, RFC 4861 MIN_DELAY_BETWEEN_RAS, default 3 s), plus the
# random delay of an answer to a solicitation (MAX_RA_DELAY_TIME, 0.5 s).
MIN_RTR_ADV_INTERVAL = 3
MAX_RTR_ADV_INTERVAL = 4
MIN_DELAY_BETWEEN_RAS = 3.0
MAX_RA_DELAY_TIME = 0.5
# From a Router Solicitation until radvd's answer reaches the client: at once if
# unicast (AdvRASolicitedUnicast), else no later than the rate limit and the delay.
ANSWER = MIN_DELAY_BETWEEN_RAS + MAX_RA_DELAY_TIME + bounds.REACTION


def config(ifname: str, vip: str, prefix: str, lifetime: int) -> str:
    """radvd.conf: RAs on ``ifname`` from the link-local ``vip`` only, announcing
    ``prefix`` for SLAAC, with a router lifetime of ``lifetime`` seconds."""
    return (
        f"interface {ifname} {{\n"
        "    AdvSendAdvert on;\n"
        f"    MinRtrAdvInterval {MIN_RTR_ADV_INTERVAL};\n"
        f"    MaxRtrAdvInterval {MAX_RTR_ADV_INTERVAL};\n"
        f"    AdvDefaultLifetime {lifetime};\n"
        f"    AdvRASrcAddress {{ {vip}; }};\n"
        f"    prefix {prefix} {{\n"
        "        AdvOnLink on;\n"
        "        AdvAutonomous on;\n"
        "    };\n"
        "};\n"
    )


def actions(vhid: str, conf: Path, pidfile: Path, log: Path) -> list[dict[str, Any]]:
    """The two [[action]] tables: radvd started on MASTER, stopped on leaving it (and at
    carpd's start, where a ``backup`` action always runs)."""
    start = ["radvd", "-C", str(conf), "-p", str(pidfile), "-m", "logfile", "-l", str(log)]
    # radvd holds an exclusive lock on its pid file while it runs: a stale file (left by
    # a kill -9) is not locked, and no pid from it is signalled.
    stop = f'flock -n {pidfile} true || kill "$(cat {pidfile})"'
    return [
        {"name": "radvd-start", "vhid": vhid, "on": ["master"], "run": start, "timeout": 10},
        {"name": "radvd-stop", "vhid": vhid, "on": ["backup"], "shell": stop, "timeout": 10},
    ]


def running(host: Host) -> list[int]:
    """The pids of the radvd processes in the host's namespace."""
    found = []
    for pid in pids(host):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if comm == "radvd":
            found.append(pid)
    return found


def watch(host: Host, ifname: str = "eth0") -> LogWatch:
    """Watch the RAs that reach the host's ``ifname``, once the watcher listens."""
    proc = host.spawn(
        [sys.executable, "-m", "carpd_lab.radvd", "watch", ifname],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    log = LogWatch(proc.stdout)
    log.wait_for("watching", bounds.START_UP)
    return log


def solicit(host: Host, ifname: str = "eth0") -> None:
    """Send one Router Solicitation from the host, as a client does when it comes up."""
    host.check(sys.executable, "-m", "carpd_lab.radvd", "solicit", ifname)


def parse_ra(frame: bytes) -> tuple[str, str, int] | None:
    """(IPv6 source, Ethernet source, router lifetime) of a Router Advertisement frame
    without extension headers, or None for any other frame."""
    if len(frame) < 14 + 40 + 16 or int.from_bytes(frame[12:14], "big") != ETH_P_IPV6:
        return None
    ip = frame[14:]
    if ip[6] != ICMPV6 or ip[40] != ROUTER_ADVERTISEMENT:
        return None
    src = str(ipaddress.IPv6Address(ip[8:24]))
    lifetime = int.from_bytes(ip[40 + 6 : 40 + 8], "big")
    return src, frame[6:12].hex(":"), lifetime


def _watch(ifname: str) -> int:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IPV6))
    s.bind((ifname, 0))
    print("watching", flush=True)
    while True:
        frame, addr = s.recvfrom(65535)
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        ra = parse_ra(frame)
        if ra is not None:
            src, mac, lifetime = ra
            print(f"ra {src} mac={mac} lifetime={lifetime}", flush=True)


def _solicit(ifname: str) -> int:
    index = socket.if_nametoindex(ifname)
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
    # Type, code, checksum (the kernel's), reserved: RFC 4861 4.1 without options.
    s.sendto(struct.pack("!BBHI", ROUTER_SOLICITATION, 0, 0, 0), ("ff02::2", 0, 0, index))
    s.close()
    return 0


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["watch", "solicit"])
    p.add_argument("ifname")
    args = p.parse_args()
    return _watch(args.ifname) if args.command == "watch" else _solicit(args.ifname)


if __name__ == "__main__":
    sys.exit(main())
