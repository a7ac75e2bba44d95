"""The DHCP problem of "CARP and friends" (seed 004), in namespaces.

    client 192.0.2.10 ── LAN br0 ──┬── fw1 eth0 192.0.2.2   (lan vhid 1: 192.0.2.1)
     (gateway 192.0.2.1)           └── fw2 eth0 192.0.2.3
                                       fw1 ext0 ─┐ the same MAC, down unless MASTER
                                       fw2 ext0 ─┴── brisp ── isp eth0 203.0.113.1
    internet 198.51.100.10 ── brnet ── isp net0 198.51.100.1

The ISP runs a real DHCP server (dnsmasq) that leases one address from 203.0.113.50-59
to whoever asks, with itself as the router, and routes to the Internet host. Each
firewall masquerades the LAN behind its external address, and has a [[follow]] ext0 on
the lan vhid: the MASTER brings ext0 up and runs udhcpc on it; the BACKUP keeps ext0
down and routes through the LAN virtual address, i.e. through the peer.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from carpd_lab import bounds
from carpd_lab.cluster import Node, VhidSpec
from carpd_lab.netlab import Host, Lab, pids

LAN_VIP = "192.0.2.1"
CLIENT, INTERNET = "192.0.2.10", "198.51.100.10"
ISP, ISP_NET = "203.0.113.1", "198.51.100.1"
POOL = ("203.0.113.50", "203.0.113.59")
SHARED_MAC = "02:00:5e:00:00:01"  # ext0's on both firewalls
NAT = """
table ip carpd_lab_nat {
    chain postrouting {
        type nat hook postrouting priority srcnat;
        oifname "ext0" masquerade
    }
}
"""
# From ext0 up until the lease is on it: udhcpc's discover and request, answered at once
# by dnsmasq (--no-ping) on the same bridge; a few round trips and two process starts.
LEASE = 3 * bounds.COMMAND


@dataclass
class DhcpProblem:
    lab: Lab
    dhcp: str = "udhcpc"
    client: Host = field(init=False)
    isp: Host = field(init=False)
    internet: Host = field(init=False)
    fw: list[Node] = field(init=False)
    dnsmasq: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        lab = self.lab
        self.client = lab.add_host("client", f"{CLIENT}/24")
        self.isp = lab.add_host("isp", f"{ISP}/24", bridge="brisp")
        lab.add_interface(self.isp, "net0", "brnet", f"{ISP_NET}/24")
        self.isp.check("sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.internet = lab.add_host("internet", f"{INTERNET}/24", bridge="brnet")
        self.internet.check("ip", "route", "add", "default", "via", ISP_NET)
        self.client.check("ip", "route", "add", "default", "via", LAN_VIP)
        self.fw = [self._firewall(n) for n in (1, 2)]

    def _firewall(self, n: int) -> Node:
        lab = self.lab
        host = lab.add_host(f"fw{n}", f"192.0.2.{n + 1}/24")
        # ext0 has no address of its own: the lease is its only one.
        lab.add_interface(host, "ext0", "brisp", None)
        lab.set_link(host, False, "ext0")
        host.check("sysctl", "-qw", "net.ipv4.ip_forward=1")
        host.check("nft", "-f", "-", stdin=NAT)
        spec = VhidSpec(1, (f"{LAN_VIP}/24",), advskew=0 if n == 1 else 100, name="lan")
        node = Node(lab, host, [spec])
        node.arrays["follow"] = [
            {
                "interface": "ext0",
                "vhid": "lan",
                "mac": SHARED_MAC,
                "dhcp": self.dhcp,
                "backup_gateway": LAN_VIP,
            }
        ]
        return node

    def start_isp(self) -> None:
        leases = self.lab.tmp / "dnsmasq.leases"
        argv = [
            "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
            "--no-resolv", "--no-hosts", "--user=root", "--bind-interfaces",
            "--interface=eth0", f"--dhcp-range={POOL[0]},{POOL[1]},255.255.255.0,10m",
            f"--dhcp-option=option:router,{ISP}", f"--dhcp-leasefile={leases}",
            f"--pid-file={self.lab.tmp / 'dnsmasq.pid'}", "--dhcp-authoritative",
            "--log-dhcp", "--log-facility=-",
            # No 3 s ping for an address in use before each new offer: the lab's clients
            # are the only ones.
            "--no-ping",
        ]  # fmt: skip
        self.dnsmasq = self.isp.spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def lease(self, node: Node) -> str | None:
        """ext0's IPv4 address, if it has one."""
        out = node.host.check("ip", "-4", "-o", "addr", "show", "dev", "ext0")
        for line in out.splitlines():
            return line.split()[3].split("/")[0]
        return None

    def wait_lease(self, node: Node, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while (address := self.lease(node)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{node.name}: no lease on ext0 within {timeout:.1f} s; {node.log_tail()}"
                )
            time.sleep(0.02)
        return address

    def link_up(self, node: Node) -> bool:
        out = node.host.check("ip", "-o", "link", "show", "dev", "ext0")
        return "state UP" in out or ",UP" in out.split(">")[0]

    def mac(self, node: Node) -> str:
        out = node.host.check("ip", "-o", "link", "show", "dev", "ext0")
        return out.split("link/ether ")[1].split()[0]

    def commands(self, node: Node) -> list[str]:
        """The names of the processes running on the node."""
        names = []
        for pid in pids(node.host):
            with contextlib.suppress(OSError):
                names.append(Path(f"/proc/{pid}/comm").read_text().strip())
        return names

    def default_route(self, node: Node) -> str:
        return node.host.check("ip", "-4", "route", "show", "default").strip()

    def reaches(self, host: Host, timeout: float) -> float:
        """Ping the Internet host from ``host`` until one answers; the seconds it took."""
        start = time.monotonic()
        deadline = start + timeout
        while True:
            r = host.run(["ping", "-n", "-q", "-c", "1", "-W", "0.2", INTERNET])
            if r.returncode == 0:
                return time.monotonic() - start
            if time.monotonic() > deadline:
                raise TimeoutError(f"{host.name}: {INTERNET} unreachable for {timeout:.1f} s")
