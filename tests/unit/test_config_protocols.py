"""Config keys of VRRPv3, unicast peers, virtual MAC and replay protection."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from carpd.config import ConfigError, load_config


def load(tmp_path: Path, table: str) -> object:
    path = tmp_path / "carpd.toml"
    path.write_text('[[carp]]\nvhid = 9\ncarpdev = "eth0"\n' + textwrap.dedent(table))
    return load_config(path)


def error(tmp_path: Path, table: str) -> str:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, table)
    return str(e.value)


def test_vrrp3_needs_no_password_preempts_and_accepts_by_default(tmp_path: Path) -> None:
    """accept defaults to true, as keepalived without vrrp_strict: a keepalived user's
    first ping of the address is answered (docs/keepalived.md says why)."""
    config = load(
        tmp_path,
        'protocol = "vrrp3"\nadvbase = 0.1\npriority = 200\naddresses = ["192.0.2.200/24"]\n',
    )
    [c] = config.carp  # type: ignore[attr-defined]
    assert (c.protocol, c.interval_cs, c.priority, c.preempt, c.accept) == (
        "vrrp3",
        10,
        200,
        True,
        True,
    )
    assert c.password == b""
    strict = load(tmp_path, 'protocol = "vrrp3"\naccept = false\naddresses = ["192.0.2.1/24"]\n')
    assert not strict.carp[0].accept  # type: ignore[attr-defined]


@pytest.mark.parametrize("advbase", ["0.001", "41", "0.015", "0"])
def test_vrrp3_advbase_is_centiseconds_up_to_40_95(tmp_path: Path, advbase: str) -> None:
    msg = error(
        tmp_path, f'protocol = "vrrp3"\nadvbase = {advbase}\naddresses = ["192.0.2.1/24"]\n'
    )
    assert f"carp[0] (vhid 9).advbase = {advbase}" in msg
    assert "allowed range is 0.01-40.95 seconds, in steps of 0.01, for VRRPv3" in msg


def test_vrrp3_refuses_carp_keys_and_carp_refuses_vrrp_keys(tmp_path: Path) -> None:
    msg = error(
        tmp_path,
        'protocol = "vrrp3"\npass = "secret"\nadvskew = 10\naddresses = ["192.0.2.1/24"]\n',
    )
    assert 'carp[0] (vhid 9).pass = "<hidden>": not for protocol = "vrrp3"' in msg
    assert "carp[0] (vhid 9).advskew = 10: not for protocol" in msg
    msg = error(
        tmp_path, 'protocol = "vrrp3"\nhmac_variant = "freebsd"\naddresses = ["192.0.2.1/24"]\n'
    )
    assert 'carp[0] (vhid 9).hmac_variant = "freebsd": not for protocol = "vrrp3"' in msg
    assert "secret" not in msg
    msg = error(tmp_path, 'pass = "x"\npriority = 200\naddresses = ["192.0.2.1/24"]\n')
    assert 'carp[0] (vhid 9).priority = 200: only for protocol = "vrrp3"' in msg
    msg = error(tmp_path, 'pass = "x"\nadvbase = 0.5\naddresses = ["192.0.2.1/24"]\n')
    assert "carp[0] (vhid 9).advbase = 0.5: allowed range is 1-255 (whole seconds) for CARP" in msg


def test_peers_must_cover_every_address_family(tmp_path: Path) -> None:
    msg = error(
        tmp_path,
        'pass = "x"\npeers = ["192.0.2.2"]\naddresses = ["192.0.2.1/24", "2001:db8::1/64"]\n',
    )
    assert "carp[0] (vhid 9).peers" in msg and "no IPv6 peer for the IPv6 addresses" in msg
    config = load(
        tmp_path,
        'pass = "x"\npeers = ["192.0.2.2", "2001:db8::2"]\nvmac = true\n'
        "replay_protection = true\n"
        'addresses = ["192.0.2.1/24", "2001:db8::1/64"]\n',
    )
    [c] = config.carp  # type: ignore[attr-defined]
    assert [str(p) for p in c.peers] == ["192.0.2.2", "2001:db8::2"]
    assert c.vmac and c.replay_protection
