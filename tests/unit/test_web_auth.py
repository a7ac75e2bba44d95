"""The status page's users (scrypt hashes in a file) and CSRF tokens."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest

from carpd.web import auth as web_auth
from carpd.web.auth import Authenticator, hash_password, load_users, verify_password


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_a_password_is_stored_only_as_a_salted_scrypt_hash() -> None:
    a, b = hash_password("s3cret"), hash_password("s3cret")
    assert a != b and a.startswith("scrypt$16384$8$1$") and "s3cret" not in a
    assert verify_password(a, "s3cret") and not verify_password(a, "S3cret")
    assert not verify_password("scrypt$x$8$1$AAAA$AAAA", "s3cret")  # garbage: no crash


def test_the_users_file_is_read_and_a_bad_line_named_not_shown(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(f"# operators\nalice:{hash_password('a')}\n\n")
    assert list(load_users(path)) == ["alice"]
    path.write_text("bob:plaintext-password\n")
    with pytest.raises(ValueError) as e:
        load_users(path)
    assert str(e.value) == f"{path}: line 1: not name:scrypt$... (carpctl web-user)"
    assert "plaintext" not in str(e.value)


def test_basic_users_and_csrf_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    auth = Authenticator({"alice": hash_password("pw")})
    checks: list[str] = []  # each scrypt check, by the password it was given

    def counted(stored: str, password: str) -> bool:
        checks.append(password)
        return verify_password(stored, password)

    monkeypatch.setattr(web_auth, "verify_password", counted)

    async def main() -> list[str | None]:
        first = [await auth.user(basic("alice", "pw"))]
        assert checks == ["pw"]
        first.append(await auth.user(basic("alice", "pw")))
        assert checks == ["pw"]  # remembered: no second scrypt
        return [
            *first,
            await auth.user(basic("alice", "wrong")),
            await auth.user(basic("mallory", "pw")),  # unknown: checked all the same
            await auth.user("Basic !!!"),
            await auth.user("Bearer x"),
            await auth.user(None),
        ]

    try:
        assert asyncio.run(main()) == ["alice", "alice", None, None, None, None, None]
    finally:
        auth.close()
    assert checks == ["pw", "wrong", "pw"]
    token = auth.csrf("alice")
    assert auth.csrf_ok("alice", token)
    assert not auth.csrf_ok("mallory", token) and not auth.csrf_ok("alice", None)
    assert Authenticator({}).csrf("alice") != token  # a new secret on every start
