"""Long-lived flows through a firewall pair, to see which survive a failover.

``python -m carpd_lab.flows serve --port P`` echoes TCP and UDP on port P and prints a
JSON line per TCP connection accepted (with the source address and port it saw) and per
connection lost. ``python -m carpd_lab.flows client --server A --port P --tcp N ...``
opens N TCP connections (``--active`` of them send a numbered 8-byte record every
``--interval`` seconds, the rest stay idle) and a UDP flow, prints ``{"ready": N}``, then
reads commands on stdin, one per line:

- ``mark T``: T (CLOCK_MONOTONIC, shared by every namespace) is the moment of a crash.
  Once every sending connection, and the UDP flow, has had the echo of a record it sent
  at or after T, the client prints ``{"resumed": <seconds>, "udp": <seconds>}``: only the
  new path can have carried those.
- ``report``: each idle connection sends one record and waits ``--probe`` seconds for
  its echo; then the client prints a summary: connections still working, lost (reset,
  closed or silent), their errors, and per sending connection the time from T until
  data flowed again.

It never reconnects: a connection that broke stays broken, which is what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any, cast

RECORD = struct.Struct("!Q")  # a sequence number; its send time stays with the sender


def emit(**event: Any) -> None:
    print(json.dumps(event), flush=True)


# -- the server -----------------------------------------------------------------------


class _UdpEcho(asyncio.DatagramProtocol):
    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(data, addr)


async def serve(port: int) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[:2]
        emit(accept=peer)
        error = None
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError as e:
            error = type(e).__name__
        emit(closed=peer, error=error)
        writer.close()

    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(_UdpEcho, local_addr=("0.0.0.0", port))
    server = await asyncio.start_server(echo, "0.0.0.0", port, backlog=4096)
    emit(listening=port)
    async with server:
        await server.serve_forever()


# -- the client -----------------------------------------------------------------------


@dataclass
class Flow:
    """One connection's records: when each was sent, and the echoes of those sent
    after the mark."""

    sent: dict[int, float] = field(default_factory=dict)
    next_seq: int = 0
    resumed: float | None = None  # the first echo of a record sent at or after the mark
    error: str | None = None

    def record(self) -> bytes:
        seq = self.next_seq
        self.next_seq += 1
        self.sent[seq] = time.monotonic()
        return RECORD.pack(seq)

    def echoed(self, seq: int, mark: float | None) -> None:
        sent = self.sent.pop(seq, None)
        if mark is not None and self.resumed is None and sent is not None and sent >= mark:
            self.resumed = time.monotonic()


@dataclass
class Client:
    server: str
    port: int
    interval: float
    mark: float | None = None
    tcp: list[tuple[Flow, asyncio.StreamReader, asyncio.StreamWriter]] = field(default_factory=list)
    active: int = 0
    udp: Flow = field(default_factory=Flow)
    idle_echo: dict[int, asyncio.Event] = field(default_factory=dict)
    announced: bool = False

    async def open(self, count: int) -> None:
        for i in range(count):
            reader, writer = await asyncio.open_connection(self.server, self.port)
            flow = Flow()
            writer.write(flow.record())
            await writer.drain()
            RECORD.unpack(await reader.readexactly(RECORD.size))  # the path works
            flow.sent.clear()
            self.tcp.append((flow, reader, writer))
            self.idle_echo[i] = asyncio.Event()

    async def send(self, flow: Flow, writer: asyncio.StreamWriter) -> None:
        while flow.error is None:
            writer.write(flow.record())
            await asyncio.sleep(self.interval)

    async def receive(self, i: int, flow: Flow, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                (seq,) = RECORD.unpack(await reader.readexactly(RECORD.size))
                flow.echoed(seq, self.mark)
                self.idle_echo[i].set()
                self.check_resumed()
        except (OSError, asyncio.IncompleteReadError) as e:
            flow.error = type(e).__name__

    def check_resumed(self) -> None:
        if self.mark is None or self.announced:
            return
        sending = [f for f, _, _ in self.tcp[: self.active]]
        if all(f.resumed is not None for f in sending) and self.udp.resumed is not None:
            self.announced = True
            last = max((f.resumed for f in sending if f.resumed is not None), default=self.mark)
            emit(resumed=round(last - self.mark, 3), udp=round(self.udp.resumed - self.mark, 3))

    async def probe(self, i: int, timeout: float) -> bool:
        flow, _, writer = self.tcp[i]
        if flow.error is not None:
            return False
        self.idle_echo[i].clear()
        writer.write(flow.record())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle_echo[i].wait(), timeout)
            return True
        flow.error = flow.error or "silent"
        return False

    async def report(self, probe_timeout: float) -> dict[str, Any]:
        idle = range(self.active, len(self.tcp))
        probes = await asyncio.gather(*(self.probe(i, probe_timeout) for i in idle))
        sending = [f for f, _, _ in self.tcp[: self.active]]
        resumed = [
            round(f.resumed - self.mark, 3) if f.resumed is not None and self.mark else None
            for f in sending
        ]
        working = sum(1 for f in sending if f.error is None and f.resumed is not None)
        if self.mark is None:
            working = sum(1 for f in sending if f.error is None)
        errors: dict[str, int] = {}
        for f, _, _ in self.tcp:
            if f.error is not None:
                errors[f.error] = errors.get(f.error, 0) + 1
        return {
            "connections": len(self.tcp),
            "working": working + sum(probes),
            "sending_working": working,
            "idle_working": sum(probes),
            "errors": errors,
            "resumed": resumed,
        }


class _UdpClient(asyncio.DatagramProtocol):
    def __init__(self, client: Client) -> None:
        self.client = client

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) == RECORD.size:
            self.client.udp.echoed(RECORD.unpack(data)[0], self.client.mark)
            self.client.check_resumed()


async def client(args: argparse.Namespace) -> None:
    c = Client(args.server, args.port, args.interval, active=min(args.active, args.tcp))
    await c.open(args.tcp)
    loop = asyncio.get_running_loop()
    udp, _ = await loop.create_datagram_endpoint(
        lambda: _UdpClient(c), remote_addr=(args.server, args.port)
    )
    tasks = [asyncio.ensure_future(c.receive(i, f, r)) for i, (f, r, _) in enumerate(c.tcp)]
    tasks += [asyncio.ensure_future(c.send(f, w)) for f, _, w in c.tcp[: c.active]]

    async def udp_send() -> None:
        while True:
            with contextlib.suppress(OSError):  # no route for a moment: keep trying
                udp.sendto(c.udp.record())
            await asyncio.sleep(args.interval)

    tasks.append(asyncio.ensure_future(udp_send()))
    src = c.tcp[0][2].get_extra_info("sockname")[:2] if c.tcp else None
    emit(ready=len(c.tcp), first_source=src)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().split():
        if line[0] == "mark":  # a new mark: a new wait for data after it
            c.mark = float(line[1])
            c.announced = False
            for flow in [c.udp, *(f for f, _, _ in c.tcp)]:
                flow.resumed = None
        elif line[0] == "report":
            emit(report=await c.report(args.probe))
    for task in tasks:
        task.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m carpd_lab.flows")
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    c = sub.add_parser("client")
    c.add_argument("--server", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--tcp", type=int, default=1, help="TCP connections to open")
    c.add_argument("--active", type=int, default=1, help="how many of them keep sending")
    c.add_argument("--interval", type=float, default=0.02, help="seconds between records")
    c.add_argument("--probe", type=float, default=5.0, help="an idle one's echo deadline")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port) if args.mode == "serve" else client(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
