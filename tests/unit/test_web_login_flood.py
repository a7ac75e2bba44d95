"""Password checks (scrypt) against the real status page on loopback (issue 26, item 5):
clients that send a login and go cost nothing, the checks waiting are bounded, and one
address that keeps failing is refused without a check."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import pytest
from helpers_web import basic, free_port, http, users_file, web

from carpd.web import auth as web_auth
from carpd.web.auth import hash_password, verify_password


def one_check() -> float:
    """How long one scrypt check takes here, now (the median of three)."""
    stored = hash_password("x")
    times = []
    for _ in range(3):
        start = time.perf_counter()
        verify_password(stored, "y")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def test_abandoned_logins_do_not_delay_a_real_one(tmp_path: Path) -> None:
    """30 clients from 30 addresses each send a wrong login and give up after 0.1 s (as
    `curl -m 0.1`); then a real login. Before: every abandoned check still ran, one after
    the other, and the login waited for all 30 (about 30 checks' time)."""
    check = one_check()
    port = free_port()

    async def main() -> float:
        ws = web(port, users_file=str(users_file(tmp_path)))
        await ws.start()
        try:
            writers = []
            for i in range(30):
                _, writer = await asyncio.open_connection(
                    "127.0.0.1", port, local_addr=(f"127.0.1.{i + 1}", 0)
                )
                auth = basic(f"x{i}", "y")
                head = f"Host: 127.0.0.1:{port}\r\nAuthorization: {auth}\r\n"
                writer.write(f"GET /login HTTP/1.1\r\n{head}\r\n".encode())
                writers.append(writer)
            await asyncio.sleep(0.1)  # the attacker's patience, not a wait for the server
            for writer in writers:
                writer.close()
            start = time.perf_counter()
            status, _, _ = await http(
                port, path="/login", headers={"Authorization": basic()}, source="127.0.0.2"
            )
            took = time.perf_counter() - start
            assert status == 302
            return took
        finally:
            await ws.close()

    took = asyncio.run(main())
    print(f"one check {check * 1000:.0f} ms, the login after the flood {took * 1000:.0f} ms")
    # At most the check running when they went, then its own; 6 leaves room for a busy host.
    assert took < 6 * check + 0.1


def test_checks_waiting_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """20 wrong logins at once from 20 addresses that stay connected: at most MAX_PENDING
    of them are checked, the others refused at once with 503 and Retry-After (before: all
    20 checked, one after the other)."""
    checked = []

    def counted(stored: str, password: str) -> bool:
        checked.append(password)
        return verify_password(stored, password)

    monkeypatch.setattr(web_auth, "verify_password", counted)
    port = free_port()

    async def main() -> list[tuple[int, dict[str, str], bytes]]:
        ws = web(port, users_file=str(users_file(tmp_path)))
        await ws.start()
        try:
            return await asyncio.gather(
                *(
                    http(
                        port,
                        path="/login",
                        headers={"Authorization": basic("x", "y")},
                        source=f"127.0.2.{i + 1}",
                    )
                    for i in range(20)
                )
            )
        finally:
            await ws.close()

    answers = asyncio.run(main())
    statuses = sorted(status for status, _, _ in answers)
    assert len(checked) <= web_auth.MAX_PENDING, statuses
    assert statuses.count(503) >= 20 - web_auth.MAX_PENDING, statuses
    assert all(h["retry-after"] == "1" for status, h, _ in answers if status == 503)


def test_an_address_that_keeps_failing_is_refused_without_a_check(tmp_path: Path) -> None:
    """MAX_FAILURES wrong logins from one address, then it gets 429 with Retry-After, its
    right password too, while another address logs in (before: 401, one scrypt each, for
    ever)."""
    port = free_port()

    async def main() -> None:
        ws = web(port, users_file=str(users_file(tmp_path)))
        await ws.start()
        try:
            wrong = {"Authorization": basic(password="guess")}
            for _ in range(web_auth.MAX_FAILURES):
                assert (await http(port, path="/login", headers=wrong, source="127.0.3.1"))[
                    0
                ] == 401
            status, headers, body = await http(
                port, path="/login", headers=wrong, source="127.0.3.1"
            )
            assert status == 429 and b"too many failed logins" in body
            assert 0 < int(headers["retry-after"]) <= web_auth.FAILURE_WINDOW
            right = {"Authorization": basic()}
            assert (await http(port, path="/login", headers=right, source="127.0.3.1"))[0] == 429
            assert (await http(port, path="/login", headers=right, source="127.0.3.2"))[0] == 302
        finally:
            await ws.close()

    asyncio.run(main())
