"""[web] on a reload: the new server starts beside the old one, sharing the sockets both
listen on, or fails and leaves the old one answering; and what a reload cannot apply is
said by carpctl reload, in words and in its exit status. Real loopback sockets."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from carpd.config.model import GlobalConfig, WebConfig
from carpd.ctl import main as ctl
from carpd.daemon.service.serve import restart_needed
from carpd.web.auth import hash_password
from carpd.web.server import WebError, WebServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def web(port: int, **cfg: Any) -> WebServer:
    config = WebConfig.model_validate({"enabled": True, "port": port, **cfg})
    return WebServer(config, view=mock.Mock(), handlers={})


async def get(host: str, port: int, path: str = "/") -> int:
    """The status code of a GET (0: nothing listens there)."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return 0
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    line = await reader.readline()
    writer.close()
    return int(line.split()[1])


def test_the_page_listens_on_every_address_of_listen() -> None:
    port = free_port()

    async def main() -> list[int]:
        ws = web(port, listen=["127.0.0.1", "::1"])
        await ws.start()
        try:
            return [await get("127.0.0.1", port), await get("::1", port)]
        finally:
            await ws.close()

    assert asyncio.run(main()) == [200, 200]
    single = WebConfig.model_validate({"listen": "127.0.0.1"})  # a string stays valid
    assert [str(a) for a in single.listen] == ["127.0.0.1"]


def test_a_new_page_on_the_same_port_takes_over_without_a_gap() -> None:
    """A reload's new [web] (here: read_only) shares the old one's socket instead of
    binding it again (EADDRINUSE), and answers once the old one is closed."""
    port = free_port()

    async def main() -> tuple[int, int, int]:
        old, new = web(port), web(port, read_only=True)
        await old.start()
        try:
            await new.start(inherit=old)
            # The CSRF token of a page opened before the reload stays good.
            assert new.auth.csrf("alice") == old.auth.csrf("alice")
        finally:
            await old.close()
        try:
            page = await get("127.0.0.1", port)
            ro = new.cfg.read_only
            return page, int(ro), await get("127.0.0.1", port, "/login")
        finally:
            await new.close()

    assert asyncio.run(main()) == (200, 1, 401)


def listening(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    sock = socket.socket(family)
    sock.bind((host, port))
    sock.listen()
    return sock


def test_a_new_page_that_cannot_listen_leaves_the_old_one_answering(tmp_path: Path) -> None:
    port = free_port()
    taken = listening(socket.AF_INET, "127.0.0.1", 0)  # another program's port
    other = taken.getsockname()[1]
    taken6 = listening(socket.AF_INET6, "::1", port)  # ours, but on ::1 someone else's
    bad_tls = tmp_path / "web.pem"
    bad_tls.write_text("not a certificate\n")

    async def main() -> list[str]:
        old = web(port)
        await old.start()
        errors = []
        try:
            for new in (
                web(other),
                web(port, listen=["127.0.0.1", "::1"]),  # 127.0.0.1 taken over, ::1 not
                web(port, tls_cert=str(bad_tls), tls_key=str(bad_tls)),
            ):
                with pytest.raises(WebError) as refused:
                    await new.start(inherit=old)
                errors.append(str(refused.value))
                await new.close()
                assert await get("127.0.0.1", port) == 200  # the old page still answers
            return errors
        finally:
            await old.close()

    try:
        errors = asyncio.run(main())
    finally:
        taken.close()
        taken6.close()
    assert errors[0] == f"web: cannot listen on http://127.0.0.1:{other}/: Address already in use"
    assert errors[1] == f"web: cannot listen on http://[::1]:{port}/: Address already in use"
    assert errors[2].startswith("web.tls_cert / web.tls_key: ")


def test_a_reload_keeps_a_page_whose_users_did_not_change(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text(f"alice:{hash_password('password-1')}\n")
    ws = web(free_port(), users_file=str(users))
    try:
        assert ws.same_users()
        with users.open("a") as f:  # carpctl web-user bob >> users
            f.write(f"bob:{hash_password('password-2')}\n")
        assert not ws.same_users()  # a reload starts the page afresh, with bob
        users.write_text("garbage\n")
        assert not ws.same_users()  # and then the new page refuses the reload
    finally:
        ws.auth.close()


def test_what_only_a_restart_applies_is_named() -> None:
    running = GlobalConfig()
    new = GlobalConfig.model_validate(
        {"control_socket": "/run/other.sock", "control_group": "adm", "log_level": "debug"}
    )
    assert restart_needed(running, new) == [
        "global.control_socket = /run/other.sock (running: /run/carpd/carpd.sock)",
        "global.control_group = adm (running: None)",
    ]
    assert restart_needed(running, running) == []


@pytest.mark.parametrize(
    ("pending", "status", "lines"),
    [
        ([], ctl.EXIT_OK, ["reloaded /etc/carpd/carpd.toml"]),
        (
            ["global.control_group = adm (running: None)"],
            ctl.EXIT_RESTART_NEEDED,
            [
                "reloaded /etc/carpd/carpd.toml",
                "not applied until carpd restarts: global.control_group = adm (running: None)",
            ],
        ),
    ],
)
def test_carpctl_reload_says_what_was_not_applied_and_exits_5(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    pending: list[str],
    status: int,
    lines: list[str],
) -> None:
    result = {"reloaded": "/etc/carpd/carpd.toml", "restart_needed": pending}
    monkeypatch.setattr(ctl, "request", lambda *a, **k: {"ok": True, "result": result})
    assert ctl.main(["reload"]) == status
    assert capsys.readouterr().out.splitlines() == lines
    assert ctl.main(["--json", "reload"]) == status
    assert '"restart_needed"' in capsys.readouterr().out
