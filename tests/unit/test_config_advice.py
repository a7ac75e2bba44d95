"""Warnings for valid but risky settings (issue 26, items 13 and 19): basic auth in the
clear on a non-loopback address, and secrets that other local users can read. Through
`carpd --check`, which prints them, as the log does at start and on reload."""

from __future__ import annotations

from pathlib import Path

import pytest

from carpd.config import load_config
from carpd.config.advice import advisories
from carpd.daemon.service.main import main as carpd


def carp(passfile: Path) -> str:
    return f"""
[[carp]]
name = "lan"
vhid = 7
carpdev = "eth0"
passfile = "{passfile}"
addresses = ["192.0.2.100/24"]
"""


def secret(path: Path, mode: int, text: str = "hunter2\n") -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_passfile_others_can_read_is_named_with_its_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A local user who reads it can forge adverts; it was accepted without a word."""
    passfile = secret(tmp_path / "lan.pass", 0o644)
    conf = tmp_path / "carpd.toml"
    conf.write_text(carp(passfile))
    assert carpd(["--config", str(conf), "--check", "--other-node"]) == 0
    assert capsys.readouterr().err.splitlines()[0] == (
        f'carpd: warning: {conf}: lan (vhid 7 on eth0): passfile = "{passfile}": mode 0644: '
        f"users other than its owner can read it; chmod 600 {passfile}"
    )
    passfile.chmod(0o600)
    assert advisories(load_config(conf)) == []


@pytest.mark.parametrize(
    ("key", "mode", "can"), [("tls_key", 0o640, "read"), ("users_file", 0o620, "change")]
)
def test_web_secrets_others_can_get_at_are_named(
    tmp_path: Path, key: str, mode: int, can: str
) -> None:
    passfile = secret(tmp_path / "lan.pass", 0o600)
    files = {
        "tls_cert": secret(tmp_path / "web.pem", 0o644, "cert\n"),
        "tls_key": secret(tmp_path / "web.key", 0o600, "key\n"),
        "users_file": secret(tmp_path / "users", 0o600, ""),
    }
    files[key].chmod(mode)
    web = "\n".join(f'{k} = "{v}"' for k, v in files.items())
    conf = tmp_path / "carpd.toml"
    conf.write_text(f'[web]\nenabled = true\nlisten = "192.0.2.1"\n{web}\n' + carp(passfile))
    assert advisories(load_config(conf)) == [
        f'{conf}: web.{key} = "{files[key]}": mode {mode:04o}: users other than its owner '
        f"can {can} it; chmod 600 {files[key]}"
    ]


@pytest.mark.parametrize(
    ("listen", "tls", "warned"),
    [
        ('"0.0.0.0"', False, "0.0.0.0"),
        ('["127.0.0.1", "192.0.2.1"]', False, "192.0.2.1"),
        ('"0.0.0.0"', True, None),
        ('"127.0.0.1"', False, None),
    ],
)
def test_basic_auth_in_the_clear_on_a_non_loopback_address_is_warned_about(
    tmp_path: Path, listen: str, tls: bool, warned: str | None
) -> None:
    passfile = secret(tmp_path / "lan.pass", 0o600)
    users = secret(tmp_path / "users", 0o600, "")
    web = f'[web]\nenabled = true\nlisten = {listen}\nusers_file = "{users}"\n'
    if tls:
        cert, key = secret(tmp_path / "c.pem", 0o644), secret(tmp_path / "k.pem", 0o600)
        web += f'tls_cert = "{cert}"\ntls_key = "{key}"\n'
    conf = tmp_path / "carpd.toml"
    conf.write_text(web + carp(passfile))
    expected = [
        f'{conf}: web.listen = "{warned}": not a loopback address, and no tls_cert: users\' '
        "passwords (HTTP basic authentication) cross the network in the clear; set "
        "tls_cert and tls_key"
    ]
    assert advisories(load_config(conf)) == (expected if warned else [])
