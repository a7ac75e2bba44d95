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


NODE = "192.0.2.1"  # the node's own address, which [web] may listen on too


def call(
    ws: WebServer,
    method: str,
    remote: str,
    headers: dict[str, str] | None = None,
    local: str | None = None,
) -> web.StreamResponse:
    """``local``: the address the request came to (default: the remote's own if it is
    a loopback one, else the node's)."""
    local = local or (remote if remote in ("127.0.0.1", "::1") else NODE)
    names = {"peername": (remote, 40000), "sockname": (local, 8473)}
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda key, default=None: names.get(key, default)
    transport.is_closing.return_value = False  # the client is still there
    request = make_mocked_request(method, "/api/maintenance", headers or {}, transport=transport)

    async def handler(_: web.Request) -> web.Response:
        return web.Response(text="handled")

    async def run() -> web.StreamResponse:
        return await ws._guard(request, handler)

    return asyncio.run(run())


def basic() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()}


@pytest.mark.parametrize(
    ("method", "remote", "local", "status"),
    [
        ("GET", "127.0.0.1", None, 200),  # reading from the node itself
        ("GET", "::1", None, 200),
        ("GET", "192.0.2.9", None, 401),  # reading from elsewhere needs a user
        ("POST", "127.0.0.1", None, 401),  # every change needs a user
        # listen = ["127.0.0.1", "192.0.2.1"]: loopback is free, the other address never,
        # even to a client on the node that sends from 127.0.0.1...
        ("GET", "127.0.0.1", NODE, 401),
        ("GET", "::1", "2001:db8::1", 401),
        # ...and a request from elsewhere that reached a loopback address (a DNAT rule
        # with route_localnet) is still from elsewhere.
        ("GET", "192.0.2.9", "127.0.0.1", 401),
        ("GET", "192.0.2.9", "::1", 401),
    ],
)
def test_who_may_read_and_who_may_change(
    tmp_path: Any, method: str, remote: str, local: str | None, status: int
) -> None:
    ws = server(tmp_path)
    try:
        response = call(ws, method, remote, local=local)
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


@pytest.mark.parametrize(
    ("listen", "users", "error"),
    [
        ('"127.0.0.1"', False, None),  # one address, as a string: as before
        ('["127.0.0.1", "::1"]', False, None),  # loopback only: no users needed
        ('["127.0.0.1", "192.0.2.1"]', True, None),
        (
            '["127.0.0.1", "192.0.2.1"]',
            False,
            'web.listen[1] = "192.0.2.1": not a loopback address, so every request from '
            "elsewhere needs a user: set web.users_file",
        ),
        ('["::1", "::1"]', False, 'web.listen[1] = "::1": listed twice'),
        (
            '["0.0.0.0", "127.0.0.1"]',
            True,
            'web.listen[1] = "127.0.0.1": 0.0.0.0 listens on it already',
        ),
        ("[]", False, "web.listen = []: must not be empty"),
        ("8473", False, "web.listen = 8473: not an address or an array of addresses"),
        ('["localhost"]', False, 'web.listen[0] = "localhost": not an IP address'),
    ],
)
def test_listen_takes_one_address_or_several_each_checked(
    tmp_path: Any, listen: str, users: bool, error: str | None
) -> None:
    from carpd.config import ConfigError, load_config

    path = tmp_path / "carpd.toml"
    extra = f'users_file = "{tmp_path}/users"\n' if users else ""
    path.write_text(
        f'[web]\nenabled = true\nlisten = {listen}\n{extra}\n[[carp]]\nname = "lan"\n'
        'vhid = 1\ncarpdev = "eth0"\npass = "x"\naddresses = ["192.0.2.100/24"]\n'
    )
    if error is None:
        assert load_config(path).web.listen
        return
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert f"{path}: {error}" in str(refused.value)
