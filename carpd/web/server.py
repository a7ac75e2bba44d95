"""The status page, /api/status and /metrics, served by carpd itself (aiohttp).

It reads the daemon through the same seam as carpctl: ``view()`` for what it shows, and
the control socket's command handlers for its buttons (maintenance, a vhid down or up,
"Temporarily disable CARP": every vhid down, not kept across a restart).

Who may do what:
- reading (GET, HEAD) through a loopback address (from one, to one carpd listens on):
  anyone who can reach it there and names this host in ``Host`` (a loopback address,
  localhost: a DNS-rebinding page sends its own name);
- reading through any other address, and every POST: an HTTP basic user of
  ``users_file``; every other method: nobody;
- every POST also carries the CSRF token of the page it came from (``X-CSRF-Token``,
  which a cross-site form cannot set) and, if the browser sends one, a same-origin
  ``Origin``; ``read_only`` refuses every POST.

A slow or hostile client must never delay an advert. The server shares the protocol's
event loop, so it only does short, bounded work there: request lines and headers are
capped (8 KiB each, 16 KiB bodies), password checks run in a worker thread, and at most
``max_connections`` connections are kept, counted from accept() on (a new one beyond that
pushes out the oldest, so idle or slowloris connections cannot hold the page, let alone
the daemon's file descriptors, forever; carpd.web.accept).
"""

from __future__ import annotations

import base64
import hashlib
import html
import ipaddress
import logging
import re
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from carpd.config.model import IPAddr, WebConfig
from carpd.daemon.seam.ratelimit import RateLimiter
from carpd.daemon.seam.view import NodeView, to_json
from carpd.web.accept import Acceptor, source_of
from carpd.web.auth import Authenticator, Busy, load_users
from carpd.web.metrics import registry

log = logging.getLogger("carpd")

Handler = Callable[[dict[str, Any]], Any]
MAX_BODY = 16 * 1024
MAX_LINE = 8190  # request line and each header, as aiohttp's defaults, said out loud
KEEPALIVE = 15.0  # seconds an idle keep-alive connection is kept
BAD_REQUEST_LOG = 10.0  # seconds between two log lines of malformed requests
BACKLOG = 128  # connections the kernel completes before carpd accepts them
USER = web.RequestKey("user", str)  # who the request proved to be ("": nobody)
READS = ("GET", "HEAD")
METHODS = (*READS, "POST")


class WebError(Exception):
    pass


