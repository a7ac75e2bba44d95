"""The status page's connections, counted from accept() on.

carpd accepts them itself rather than through asyncio's create_server: there, a burst
of connections all reach aiohttp before the first of them is counted, a TLS connection
is not counted until its handshake ends (up to a minute), and accept() failing with
EMFILE is logged with a traceback per try, thousands a second. A hostile client could so
use up the file descriptors the adverts need.

Here every accepted socket counts until its file descriptor is closed. Beyond ``limit``
the oldest connection goes (idle or slowloris connections cannot keep the page from its
users), beyond MAX_PER_SOURCE from one address (an IPv6 /64) that address's oldest goes,
and a TLS handshake has HANDSHAKE_TIMEOUT seconds. A connection pushed out is closed
before the next one is accepted, so the server never holds more than ``limit`` + 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from carpd.daemon.seam.ratelimit import RateLimiter

log = logging.getLogger("carpd")

MAX_PER_SOURCE = 16  # a browser opens up to 6 per site; a few tabs and a scraper beside
HANDSHAKE_TIMEOUT = 5.0  # seconds from accept() to a finished TLS handshake
RETRY = 0.5  # seconds before accept() is tried again after EMFILE and the like
ERROR_LOG = 10.0  # seconds between two log lines of a failing accept()
SETTLE = 16  # turns of the loop a pushed-out connection gets to close its socket


@dataclass(eq=False)
class _Conn:
    sock: socket.socket
    source: str
    started: bool = False  # the transport owns the socket: only it may close it
    task: asyncio.Task[None] | None = None
    transport: asyncio.Transport | None = None
    evicted: bool = False

    def closed(self) -> bool:
        return self.sock.fileno() == -1


class Acceptor:
    def __init__(
        self,
        factory: Callable[[], asyncio.BaseProtocol],
        context: ssl.SSLContext | None,
        limit: int,
    ) -> None:
        self.factory = factory
        self.context = context
        self.limit = limit
        self._conns: list[_Conn] = []  # oldest first
        self._loops: list[asyncio.Task[None]] = []
        self._errors = RateLimiter(ERROR_LOG)

    def serve(self, listening: socket.socket) -> None:
        """Accept on ``listening`` (already listening) until close()."""
        listening.setblocking(False)
        self._loops.append(asyncio.get_running_loop().create_task(self._accept(listening)))

    def held(self) -> int:
        self._conns = [c for c in self._conns if not c.closed()]
        return len(self._conns)

    async def close(self) -> None:
        """Stop accepting and drop connections still in their handshake; established
        ones are aiohttp's to close."""
        pending = [c.task for c in self._conns if c.task is not None and not c.task.done()]
        for task in self._loops + pending:
            task.cancel()
        await asyncio.gather(*self._loops, *pending, return_exceptions=True)
        self._loops = []

    async def _accept(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, address = await loop.sock_accept(listening)
            except ConnectionAbortedError:
                continue
            except OSError as e:  # EMFILE, ENFILE, ENOBUFS: wait for some to be freed
                hidden = self._errors.allow("accept", loop.time())
                if hidden is not None:
                    more = f" ({hidden} more since the last time)" if hidden else ""
                    log.warning("web: cannot accept a connection: %s%s", e, more)
                await asyncio.sleep(RETRY)
                continue
            self._admit(sock, address)
            await self._settle()

    def _admit(self, sock: socket.socket, address: tuple[str, int]) -> None:
        sock.setblocking(False)
        source = source_of(address[0])
        self.held()
        live = [c for c in self._conns if not c.evicted]
        same = [c for c in live if c.source == source]
        if len(same) >= MAX_PER_SOURCE:
            self._evict(same[0])
            live.remove(same[0])
        if len(live) >= self.limit:
            self._evict(live[0])
        conn = _Conn(sock, source)
        self._conns.append(conn)
        conn.task = asyncio.get_running_loop().create_task(self._connect(conn))
        conn.task.add_done_callback(lambda _: self._done(conn))

    async def _settle(self) -> None:
        """Give pushed-out connections the few turns of the loop they need to close."""
        for _ in range(SETTLE):
            if all(c.closed() for c in self._conns if c.evicted):
                return
            await asyncio.sleep(0)

    def _evict(self, conn: _Conn) -> None:
        conn.evicted = True
        if conn.transport is not None:
            conn.transport.abort()  # not close(): that waits for a client that never reads
        elif conn.task is not None:
            conn.task.cancel()  # asyncio closes the transport of a handshake it cancels

    async def _connect(self, conn: _Conn) -> None:
        conn.started = True
        loop = asyncio.get_running_loop()
        timeout = HANDSHAKE_TIMEOUT if self.context is not None else None
        with contextlib.suppress(OSError):  # a reset, a failed or timed-out handshake
            transport, _ = await loop.connect_accepted_socket(
                self.factory, conn.sock, ssl=self.context, ssl_handshake_timeout=timeout
            )
            assert isinstance(transport, asyncio.Transport)  # a stream socket's: abort()
            conn.transport = transport

    def _done(self, conn: _Conn) -> None:
        if not conn.started:  # cancelled before it ran: nobody else will close it
            conn.sock.close()


def source_of(address: str) -> str:
    """Who a connection counts against: its address, or its /64 for IPv6 (one host
    usually has the whole /64)."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return address
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
