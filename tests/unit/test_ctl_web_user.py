"""`carpctl web-user NAME --append FILE` (issue 26, item 19): the README's `>> FILE`
created the users file 0644 under umask 022, so any local user could read the hashes
and try passwords offline at leisure."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from carpd.ctl.main import main as carpctl
from carpd.web.auth import verify_password


@pytest.fixture(autouse=True)
def _umask_022() -> Iterator[None]:
    old = os.umask(0o022)  # an ssh session's
    try:
        yield
    finally:
        os.umask(old)


def add(monkeypatch: pytest.MonkeyPatch, name: str, password: str, path: Path) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{password}\n"))
    return carpctl(["web-user", name, "--append", str(path)])


def test_append_creates_the_users_file_for_its_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    users = tmp_path / "web-users"
    assert add(monkeypatch, "alice", "correct horse", users) == 0
    assert add(monkeypatch, "bob", "battery staple", users) == 0
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    (alice, a), (bob, b) = (line.split(":", 1) for line in users.read_text().splitlines())
    assert (alice, bob) == ("alice", "bob")
    assert verify_password(a, "correct horse") and verify_password(b, "battery staple")
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""  # nothing printed: the hash went to the file


def test_append_to_a_file_others_can_read_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    users = tmp_path / "web-users"
    users.touch(mode=0o644)
    assert add(monkeypatch, "alice", "correct horse", users) == 0
    assert capsys.readouterr().err == (
        f"carpctl: warning: {users} has mode 0644: others can read the hashes; chmod 600 {users}\n"
    )


def test_append_to_a_file_it_cannot_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert add(monkeypatch, "alice", "correct horse", tmp_path / "no" / "such") == 1
    assert capsys.readouterr().err == (
        f"carpctl: {tmp_path / 'no' / 'such'}: No such file or directory\n"
    )
