"""A balanced address in namespaces: N nodes running one [[pool]], a client with many
source addresses, and which node answers each source.

    client 192.0.2.10 (sources 203.0.113.1-254 on lo) ── br0 ──┬── n1 192.0.2.2
                                                               ├── n2 192.0.2.3
                                                               └── n3 192.0.2.4
    pool "web" 192.0.2.80: vhids 1..N, node k the best (advskew 0) for vhid k

In ``arp`` mode the grain is the ARP requester, so instead of one client with many
sources there are CLIENTS namespaces, 192.0.2.100 and up, one source each.

Each node runs a tiny TCP service on port 7000 that answers its own name. The nodes
route the client's sources back through it.

    python -m carpd_lab.balance serve NAME        # on a node
    python -m carpd_lab.balance probe VIP FIRST LAST   # on the client: JSON {source: name}
    python -m carpd_lab.balance sink RATE         # a node's capacity: RATE bytes/s at most
                                                  # (prints "TIME BYTES_IN STREAMS_ACCEPTED")
    python -m carpd_lab.balance send VIP FIRST LAST SECONDS   # a stream from each source
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from carpd_lab import bounds
from carpd_lab.cluster import Node
from carpd_lab.netlab import Host, Lab, LogWatch

VIP = "192.0.2.80"
PORT = 7000
SOURCES = ("203.0.113.1", "203.0.113.254")
CONNECT = 0.5  # seconds a probe's connection may take on a quiet lab bridge
CLIENTS = 64  # arp mode: ARP requesters


def skews(n: int, count: int) -> list[str]:
    """Node n (1-based) is the best for vhid n; the others follow in a ring, so each vhid
    has one clear order of preference."""
    return [f"{v}:{((v - n) % count) * 100}" for v in range(1, count + 1)]


@dataclass
class Pool:
    lab: Lab
    count: int = 2
    mode: str = "ip"
    client: Host = field(init=False)
    clients: list[Host] = field(default_factory=list)  # arp mode
    nodes: list[Node] = field(init=False)
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.client = self.lab.add_host("client", "192.0.2.10/24")
        first, last = (ipaddress.IPv4Address(a) for a in SOURCES)
        script = "".join(
            f"address add {ipaddress.IPv4Address(i)}/32 dev lo\n"
            for i in range(int(first), int(last) + 1)
        )
        r = self.client.run(["ip", "-batch", "-"], input=script)
        assert r.returncode == 0, r.stderr
        if self.mode == "arp":
            self.clients = [
                self.lab.add_host(f"c{i}", f"192.0.2.{100 + i}/24") for i in range(CLIENTS)
            ]
        self.nodes = []
        for n in range(1, self.count + 1):
            host = self.lab.add_host(f"n{n}", f"192.0.2.{n + 1}/24")
            host.check("ip", "route", "add", "203.0.113.0/24", "via", "192.0.2.10")
            node = Node(self.lab, host, [], global_={"preempt": True})
            node.arrays["pool"] = [
                {
                    "name": "web",
                    "carpdev": "eth0",
                    "address": f"{VIP}/24",
                    "nodes": skews(n, self.count),
                    "pass": "lab-pool",
                    "mode": self.mode,
                }
            ]
            self.nodes.append(node)
            self.serve(node)

    def serve(self, node: Node) -> None:
        """The node's service (again, after a crash took it down with the node)."""
        serve = [sys.executable, "-m", "carpd_lab.balance", "serve", node.name]
        proc = node.host.spawn(serve, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        LogWatch(proc.stdout).wait_for("^listening$", bounds.START_UP)
        self.servers.append(proc)

    @property
    def master_down(self) -> float:
        """The longest master-down interval in the pool: a vhid's worst backup's."""
        return bounds.carp_master_down(1, (self.count - 1) * 100)

    def start(self) -> None:
        """One node after the other: each takes its own vhid (preempt) and serves its
        bucket before the next starts."""
        for n, node in enumerate(self.nodes, start=1):
            node.start()
            node.wait_state("MASTER", f"web-{n}", bounds.first_master(self.master_down))
            node.wait_ready()
        for n, node in enumerate(self.nodes, start=1):
            self.wait_serving(node, [n - 1])

    def wait_serving(self, node: Node, buckets: list[int], timeout: float = bounds.COMMAND) -> None:
        deadline = time.monotonic() + timeout
        while True:
            pools = node.status().get("pools") or {}
            if pools.get("web", {}).get("serving") == buckets:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{node.name} serves {pools}, not buckets {buckets}")
            time.sleep(0.05)

    def probe(self) -> dict[str, str | None]:
        """Which node answers each source (None: none did)."""
        if self.mode == "arp":
            return self._probe_clients()
        argv = [sys.executable, "-m", "carpd_lab.balance", "probe", VIP, *SOURCES]
        r = self.client.run(argv, timeout=60)
        assert r.returncode == 0, r.stderr
        answers: dict[str, str | None] = json.loads(r.stdout)
        return answers

    def _probe_clients(self) -> dict[str, str | None]:
        """One connection from each client namespace (bash's /dev/tcp: no interpreter
        start per client), all at once."""
        line = f"exec 3<>/dev/tcp/{VIP}/{PORT} && head -1 <&3"
        # Each client's limit covers its start (bash and head: CLIENTS of them at once on
        # a loaded machine) as well as the connection.
        limit = bounds.COMMAND + CONNECT * 2
        procs = {
            str(c.ipv4).split("/")[0]: c.spawn(
                ["timeout", str(limit), "bash", "-c", line], stdout=subprocess.PIPE
            )
            for c in self.clients
        }
        out: dict[str, str | None] = {}
        for address, proc in procs.items():
            text, _ = proc.communicate(timeout=bounds.COMMAND + limit)
            out[address] = text.decode().strip() or None
        return out


async def _serve(name: str) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(name.encode() + b"\n")
        await writer.drain()
        writer.close()

    # A probe connects from every source at once: after a crash one node takes all 254
    # SYNs, and asyncio's default backlog (100) dropped the rest while a loaded machine
    # accepted slowly (their retransmission comes after the probe's CONNECT).
    server = await asyncio.start_server(answer, "0.0.0.0", PORT, backlog=1024)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


async def _probe(vip: str, first: str, last: str) -> dict[str, str | None]:
    a, b = int(ipaddress.IPv4Address(first)), int(ipaddress.IPv4Address(last))
    sources = [str(ipaddress.IPv4Address(i)) for i in range(a, b + 1)]

    async def one(src: str) -> str | None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(vip, PORT, local_addr=(src, 0)), CONNECT
            )
            line = await asyncio.wait_for(reader.readline(), CONNECT)
            writer.close()
            return line.decode().strip() or None
        except (OSError, TimeoutError):
            return None

    found = await asyncio.gather(*(one(s) for s in sources))
    return dict(zip(sources, found, strict=True))


