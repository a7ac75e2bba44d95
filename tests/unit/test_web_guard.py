"""The status page's rules, request by request (aiohttp's mocked requests: no socket)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from carpd.config.model import WebConfig
from carpd.web.auth import hash_password
from carpd.web.server import WebServer

PASSWORD = "operator-pw"


def server(tmp_path: Any, **cfg: Any) -> WebServer:
    users = tmp_path / "users"
    users.write_text(f"alice:{hash_password(PASSWORD)}\n")
    config = WebConfig.model_validate({"enabled": True, "users_file": str(users), **cfg})
    return WebServer(config, view=mock.Mock(), handlers={})


def call(
    ws: WebServer, method: str, remote: str, headers: dict[str, str] | None = None
) -> web.StreamResponse:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda key, default=None: (
        (remote, 40000) if key == "peername" else default
    )
    request = make_mocked_request(method, "/api/maintenance", headers or {}, transport=transport)

    async def handler(_: web.Request) -> web.Response:
        return web.Response(text="handled")

    async def run() -> web.StreamResponse:
        return await ws._guard(request, handler)

    return asyncio.run(run())


def basic() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()}


@pytest.mark.parametrize(
    ("method", "remote", "headers", "status"),
    [
        ("GET", "127.0.0.1", {}, 200),  # reading from the node itself
        ("GET", "::1", {}, 200),
        ("GET", "192.0.2.9", {}, 401),  # reading from elsewhere needs a user
        ("POST", "127.0.0.1", {}, 401),  # every change needs a user
    ],
)
def test_who_may_read_and_who_may_change(
    tmp_path: Any, method: str, remote: str, headers: dict[str, str], status: int
) -> None:
    ws = server(tmp_path)
    try:
        response = call(ws, method, remote, headers)
    finally:
        ws.auth.close()
    assert response.status == status
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith('Basic realm="carpd"')


def test_a_user_with_the_pages_token_may_change_unless_read_only(tmp_path: Any) -> None:
    ws = server(tmp_path)
    token = ws.auth.csrf("alice")
    try:
        assert call(ws, "GET", "192.0.2.9", basic()).status == 200
        assert call(ws, "POST", "192.0.2.9", basic()).status == 403  # no token
        good = {**basic(), "X-CSRF-Token": token}
        assert call(ws, "POST", "192.0.2.9", good).status == 200
        evil = {**good, "Origin": "http://evil.example"}
        assert call(ws, "POST", "192.0.2.9", evil).status == 403
    finally:
        ws.auth.close()
    ro = server(tmp_path, read_only=True)
    try:
        response = call(ro, "POST", "127.0.0.1", {**basic(), "X-CSRF-Token": ro.auth.csrf("alice")})
    finally:
        ro.auth.close()
    assert response.status == 403
    assert b"read-only" in response.body  # type: ignore[attr-defined]
