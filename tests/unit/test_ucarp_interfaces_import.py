"""carpd import ucarp-interfaces: Debian's ucarp-* stanzas (as /etc/network/if-up.d/ucarp
of Debian's ucarp 1.5.2 turns them into a ucarp command line) to [[carp]] tables that
mean what carpd with that command line means; the golden case; no password written."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from test_keepalived_import import CORPUS, loads_in_carpd, run_case, run_import

from carpd.config.ucarp_cli import config_from_ucarp_args

STANZA = """\
auto eth0
iface eth0 inet static
	address 192.0.2.2
	netmask 255.255.255.0
	ucarp-vid 7
	ucarp-vip 192.0.2.1
	ucarp-password {password}
{extra}"""


def convert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str = "", password: str = "pw"
) -> tuple[int, dict[str, object], str, str]:
    path = tmp_path / "interfaces"
    path.write_text(STANZA.format(password=password, extra=extra))
    status, out, err = run_import(["ucarp-interfaces", str(path)], capsys)
    if tomllib.loads(out).get("carp"):
        loads_in_carpd(out, tmp_path / "out", capsys)
    return status, tomllib.loads(out), out, err


def test_golden(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run_case(CORPUS / "ucarp-interfaces", "ucarp-interfaces", tmp_path, capsys)
    assert [c["vhid"] for c in tomllib.loads(out)["carp"]] == [3, 4]


@pytest.mark.parametrize(
    ("master", "preempt"),
    [
        ("yes", True),
        ("on", True),
        ("1", True),
        ("no", False),
        ("off", False),
        ("false", False),
        ("0", False),
        ("nope", False),
        ("offline", False),
    ],
)
def test_ucarp_master_as_the_scripts_expr_reads_it(
    master: str, preempt: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``expr "$IF_UCARP_MASTER" : "no\\|off\\|false\\|0"`` matches at the start."""
    _, doc, _, _ = convert(tmp_path, capsys, f"\tucarp-master {master}\n")
    assert doc["carp"][0]["preempt"] is preempt  # type: ignore[index]


def test_the_same_as_carpd_with_the_scripts_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = (
        "\tucarp-advskew 20\n\tucarp-advbase 2\n\tucarp-deadratio 4\n\tucarp-master yes\n"
        "\tucarp-xparam lan\n"
    )
    _, doc, _, _ = convert(tmp_path, capsys, extra)
    carp = doc["carp"][0]  # type: ignore[index]
    # What if-up.d/ucarp runs (less the default scripts carpd does not need):
    argv = ["-i", "eth0", "-s", "192.0.2.2", "-v", "7", "-p", "pw", "-a", "192.0.2.1", "-P"]
    argv += ["-k", "20", "-b", "2", "-r", "4", "-x", "lan"]
    (theirs,) = config_from_ucarp_args(argv).carp
    for key in ("carpdev", "vhid", "advskew", "advbase", "deadratio", "preempt", "xparam"):
        assert carp[key] == getattr(theirs, key), key
    assert carp["srcip"] == str(theirs.srcip)
    assert carp["addresses"] == ["192.0.2.1/24"]  # the carpdev's subnet, as carpd's -a
    assert tuple(theirs.prefix_from_carpdev) == (theirs.addresses[0].ip,)


def test_the_password_is_never_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, doc, out, err = convert(tmp_path, capsys, password="Very-Secret-9")
    assert status == 0, err
    assert "Very-Secret-9" not in out and "Very-Secret-9" not in err
    assert doc["carp"][0]["passfile"] == "ucarp7.pass"  # type: ignore[index]
    assert "put the password of interfaces:7 in it" in err


def test_the_alias_stanza_gives_the_prefix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alias = "\niface eth0:ucarp inet static\n\taddress 192.0.2.1\n\tnetmask 255.255.255.255\n"
    _, doc, _, err = convert(tmp_path, capsys, alias)
    assert doc["carp"][0]["addresses"] == ["192.0.2.1/32"]  # type: ignore[index]
    assert "up" not in doc["carp"][0]  # type: ignore[operator]
    assert "eth0:ucarp: the prefix /32 of 192.0.2.1, as vip-up adds it" in err


def test_a_stanza_without_a_password_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "interfaces"
    path.write_text(
        "iface eth0 inet static\n\taddress 192.0.2.2/24\n\tucarp-vid 7\n\tucarp-vip 192.0.2.1\n"
    )
    status, out, err = run_import(["ucarp-interfaces", str(path)], capsys)
    assert status == 1
    assert "[[carp]]" not in out
    assert "no ucarp-password: Debian's if-up.d/ucarp starts no ucarp" in err


def test_nomcast_is_not_translated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, _, err = convert(tmp_path, capsys, "\tucarp-nomcast yes\n")
    assert status == 1
    assert "ucarp-nomcast: broadcast adverts (-M)" in err


def test_sourced_files_are_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "interfaces.d").mkdir()
    (tmp_path / "interfaces.d" / "eth0").write_text(STANZA.format(password="pw", extra=""))
    (tmp_path / "interfaces.d" / "skipped.bak").write_text("iface x inet manual\n\tucarp-vid 1\n")
    path = tmp_path / "interfaces"
    path.write_text("source-directory interfaces.d\n")
    status, out, err = run_import(["ucarp-interfaces", str(path)], capsys)
    assert status == 0, err
    assert [c["vhid"] for c in tomllib.loads(out)["carp"]] == [7]
    assert "interfaces.d/eth0:7: ucarp-password:" in err


def test_an_unreadable_file_is_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_import(["ucarp-interfaces", str(tmp_path / "none")], capsys)
    assert (status, out) == (2, "")
    assert "cannot read" in err
