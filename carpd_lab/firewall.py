"""A firewall pair in namespaces, the seeds' picture: connections through it, a crash.

    client 192.0.2.10 ── LAN br0 ──┬── fw1 eth0 192.0.2.2   (lan vhid 1: 192.0.2.1)
     (gateway 192.0.2.1)           └── fw2 eth0 192.0.2.3
    server 198.51.100.10 ─ WAN ──┬──── fw1 wan0 198.51.100.2 (wan vhid 2: 198.51.100.1)
                                 └──── fw2 wan0 198.51.100.3
    fw1 sync0 203.0.113.1 ── sync ── fw2 sync0 203.0.113.2   (conntrackd, FTFW over UDP)

Each firewall forwards with a strict stateful nftables policy (established and related
accepted, new only from the LAN, the rest dropped, its own input too), SNATs the LAN to
the WAN virtual address, and has ``nf_conntrack_tcp_loose = 0``: with the kernel's
default of 1 a firewall picks mid-stream TCP up as established, so even unsynced
connections would "survive" and the test would prove nothing. carpd drives conntrackd
(``[conntrackd]``), with a conntrackd.conf written by ``carpd --conntrackd-conf``.

The client and the server cap TCP's retransmission backoff at TCP_RTO_MAX seconds
(``net.ipv4.tcp_rto_max_ms``, Linux 6.15): otherwise when data flows again depends on
where the doubling backoff happens to be when the new master is ready (3 s after the
crash, then 6.2 s), not on the failover.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from carpd_lab import bounds
from carpd_lab.cluster import Node, VhidSpec
from carpd_lab.conntrackd_stats import peer_connections
from carpd_lab.keepalived import Keepalived, instance
from carpd_lab.netlab import Host, Lab, LabError, LogWatch, carpd_argv, pids

PRIMARY_BACKUP = "/usr/share/doc/conntrackd/examples/sync/primary-backup.sh"
NOTIFY = (("master", "primary"), ("backup", "backup"), ("fault", "fault"))
PORT = 7000  # the server's TCP and UDP echo
# conntrackd -s: the size of the peer's table (the lab reads it as an operator would)
EXTERNAL = re.compile(r"cache external:\s*\ncurrent active connections:\s*(\d+)")
TCP_RTO_MAX = 1.0  # seconds, on the client and the server
# A TCP entry's original direction in conntrack -L and conntrackd -e.
ORIGINAL = re.compile(r"^tcp\s.*?src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+)")
# How long a firewall waits for the peer's table (pfsync: 60 s). "bulk done" needs a first
# look at the cache, one that sees the peer's table, and BULK_QUIET of no change: about
# five looks, each BULK_POLL apart and a `conntrackd -s` process (carpd.daemon.effects.
# conntrack's BULK_QUIET 3 s, BULK_POLL 1 s).
BULK_TIMEOUT = 3.0 + 5 * (1.0 + bounds.COMMAND)

LAN_VIP, WAN_VIP = "192.0.2.1", "198.51.100.1"
CLIENT, SERVER = "192.0.2.10", "198.51.100.10"

RULESET = """
table inet carpd_lab_fw {
    counter invalid {
        comment "packets without a known connection: mid-stream TCP of a flow not synced"
    }
    chain input {
        type filter hook input priority filter; policy drop;
        iif "lo" accept
        ct state established,related accept
        ct state invalid counter name invalid drop
        meta l4proto 112 accept comment "CARP and VRRP adverts"
        iifname "sync0" udp dport %(port)d accept comment "conntrackd"
        meta l4proto ipv6-icmp accept
    }
    chain forward {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        ct state invalid counter name invalid drop
        iifname "eth0" oifname "wan0" ct state new accept
    }
}
table ip carpd_lab_nat {
    chain postrouting {
        type nat hook postrouting priority srcnat;
        oifname "wan0" ip saddr 192.0.2.0/24 snat to %(vip)s
    }
}
"""


@dataclass
class Flows:
    """The client's and the server's flows processes and what they print."""

    client: subprocess.Popen[bytes]
    client_log: LogWatch
    server_log: LogWatch

    def command(self, line: str) -> None:
        assert self.client.stdin is not None
        self.client.stdin.write(line.encode() + b"\n")
        self.client.stdin.flush()

    def mark(self, t: float) -> int:
        """Data sent from ``t`` (CLOCK_MONOTONIC) on is awaited; for wait_resumed."""
        start = self.client_log.mark()
        self.command(f"mark {t!r}")
        return start

    def wait_resumed(self, timeout: float, start: int = 0) -> dict[str, float]:
        """Until every sending connection, and the UDP flow, carried data sent after the
        mark; {"resumed": s, "udp": s} counted from the mark."""
        _, line = self.client_log.wait_for(r'^\{"resumed"', timeout, start)
        result: dict[str, float] = json.loads(line)
        return result

    def report(self, timeout: float) -> dict[str, Any]:
        start = self.client_log.mark()
        self.command("report")
        _, line = self.client_log.wait_for(r'^\{"report"', timeout, start)
        result: dict[str, Any] = json.loads(line)["report"]
        return result

    def server_events(self, key: str) -> list[Any]:
        return [json.loads(x)[key] for x in self.server_log.lines if f'"{key}"' in x]


@dataclass
class FirewallPair:
    lab: Lab
    sync: bool = True  # conntrackd on; False: the control, nothing syncs the table
    # keepalived: the canonical keepalived pair instead (benchmark): a sync group whose
    # notify scripts run conntrack-tools' own primary-backup.sh, same conntrackd.conf.
    daemon: Literal["carpd", "keepalived"] = "carpd"
    rto_max: float | None = TCP_RTO_MAX  # None: the kernel's backoff, uncapped
    # [conntrackd] max_entries (the table conntrackd.conf is sized for; None: the default)
    max_entries: int | None = None
    # [conntrackd] external_cache = false: the backup's conntrackd writes the peer's
    # connections straight into its kernel table (DisableExternalCache On), no commit
    direct: bool = False
    client: Host = field(init=False)
    server: Host = field(init=False)
    fw: list[Node] = field(init=False)  # carpd's nodes (their config: conntrackd.conf)
    keepalived: list[Keepalived] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        lab = self.lab
        self.client = lab.add_host("client", f"{CLIENT}/24")
        self.server = lab.add_host("server", f"{SERVER}/24", bridge="brwan")
        self.fw = [self._firewall(n) for n in (1, 2)]
        self.client.check("ip", "route", "add", "default", "via", LAN_VIP)
        for host in (self.client, self.server):
            if self.rto_max is not None:
                ms = str(int(self.rto_max * 1000))
                host.check("sysctl", "-qw", f"net.ipv4.tcp_rto_max_ms={ms}")

    def _firewall(self, n: int) -> Node:
        lab = self.lab
        name = f"fw{n}"
        host = lab.add_host(name, f"192.0.2.{n + 1}/24")
        lab.add_interface(host, "wan0", "brwan", f"198.51.100.{n + 1}/24")
        lab.add_interface(host, "sync0", "brsync", f"203.0.113.{n}/24")
        host.check("nft", "-f", "-", stdin=RULESET % {"port": 3780, "vip": WAN_VIP})
        # After the ruleset: the conntrack sysctls exist once conntrack is in use.
        strict = ("net.ipv4.ip_forward=1", "net.netfilter.nf_conntrack_tcp_loose=0")
        host.check("sysctl", "-qw", *strict)
        advskew = 0 if n == 1 else 100
        vhids = [
            VhidSpec(1, (f"{LAN_VIP}/24",), advskew=advskew, name="lan"),
            VhidSpec(2, (f"{WAN_VIP}/24",), advskew=advskew, name="wan", carpdev="wan0"),
        ]
        node = Node(lab, host, vhids, global_={"preempt": True})
        conf = lab.tmp / f"{name}-conntrackd.conf"
        node.tables["conntrackd"] = {
            "enabled": self.sync,
            "config": str(conf),
            "interface": "sync0",
            "address": f"203.0.113.{n}",
            "peer": f"203.0.113.{3 - n}",
            "run_dir": str(lab.tmp / f"{name}-conntrackd"),
            "bulk_timeout": BULK_TIMEOUT,
        }
        if self.max_entries is not None:
            node.tables["conntrackd"]["max_entries"] = self.max_entries
        if self.direct:
            node.tables["conntrackd"]["external_cache"] = False
        node.write_config()
        conf.write_text(host.check(*carpd_argv("--config", str(node.config), "--conntrackd-conf")))
        return node

    # -- starting -------------------------------------------------------------------

    def start(self, echo: bool = False) -> None:
        """fw1 first, MASTER of both vhids and done with its bulk resync; then fw2, BACKUP
        of both with the table it has been sent.

        A node waits for its peer's table (demoted) until it has heard the peer's
        conntrackd: fw2's conntrackd is started first (as systemd would), so fw1 is done
        with its bulk before fw2's carpd starts, and fw2 can never be the less demoted
        one for a moment and take over."""
        fw1, fw2 = self.fw
        if self.sync:
            conf = fw2.tables["conntrackd"]
            Path(conf["run_dir"]).mkdir()
            fw2.host.check("conntrackd", "-C", conf["config"], "-d")
        if self.daemon == "keepalived":
            self._start_keepalived()
            return
        fw1.start(echo)
        for spec in fw1.vhids:
            fw1.wait_state("MASTER", spec.ifname, bounds.first_master(spec.master_down))
        if self.sync:
            fw1.wait_log(r"\(state sync bulk done\)", BULK_TIMEOUT + bounds.START_UP)
        fw2.start(echo)
        for spec in fw2.vhids:
            fw2.wait_state("BACKUP", spec.ifname, bounds.START_UP)
        if self.sync:
            fw2.wait_log(r"\(state sync bulk done\)", BULK_TIMEOUT + bounds.START_UP)
        fw2.wait_ready()

    def _start_keepalived(self) -> None:
        """The same two vhids as VRRPv3 instances (priority 250 and 156: the backup's
        skew time is carpd's advskew 100, 100/256 s) in a sync group, as conntrack-tools'
        doc/sync/keepalived.conf has it."""
        for n, node in enumerate(self.fw, start=1):
            ct = node.tables["conntrackd"]
            script = self.lab.tmp / f"{node.name}-primary-backup.sh"
            text = Path(PRIMARY_BACKUP).read_text()
            text = text.replace("/etc/conntrackd/conntrackd.conf", ct["config"])
            text = text.replace("/var/lock/conntrack.lock", f"{ct['run_dir']}/conntrackd.lock")
            script.write_text(text)
            script.chmod(0o755)
            Path(ct["run_dir"]).mkdir(exist_ok=True)
            prio = 250 if n == 1 else 156
            group = (
                "vrrp_sync_group G1 {\n    group {\n        lan\n        wan\n    }\n"
                + "".join(f'    notify_{event} "{script} {arg}"\n' for event, arg in NOTIFY)
                + "}\n"
            )
            instances = [
                instance("lan", 1, prio, f"{LAN_VIP}/24", 1, "eth0"),
                instance("wan", 2, prio, f"{WAN_VIP}/24", 1, "wan0"),
            ]
            ka = Keepalived(self.lab, node.host, instances, group)
            self.keepalived.append(ka)
            state = "MASTER" if n == 1 else "BACKUP"
            limit = bounds.first_master(bounds.vrrp_master_down(1, prio))
            for name in ("lan", "wan"):
                ka.wait_state(name, state, limit)

    def flows(self, tcp: int = 1, active: int = 1, interval: float = 0.02) -> Flows:
        """The server, then the client's connections through the master; returns once
        every connection has carried a record."""
        server = self.server.spawn(
            [sys.executable, "-m", "carpd_lab.flows", "serve", "--port", str(PORT)],
            stdout=subprocess.PIPE,
        )
        assert server.stdout is not None
        server_log = LogWatch(server.stdout)
        server_log.wait_for('"listening"', bounds.START_UP)
        argv = [sys.executable, "-m", "carpd_lab.flows", "client", "--server", SERVER]
        argv += ["--port", str(PORT), "--tcp", str(tcp), "--active", str(active)]
        argv += ["--interval", str(interval)]
        client = self.client.spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert client.stdout is not None
        client_log = LogWatch(client.stdout)
        # One connection after another, each a handshake and a record through the pair.
        client_log.wait_for('"ready"', bounds.START_UP + tcp * 0.05)
        return Flows(client, client_log, server_log)

    # -- failures ---------------------------------------------------------------------

    def crash(self, node: Node) -> float:
        """A crash (Lab.crash); returns the moment the links were cut."""
        t = self.lab.crash(node.host)
        if node.proc is not None:
            node.proc.wait(timeout=bounds.COMMAND)
        return t

    def revive(self, node: Node) -> None:
        """Cables back in (after a crash); carpd is started again by the caller."""
        self.lab.cut(node.host, on=False)

    def conntrackd_pid(self, node: Node) -> int:
        for pid in pids(node.host):
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == "conntrackd":
                        return pid
            except OSError:
                continue
        raise LabError(f"{node.name}: no conntrackd running")

    def wait_synced(self, count: int, timeout: float) -> None:
        """Until fw2's conntrackd holds at least ``count`` of fw1's connections (in its
        external cache, or without one injected into fw2's kernel table)."""
        conf = self.fw[1].tables["conntrackd"]["config"]
        deadline = time.monotonic() + timeout
        while True:
            out = self.fw[1].host.check("conntrackd", "-C", conf, "-s")
            have = peer_connections(out)  # without an external cache: what it injected
            if have >= count:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"fw2 has {have} of {count} connections")
            time.sleep(0.1)

    def watch_addresses(self, node: Node) -> LogWatch:
        """``ip -ts monitor address`` on a firewall: when each address came and went, for
        address_added."""
        proc = node.host.spawn(["ip", "-ts", "monitor", "address"], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        watch = LogWatch(proc.stdout)
        # It listens once it has seen an address of its own come: one more every
        # REACTION until it does (it may not have subscribed when the first came).
        deadline = time.monotonic() + bounds.COMMAND
        for n in range(2, 255):
            node.host.check("ip", "address", "add", f"127.0.0.{n}/8", "dev", "lo")
            try:
                watch.wait_for(rf"inet 127\.0\.0\.{n}/", bounds.REACTION)
                return watch
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
        raise LabError(f"{node.name}: ip monitor never saw an address come")

    def address_added(self, watch: LogWatch, address: str, timeout: float, start: int = 0) -> float:
        """The wall-clock time at which ``address`` was added (ip -ts's stamp)."""
        _, line = watch.wait_for(rf"\] \d+: \S+\s+inet {re.escape(address)}/", timeout, start)
        stamp = line[1 : line.index("]")]
        return datetime.fromisoformat(stamp).timestamp()

    def fill(self, node: Node, count: int) -> None:
        """``count`` more established, SNATed TCP connections in the node's table, in one
        burst (``conntrack -R``; see fill_lines)."""
        node.host.check("conntrack", "-R", "-", stdin=fill_lines(count))

    def tcp_connections(self, node: Node, external: bool = False) -> set[tuple[str, ...]]:
        """The TCP connections (original direction: source, destination, ports) in the
        node's kernel table, or with ``external`` in its conntrackd's external cache (the
        peer's, as it would be committed)."""
        if external:
            conf = node.tables["conntrackd"]["config"]
            out = node.host.check("conntrackd", "-C", conf, "-e", "ct")
        else:
            out = node.host.check("conntrack", "-L", "-p", "tcp")
        return {m.groups() for m in map(ORIGINAL.search, out.splitlines()) if m is not None}

    def invalid(self, node: Node) -> int:
        """Packets the firewall dropped as not belonging to any connection it knows."""
        out = node.host.check("nft", "-j", "list", "counter", "inet", "carpd_lab_fw", "invalid")
        for item in json.loads(out)["nftables"]:
            if "counter" in item:
                return int(item["counter"]["packets"])
        raise LabError(f"{node.name}: no invalid counter")

    def conntrack_entries(self, node: Node) -> str:
        """The kernel's connection table on a firewall (conntrack -L)."""
        return node.host.check("conntrack", "-L")


@contextmanager
def started(lab: Lab, direct: bool = False) -> Iterator[FirewallPair]:
    """A started pair for a test; each firewall's carpd log printed on the way out
    (pytest shows it only when the test failed)."""
    pair = FirewallPair(lab, direct=direct)
    try:
        pair.start()
        yield pair
    finally:
        for node in pair.fw:
            print(f"--- {node.name}'s log", *(node.log.lines if node.log else []), sep="\n")


def fill_lines(count: int, first: int = 0) -> str:
    """``conntrack -R`` input for ``count`` established TCP connections from the LAN to
    WAN servers, SNATed to the WAN virtual address (the port kept): ballast for a table of
    a real firewall's size, none of them the flows' (servers 198.51.100.20 on, port 443).
    Entry i: client 192.0.2.(64 + i % 64), port 1024 + i % 60000, server 198.51.100.(20 +
    i // 60000): unique in both directions up to 3.6 million."""
    out = []
    for i in range(first, first + count):
        server, port = f"198.51.100.{20 + i // 60000}", 1024 + i % 60000
        out.append(
            f"-I -p tcp -s 192.0.2.{64 + i % 64} -d {server} --sport {port} --dport 443 "
            f"-r {server} -q {WAN_VIP} --reply-port-src 443 --reply-port-dst {port} "
            "--state ESTABLISHED -t 432000 -u SEEN_REPLY,ASSURED\n"
        )
    return "".join(out)


def failover_limit(backup: Node) -> float:
    """From a crash until data flows again through the backup: its takeover bound, one
    capped retransmission of the client's (TCP_RTO_MAX), and the commit (a helper
    process, conntrackd -c, before the addresses come up)."""
    return bounds.takeover(backup.master_down) + TCP_RTO_MAX + bounds.COMMAND