class WebServer:
    def __init__(
        self, cfg: WebConfig, view: Callable[[], NodeView], handlers: dict[str, Handler]
    ) -> None:
        self.cfg = cfg
        self.view = view
        self.handlers = handlers
        users: dict[str, str] = {}
        if cfg.users_file is not None:
            try:
                users = load_users(cfg.users_file)
            except (OSError, ValueError) as e:
                raise WebError(f"web.users_file: {e}") from None
        self.auth = Authenticator(users)
        self.metrics = registry(view)
        self._runner: web.AppRunner | None = None
        self._acceptor: Acceptor | None = None
        self._socks: dict[tuple[str, int], socket.socket] = {}  # what a reload may take over
        self.page = resources.files("carpd.web").joinpath("page.html").read_text()
        # The page's own inline script, by its hash: no other script runs, injected or not.
        scripts = re.findall(r"<script>(.*?)</script>", self.page, re.DOTALL)
        hashes = " ".join(f"'sha256-{_sha256(js)}'" for js in scripts)
        self.csp = (
            f"default-src 'self'; style-src 'unsafe-inline'; script-src {hashes}; "
            "base-uri 'none'; frame-ancestors 'none'"
        )

    def url(self, host: IPAddr) -> str:
        scheme = "https" if self.cfg.tls_cert else "http"
        shown = f"[{host}]" if host.version == 6 else str(host)
        return f"{scheme}://{shown}:{self.cfg.port}/"

    def same_users(self) -> bool:
        """Does ``users_file`` still hold the users this server checks against? (A
        reload that keeps [web] as it is starts it afresh when a user was added or
        removed, or when the file cannot be read: then the new one refuses the reload.)"""
        if self.cfg.users_file is None:
            return True
        try:
            return load_users(self.cfg.users_file) == self.auth.users
        except (OSError, ValueError):
            return False

    async def start(self, inherit: WebServer | None = None) -> None:
        """Listen on every address of ``listen``, or on none (WebError). A socket that
        ``inherit`` (the server a reload replaces) listens on already is shared, not bound
        again, so the page never stops answering there and the port cannot be lost."""
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_BODY)
        app.on_response_prepare.append(self._secure)
        app.router.add_get("/", self._page)
        app.router.add_get("/login", self._login)
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/api/cluster", self._cluster)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post("/api/maintenance", self._maintenance)
        app.router.add_post("/api/carp/{action:enable|disable}", self._carp)
        app.router.add_post("/api/vhid/{name}/{action:up|down}", self._vhid)
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            keepalive_timeout=KEEPALIVE,
            max_line_size=MAX_LINE,
            max_field_size=MAX_LINE,
            logger=_ServerLog(),
        )
        await runner.setup()
        context = None
        if self.cfg.tls_cert is not None and self.cfg.tls_key is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                context.load_cert_chain(self.cfg.tls_cert, self.cfg.tls_key)
            except (OSError, ssl.SSLError) as e:
                await runner.cleanup()
                raise WebError(f"web.tls_cert / web.tls_key: {e}") from None
        server = runner.server
        assert server is not None
        socks: dict[tuple[str, int], socket.socket] = {}
        for host in self.cfg.listen:
            key = (str(host), self.cfg.port)
            old = inherit._socks.get(key) if inherit is not None else None
            try:
                socks[key] = old.dup() if old is not None else _bind(host, self.cfg.port)
                socks[key].listen(BACKLOG)  # fails on a socket bound, not listening, elsewhere
            except OSError as e:
                for sock in socks.values():
                    sock.close()
                await runner.cleanup()
                raise WebError(
                    f"web: cannot listen on {self.url(host)}: {e.strerror or e}"
                ) from None
        acceptor = Acceptor(server, context, self.cfg.max_connections)
        for sock in socks.values():
            acceptor.serve(sock)
        self._acceptor, self._socks = acceptor, socks
        self._runner = runner
        if inherit is not None:  # a page opened before the reload keeps working buttons
            self.auth.secret = inherit.auth.secret
        log.info("web: status page on %s", ", ".join(self.url(h) for h in self.cfg.listen))

    async def close(self) -> None:
        if self._acceptor is not None:
            await self._acceptor.close()
            self._acceptor = None
        for sock in self._socks.values():
            sock.close()
        self._socks = {}
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.auth.close()

    # -- who may do what ------------------------------------------------------------

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.method not in METHODS:  # no handler sees another method
            return _refuse(405, f"{request.method} is not allowed", {"Allow": ", ".join(METHODS)})
        try:
            user = await self.auth.user(
                request.headers.get("Authorization"),
                source=source_of(request.remote or ""),
                alive=lambda: request.transport is not None and not request.transport.is_closing(),
            )
        except Busy as e:
            return _refuse(e.status, str(e), {"Retry-After": str(e.retry_after)})
        request[USER] = user or ""
        if request.method in READS:  # HEAD is a read too: it runs the same handler
            if request.path == "/login" or user is not None:
                return await handler(request)
            # Free reading only from a loopback address to one: nothing that reached
            # another address carpd listens on, whatever its source says...
            if not (_loopback(request.remote) and _loopback(_local_address(request))):
                return _challenge("reading from elsewhere than this host needs a user")
            # ...and only by this host's name: a page of another site whose name now
            # resolves to 127.0.0.1 (DNS rebinding) sends its own name.
            host = request.headers.get("Host")
            if host is not None and not self._our_host(host):
                return _refuse(421, f"Host {host!r} is not this host: use 127.0.0.1 or localhost")
            return await handler(request)
        if self.cfg.read_only:
            return _refuse(403, "read-only: web.read_only = true")
        if user is None:
            return _challenge("every change needs a user (web.users_file)")
        if not self.auth.csrf_ok(user, request.headers.get("X-CSRF-Token")):
            return _refuse(403, "the CSRF token is missing or wrong: use the page")
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            return _refuse(403, f"cross-site request from {origin} refused")
        path = _printable(request.path)  # decoded: %0a would start a forged log line
        log.warning("web: %s %s by %s from %s", request.method, path, user, request.remote)
        return await handler(request)

    def _our_host(self, host: str) -> bool:
        """Is ``host`` (a Host header) a loopback address, localhost, or an address of
        ``listen``, with or without a port?"""
        if host.startswith("["):
            name = host[1 : host.find("]")]
        else:
            name = host.partition(":")[0] if host.count(":") == 1 else host
        name = name.lower().rstrip(".")
        return name == "localhost" or _loopback(name) or name in {str(a) for a in self.cfg.listen}

    async def _secure(self, request: web.Request, response: web.StreamResponse) -> None:
        """Headers for every answer, errors included."""
        response.headers["X-Content-Type-Options"] = "nosniff"
        if self.cfg.tls_cert is not None:  # browsers ignore it for a bare IP address
            response.headers["Strict-Transport-Security"] = "max-age=31536000"

    # -- pages ------------------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.Response:
        user = request.get(USER) or None
        meta = {
            "user": user or "",
            "csrf": self.auth.csrf(user) if user else "",
            "read-only": "1" if self.cfg.read_only else "",
            "users": "1" if self.auth.users else "",
        }
        head = "".join(
            f'<meta name="carpd-{k}" content="{html.escape(v, quote=True)}">'
            for k, v in meta.items()
        )
        body = self.page.replace("<!--META-->", head)
        return web.Response(
            text=body,
            content_type="text/html",
            headers={
                "Content-Security-Policy": self.csp,
                "X-Frame-Options": "DENY",
                "Cache-Control": "no-store",
            },
        )

    async def _login(self, request: web.Request) -> web.StreamResponse:
        """The browser asks for a user here (and then keeps sending it)."""
        if not request.get(USER):
            return _challenge("log in to use the buttons")
        raise web.HTTPFound("/")

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(to_json(self.view()), headers={"Cache-Control": "no-store"})

    async def _cluster(self, request: web.Request) -> web.Response:
        """The cluster view (carpd.cluster.verdict) from the status and the peers as
        last read: the page never waits for a peer."""
        from carpd.cluster.verdict import build

        view = build(to_json(self.view()))
        return web.json_response(view, headers={"Cache-Control": "no-store"})

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    # -- buttons ------------------------------------------------------------------------

    async def _run(self, command: str, req: dict[str, Any]) -> web.Response:
        from carpd.daemon.service.control import Refused

        try:
            result = self.handlers[command](req)
            if hasattr(result, "__await__"):
                result = await result
        except Refused as e:
            return _refuse(409, str(e))
        return web.json_response({"ok": True, "result": result})

    async def _maintenance(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deep
            return _refuse(400, 'the body must be JSON: {"on": true}')
        on = body.get("on") if isinstance(body, dict) else None
        return await self._run("maintenance", {"on": on})

    async def _vhid(self, request: web.Request) -> web.Response:
        action, name = request.match_info["action"], request.match_info["name"]
        return await self._run(action, {"name": name})

    async def _carp(self, request: web.Request) -> web.Response:
        """pfSense's "Temporarily disable CARP": every vhid down (up again with enable or
        a restart)."""
        command = "down" if request.match_info["action"] == "disable" else "up"
        for v in self.view().vhids:
            response = await self._run(command, {"name": v.name})
            if response.status != 200:
                return response
        return web.json_response({"ok": True, "result": to_json(self.view())})


class _ServerLog:
    """aiohttp's log of requests that failed. A malformed request (a 1 MiB header, not
    HTTP at all) is the client's doing: one line, no traceback, at most one per
    BAD_REQUEST_LOG seconds, or anyone could fill the log. A handler's error keeps its
    traceback."""

    def __init__(self) -> None:
        self._limit = RateLimiter(BAD_REQUEST_LOG)

    def exception(self, msg: str, *args: Any, exc_info: Any = None, **kw: Any) -> None:
        if not isinstance(exc_info, HttpProcessingError):
            log.error(msg, *args, exc_info=exc_info or True, **kw)
            return
        hidden = self._limit.allow("bad request", time.monotonic())
        if hidden is not None:
            more = f" ({hidden} more since the last time)" if hidden else ""
            why = _printable(f"{exc_info.code} {exc_info.message}".strip()[:120])
            log.info("web: a malformed request from %s refused: %s%s", *args[:1], why, more)

    def debug(self, *args: Any, **kw: Any) -> None:
        pass  # aiohttp's debug lines: what a port open to the internet sees all day

    def warning(self, *args: Any, **kw: Any) -> None:
        log.warning(*args, **kw)


def _bind(host: IPAddr, port: int) -> socket.socket:
    """A socket bound as asyncio's create_server binds one, not yet listening."""
    sock = socket.socket(socket.AF_INET6 if host.version == 6 else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if host.version == 6:  # :: is IPv6's only, as listen says
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((str(host), port))
    except OSError:
        sock.close()
        raise
    return sock


def _local_address(request: web.Request) -> str | None:
    """The address of carpd's that the request came to."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return str(sockname[0]) if isinstance(sockname, tuple) and sockname else None


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def _printable(text: str) -> str:
    """``text`` with control characters as escapes (one log record stays one line)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _refuse(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status, headers=headers)


def _challenge(message: str) -> web.Response:
    return web.json_response(
        {"ok": False, "error": message},
        status=401,
        headers={"WWW-Authenticate": 'Basic realm="carpd", charset="UTF-8"'},
    )