SINK_PORT = 7001
REPORT = 0.25  # a sink prints what it took in and the streams it accepted (cumulative)


async def _sink(rate: float) -> None:
    """Take in data from any number of streams, at most ``rate`` bytes/s in all: the
    node's capacity (a CPU-bound service would be the same), the bottleneck of the
    benchmark. A token bucket shared by every connection. Reports ``TIME TOTAL ACCEPTED``:
    the bytes taken in and the streams accepted so far."""
    loop = asyncio.get_running_loop()
    total = 0
    budget = 0.0
    last = loop.time()
    accepted = 0

    async def take(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        try:
            await _take(reader)
        finally:
            writer.close()

    async def _take(reader: asyncio.StreamReader) -> None:
        nonlocal total, budget, last
        while True:
            now = loop.time()
            budget = min(rate * 0.05, budget + (now - last) * rate)
            last = now
            if budget < 1024:
                await asyncio.sleep(0.005)
                continue
            try:
                data = await reader.read(int(budget))
            except ConnectionError:
                return
            if not data:
                return
            budget -= len(data)
            total += len(data)

    server = await asyncio.start_server(take, "0.0.0.0", SINK_PORT)
    print("listening", flush=True)
    async with server:
        while True:
            await asyncio.sleep(REPORT)
            print(f"{loop.time():.3f} {total} {accepted}", flush=True)


async def _send(vip: str, first: str, last: str, seconds: float) -> None:
    a, b = int(ipaddress.IPv4Address(first)), int(ipaddress.IPv4Address(last))
    chunk = b"\0" * 65536

    async def stream(src: str) -> None:
        # Bounded: a connect left unanswered, or a stream whose window stays shut (a
        # sink at its rate), must not keep the sender past its time.
        end = asyncio.get_running_loop().time() + seconds
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout_at(end):
                _, writer = await asyncio.open_connection(vip, SINK_PORT, local_addr=(src, 0))
                try:
                    while True:
                        writer.write(chunk)
                        await writer.drain()
                finally:
                    writer.close()

    await asyncio.gather(*(stream(str(ipaddress.IPv4Address(i))) for i in range(a, b + 1)))


def main() -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("name")
    q = sub.add_parser("probe")
    q.add_argument("vip")
    q.add_argument("first")
    q.add_argument("last")
    k = sub.add_parser("sink")
    k.add_argument("rate", type=float)
    d = sub.add_parser("send")
    d.add_argument("vip")
    d.add_argument("first")
    d.add_argument("last")
    d.add_argument("seconds", type=float)
    args: Any = p.parse_args()
    if args.cmd == "sink":
        asyncio.run(_sink(args.rate))
        return 0
    if args.cmd == "send":
        asyncio.run(_send(args.vip, args.first, args.last, args.seconds))
        return 0
    if args.cmd == "serve":
        socket.setdefaulttimeout(5)
        asyncio.run(_serve(args.name))
        return 0
    print(json.dumps(asyncio.run(_probe(args.vip, args.first, args.last))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
