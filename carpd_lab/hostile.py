"""A hostile HTTP client for the status page, run inside a lab namespace:

    python -m carpd_lab.hostile HOST PORT --idle N --slow N --huge N --seconds S

- idle: connections that send nothing at all;
- slow (slowloris): a request line, then one header byte a second, never finishing;
- huge: requests with a 1 MiB header line, over and over.

Prints ``{"opened": N}`` once its connections are open, and at the end a summary of how
many it could open, how many the server closed on it, and the answers to huge headers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
from collections import Counter
from typing import Any


async def idle(host: str, port: int, stats: Counter[str], stop: asyncio.Event) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        stats["refused"] += 1
        return
    stats["opened"] += 1
    done = asyncio.ensure_future(reader.read())  # the server closing on us ends it
    await asyncio.wait([done, asyncio.ensure_future(stop.wait())], return_when="FIRST_COMPLETED")
    if done.done():
        stats["closed by server"] += 1
    writer.close()


async def slow(host: str, port: int, stats: Counter[str], stop: asyncio.Event) -> None:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        stats["refused"] += 1
        return
    stats["opened"] += 1
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: lab\r\nX-Slow: ")
        while not stop.is_set():
            writer.write(b"a")
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    except OSError:
        stats["closed by server"] += 1
    writer.close()


async def huge(host: str, port: int, stats: Counter[str], stop: asyncio.Event) -> None:
    header = b"X-Huge: " + b"h" * (1 << 20) + b"\r\n"
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"GET / HTTP/1.1\r\nHost: lab\r\n" + header + b"\r\n")
            await writer.drain()
            status = (await reader.readline()).decode(errors="replace").split(" ")[1:2]
            stats[f"huge answered {status[0] if status else 'nothing'}"] += 1
            writer.close()
        except OSError:
            stats["huge cut off"] += 1
        await asyncio.sleep(0.05)


async def run(args: argparse.Namespace) -> None:
    stats: Counter[str] = Counter()
    stop = asyncio.Event()

    def start(kind: Any, count: int) -> list[asyncio.Future[None]]:
        return [
            asyncio.ensure_future(kind(args.host, args.port, stats, stop)) for _ in range(count)
        ]

    tasks = start(idle, args.idle) + start(slow, args.slow)
    await asyncio.sleep(1.0)  # let them connect
    print(json.dumps({"opened": stats["opened"]}), flush=True)
    tasks += start(huge, args.huge)
    await asyncio.sleep(args.seconds)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"summary": dict(stats)}), flush=True)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m carpd_lab.hostile")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--idle", type=int, default=1000)
    p.add_argument("--slow", type=int, default=1000)
    p.add_argument("--huge", type=int, default=4)
    p.add_argument("--seconds", type=float, default=20.0)
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.idle + args.slow + args.huge + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
