"""Requests against the real status page on loopback (issue 26, items 7, 8, 13, 14, 15):
methods other than GET, HEAD and POST never reach a handler, HEAD is a read like GET, a
read without a user needs a loopback Host (DNS rebinding), every answer says nosniff
(and HSTS over TLS), the page's script runs under a CSP without 'unsafe-inline', a
request's path cannot forge a log line, and nested JSON is a 400."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers_web import USER, basic, free_port, http, self_signed, users_file, web

from carpd.daemon.service.control import Refused
from carpd.web.server import WebServer

Run = Callable[[Callable[[WebServer, int], Awaitable[None]]], None]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Run]:
    """Run a scenario against a real server with a user and two buttons."""

    def down(request: dict[str, Any]) -> None:
        raise Refused(f"no vhid {request['name']!r}")

    def up(request: dict[str, Any]) -> None:
        raise RuntimeError("a bug in a handler")

    handlers = {"maintenance": lambda request: {"on": request["on"]}, "down": down, "up": up}

    def run(scenario: Callable[[WebServer, int], Awaitable[None]], **cfg: Any) -> None:
        port = free_port()

        async def main() -> None:
            ws = web(port, handlers, users_file=str(users_file(tmp_path)), **cfg)
            await ws.start()
            try:
                await scenario(ws, port)
            finally:
                await ws.close()

        asyncio.run(main())

    yield run


def post_headers(ws: WebServer) -> dict[str, str]:
    return {"Authorization": basic(), "X-CSRF-Token": ws.auth.csrf(USER)}


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND"])
def test_methods_other_than_get_head_post_are_refused_before_any_handler(
    served: Run, method: str
) -> None:
    async def scenario(ws: WebServer, port: int) -> None:
        for path in ("/", "/api/maintenance", "/nowhere"):
            status, headers, _ = await http(port, method, path, headers={"Authorization": basic()})
            assert (status, headers["allow"]) == (405, "GET, HEAD, POST"), path

    served(scenario)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1:{port}", 200),
        ("127.0.0.1", 200),
        ("localhost:{port}", 200),
        ("LOCALHOST.", 200),
        ("[::1]:{port}", 200),
        ("attacker.example:{port}", 421),  # a page of attacker.example, now 127.0.0.1
        ("localhost.attacker.example", 421),
        ("192.0.2.1:{port}", 421),  # not an address carpd listens on here
    ],
)
def test_a_read_without_a_user_needs_a_loopback_host(
    served: Run, method: str, host: str, status: int
) -> None:
    """DNS rebinding: before, any Host was read freely through loopback, and HEAD ran
    the handler whatever the rules said."""

    async def scenario(ws: WebServer, port: int) -> None:
        answer = await http(port, method, "/", headers={"Host": host.format(port=port)})
        assert answer[0] == status
        # A user proves who asks: then the Host does not matter.
        headers = {"Host": host.format(port=port), "Authorization": basic()}
        assert (await http(port, method, "/", headers=headers))[0] == 200

    served(scenario)


def test_a_read_without_host_is_not_a_browser_so_no_rebinding(served: Run) -> None:
    async def scenario(ws: WebServer, port: int) -> None:
        assert (await http(port, "GET", "/", headers={"Host": ""}, version="1.0"))[0] == 200

    served(scenario)


def test_every_answer_says_nosniff_and_the_page_allows_only_its_own_script(
    served: Run,
) -> None:
    async def scenario(ws: WebServer, port: int) -> None:
        answers = [
            await http(port, "GET", "/"),
            await http(port, "GET", "/login"),  # 401
            await http(port, "GET", "/nowhere"),  # 404
            await http(port, "PUT", "/"),  # 405
            await http(port, "GET", "/", headers={"Host": "attacker.example"}),  # 421
            await http(port, "POST", "/api/maintenance"),  # 401
            await http(port, "POST", "/api/maintenance", headers=post_headers(ws), body=b"{"),
        ]
        assert [a[0] for a in answers] == [200, 401, 404, 405, 421, 401, 400]
        for status, headers, _ in answers:
            assert headers.get("x-content-type-options") == "nosniff", status
            assert "strict-transport-security" not in headers  # plain HTTP: no HSTS
        _, headers, page = answers[0]
        csp = dict(d.strip().split(" ", 1) for d in headers["content-security-policy"].split(";"))
        assert "unsafe-inline" not in csp["script-src"]
        scripts = re.findall(rb"<script>(.*?)</script>", page, re.DOTALL)
        assert scripts
        for script in scripts:
            digest = base64.b64encode(hashlib.sha256(script).digest()).decode()
            assert f"'sha256-{digest}'" in csp["script-src"].split()

    served(scenario)


def test_hsts_over_tls(served: Run, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)

    async def scenario(ws: WebServer, port: int) -> None:
        for path in ("/", "/login"):
            _, headers, _ = await http(port, "GET", path, tls=True)
            assert headers["strict-transport-security"] == "max-age=31536000"
            assert headers["x-content-type-options"] == "nosniff"

    served(scenario, tls_cert=str(cert), tls_key=str(key))


def test_a_path_cannot_forge_a_log_line(served: Run, caplog: pytest.LogCaptureFixture) -> None:
    """An authenticated POST whose path holds %0a: before, the decoded newline started a
    second, forged line in the log."""
    forged = "2026-01-01 carpd: lan: state transition: MASTER -> BACKUP"

    async def scenario(ws: WebServer, port: int) -> None:
        path = "/api/vhid/x%0a" + forged.replace(" ", "%20") + "%1b[2J/down"
        status, _, body = await http(port, "POST", path, headers=post_headers(ws))
        assert status == 409, body

    with caplog.at_level(logging.WARNING, logger="carpd"):
        served(scenario)
    logged = [r.getMessage() for r in caplog.records if "POST /api/vhid/" in r.getMessage()]
    assert len(logged) == 1
    assert "\n" not in logged[0] and "\x1b" not in logged[0]
    assert "x\\n" + forged + "\\x1b[2J" in logged[0]


def test_deeply_nested_json_is_a_bad_request(served: Run) -> None:
    """Before: RecursionError inside request.json(), a 500."""

    async def scenario(ws: WebServer, port: int) -> None:
        for body in (b"[" * 10_000, b'{"on": ' * 2000):
            status, _, answer = await http(
                port, "POST", "/api/maintenance", headers=post_headers(ws), body=body
            )
            assert status == 400 and b"must be JSON" in answer
        ok = await http(
            port, "POST", "/api/maintenance", headers=post_headers(ws), body=b'{"on": true}'
        )
        assert ok[0] == 200

    served(scenario)


def test_malformed_requests_are_logged_a_few_times_without_tracebacks(
    served: Run, caplog: pytest.LogCaptureFixture
) -> None:
    """30 requests with a 9000-byte header, from anyone: each is refused, and the log gets
    a line or two (before: aiohttp logged each with its traceback, 9 lines a request)."""

    async def scenario(ws: WebServer, port: int) -> None:
        for _ in range(30):
            status, _, _ = await http(port, "GET", "/", headers={"X-Big": "h" * 9000})
            assert status in (400, 431)

    with caplog.at_level(logging.DEBUG):
        served(scenario)
    records = [
        r
        for r in caplog.records
        if r.levelno >= logging.INFO and "status page" not in r.getMessage()
    ]
    assert len(records) <= 2, [r.getMessage() for r in records]
    assert not any(r.exc_info for r in records)


def test_a_handlers_error_is_still_logged_with_its_traceback(
    served: Run, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(ws: WebServer, port: int) -> None:
        assert (await http(port, "POST", "/api/vhid/x/up", headers=post_headers(ws)))[0] == 500

    served(scenario)
    failed = [
        r for r in caplog.records if r.exc_info and "a bug in a handler" in str(r.exc_info[1])
    ]
    assert len(failed) == 1 and failed[0].levelno == logging.ERROR
