"""carpctl status names the master a BACKUP hears: its address, its name where
/etc/hosts has one, and how long ago it was heard."""

from __future__ import annotations

from pathlib import Path

import pytest

from carpd.ctl import hosts
from carpd.ctl.main import format_status, parse_when

HEARD = "2026-12-06T05:31:40.123+0000"


def backup(**fields: object) -> dict[str, object]:
    vh = {
        "name": "carp0",
        "state": "BACKUP",
        "carpdev": "eth0",
        "vhid": 1,
        "advbase": 1,
        "advskew": 100,
        "addresses": ["192.0.2.100/24"],
        "master": "192.0.2.1",
        "last_advert_heard": HEARD,
    }
    return {**vh, **fields}


@pytest.fixture
def etc_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "hosts"
    path.write_text("127.0.0.1 localhost\n")
    monkeypatch.setattr(hosts, "HOSTS", path)
    return path


def test_a_backup_names_the_master_it_hears_and_when(etc_hosts: Path) -> None:
    now = parse_when(HEARD) + 0.4
    assert format_status({"vhosts": [backup()]}, now).splitlines() == [
        "carp0: BACKUP carpdev eth0 vhid 1 advbase 1 advskew 100",
        "\tinet 192.0.2.100/24",
        "\tmaster 192.0.2.1, heard 0.40 s ago",
    ]


def test_the_masters_name_comes_from_etc_hosts(etc_hosts: Path) -> None:
    etc_hosts.write_text(
        "# the pair\n192.0.2.1\tfw1.example.net fw1  # the LAN side\n"
        "2001:db8:0:0::1 fw1-v6\nnot-an-address fw9\n"
    )
    now = parse_when(HEARD) + 1.25
    lines = format_status({"vhosts": [backup()]}, now).splitlines()
    assert lines[-1] == "\tmaster 192.0.2.1 (fw1.example.net), heard 1.25 s ago"
    vh = backup(master="2001:db8::1")  # another spelling of the same address
    assert (
        format_status({"vhosts": [vh]}, now)
        .splitlines()[-1]
        .startswith("\tmaster 2001:db8::1 (fw1-v6),")
    )


def test_no_name_without_etc_hosts_and_never_from_dns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hosts, "HOSTS", tmp_path / "missing")

    def no_dns(*_: object) -> None:
        raise AssertionError("status asked the resolver")

    monkeypatch.setattr("socket.gethostbyaddr", no_dns)
    monkeypatch.setattr("socket.getnameinfo", no_dns)
    now = parse_when(HEARD)
    assert format_status({"vhosts": [backup()]}, now).splitlines()[-1] == (
        "\tmaster 192.0.2.1, heard 0.00 s ago"
    )


def test_a_backup_that_has_heard_no_master_says_so(etc_hosts: Path) -> None:
    vh = backup(master=None, last_advert_heard=None)
    assert format_status({"vhosts": [vh]}).splitlines()[-1] == "\tmaster: none heard yet"


def test_a_master_shows_no_master_line(etc_hosts: Path) -> None:
    vh = backup(state="MASTER", master="192.0.2.2", advskew=0)
    assert "master 192.0.2.2" not in format_status({"vhosts": [vh]})
