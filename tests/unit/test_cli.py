"""carpd and carpctl command lines: exit codes and messages, no network needed."""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from carpd.config import load_config
from carpd.core.model import State
from carpd.ctl.main import format_status
from carpd.ctl.main import main as carpctl
from carpd.daemon.seam.view import accepting
from carpd.daemon.service.main import main as carpd
from carpd.linux import ifaddrs
from carpd.linux.privileges import effective_capabilities


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "carpd.toml"
    path.write_text(textwrap.dedent(text))
    return path


GOOD = """\
    [[carp]]
    vhid = 1
    carpdev = "eth0"
    pass = "secret"
    addresses = ["192.0.2.100/24"]
    """


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("vhid = 1", "vhid = 300"), "carp[0].vhid = 300: allowed range is 1-255"),
        (
            ("vhid = 1", "vhid = 1\nadvskew = 255"),
            "carp[0] (vhid 1).advskew = 255: allowed range is 0-254",
        ),
        (("vhid = 1", "vhid = 1\ncolour = 1"), "carp[0] (vhid 1).colour: unknown key"),
        (('carpdev = "eth0"', ""), "carp[0] (vhid 1).carpdev: missing required key"),
        (("192.0.2.100/24", "192.0.2.300/24"), 'carp[0] (vhid 1).addresses[0] = "192.0.2.300/24"'),
    ],
)
def test_bad_config_exits_2_naming_file_key_value_and_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: tuple[str, str], expected: str
) -> None:
    path = write(tmp_path, GOOD.replace(*change))
    assert carpd(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and expected in err


def test_duplicate_vhid_on_one_interface_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = GOOD + GOOD.replace("192.0.2.100", "192.0.2.101").replace("pass =", "name = 'x'\npass =")
    assert carpd(["--config", str(write(tmp_path, text))]) == 2
    assert "duplicate vhid 1 on carpdev eth0" in capsys.readouterr().err


def test_long_password_exits_2_without_showing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "twenty-characters-xx"
    assert carpd(["--config", str(write(tmp_path, GOOD.replace("secret", secret)))]) == 2
    err = capsys.readouterr().err
    assert "at most 19 characters" in err and secret not in err


@pytest.fixture
def eth0(monkeypatch: pytest.MonkeyPatch) -> None:
    """This node, as --check sees it: eth0 with an address of its own."""
    monkeypatch.setattr(ifaddrs, "interfaces", lambda: {"lo": 1, "eth0": 2})
    monkeypatch.setattr(ifaddrs, "addresses", lambda: {2: [ipaddress.ip_address("192.0.2.2")]})


def test_check_accepts_a_good_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], eth0: None
) -> None:
    assert carpd(["--check", "--config", str(write(tmp_path, GOOD))]) == 0
    assert "configuration OK (1 vhid(s))" in capsys.readouterr().out


def test_check_warns_about_deadratio_1_but_accepts_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], eth0: None
) -> None:
    path = write(tmp_path, GOOD + "deadratio = 1\n")
    assert carpd(["--check", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "configuration OK" in out
    assert f"warning: {path}: carp1 (vhid 1 on eth0): deadratio = 1: " in err
    assert "2 or more (default 3) is safe" in err


def test_check_is_silent_about_the_default_deadratio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], eth0: None
) -> None:
    assert carpd(["--check", "--config", str(write(tmp_path, GOOD))]) == 0
    assert "warning" not in capsys.readouterr().err


def test_shipped_example_passes_check_for_another_node(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The example's carpdevs and hooks are no machine's in particular: checked as a file
    for another node, it passes; what it names on this node is not looked at."""
    example = Path(__file__).parents[2] / "examples" / "carpd.toml"
    assert carpd(["--check", "--other-node", "--config", str(example)]) == 0
    assert (
        "configuration OK (3 vhid(s)), as a file for another node (this node not checked)"
        in capsys.readouterr().out
    )


def test_help_lists_carpd_and_ucarp_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert carpd(["--help"]) == 0
    out = capsys.readouterr().out
    for option in (
        "--config",
        "--check",
        "--socket",
        "--interface",
        "--srcip",
        "--vhid",
        "--pass",
        "--addr",
        "--upscript",
        "--downscript",
        "--preempt",
        "--advbase",
        "--advskew",
        "--neutral",
        "--shutdown",
        "--xparam",
    ):
        assert option in out


def test_ucarp_command_line_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["-i", "eth0", "-s", "192.0.2.1", "-v", "300", "-p", "x", "-a", "192.0.2.100"]
    assert carpd(argv) == 2
    assert "--vhid = 300: allowed range is 1-255" in capsys.readouterr().err


def test_carpctl_against_no_daemon_exits_3_with_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sock = tmp_path / "none.sock"
    assert carpctl(["--socket", str(sock), "status"]) == 3
    err = capsys.readouterr().err
    assert str(sock) in err and "--socket" in err


def test_carpctl_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert carpctl(["frobnicate"]) == 2
    assert carpctl([]) == 2


def test_status_format_is_the_ifconfig_form() -> None:
    result = {
        "vhosts": [
            {
                "name": "carp0",
                "state": "MASTER",
                "carpdev": "eth0",
                "vhid": 1,
                "advbase": 1,
                "advskew": 0,
                "addresses": ["192.0.2.100/24", "2001:db8::100/64"],
            }
        ]
    }
    assert format_status(result) == (
        "carp0: MASTER carpdev eth0 vhid 1 advbase 1 advskew 0\n"
        "\tinet 192.0.2.100/24\n"
        "\tinet6 2001:db8::100/64"
    )


def test_status_says_when_a_master_drops_what_comes_to_its_addresses() -> None:
    """A VRRPv3 MASTER with accept = false holds the addresses but takes nothing sent to
    them: said on each address, as the JSON's accepting = false says it."""
    vh = {
        "name": "vrrp51",
        "state": "MASTER",
        "carpdev": "eth0",
        "vhid": 51,
        "protocol": "vrrp3",
        "advbase": 1,
        "priority": 150,
        "addresses": ["192.0.2.151/24", "2001:db8::151/64"],
        "accepting": False,
    }
    assert format_status({"vhosts": [vh]}).splitlines()[1:] == [
        "\tinet 192.0.2.151/24 (not accepting: accept = false)",
        "\tinet6 2001:db8::151/64 (not accepting: accept = false)",
    ]
    for takes in (True, None):  # accepting, or not MASTER (the addresses are elsewhere)
        lines = format_status({"vhosts": [{**vh, "accepting": takes}]}).splitlines()
        assert lines[1:3] == ["\tinet 192.0.2.151/24", "\tinet6 2001:db8::151/64"]


def test_the_json_says_whether_a_master_accepts(tmp_path: Path) -> None:
    """accepting: only a MASTER holds the addresses; CARP always takes what comes to them,
    VRRPv3 as its accept says."""
    text = GOOD.replace("vhid = 1", 'vhid = 1\nprotocol = "vrrp3"').replace('pass = "secret"', "")
    vrrp = load_config(write(tmp_path, text)).carp[0]
    carp = load_config(write(tmp_path, GOOD)).carp[0]
    strict = vrrp.model_copy(update={"accept": False})
    seen = {
        (cfg.protocol, cfg.accept, state): accepting(SimpleNamespace(cfg=cfg, state=state))  # type: ignore[arg-type]
        for cfg in (vrrp, carp, strict)
        for state in (State.MASTER, State.BACKUP)
    }
    assert seen == {
        ("vrrp3", True, State.MASTER): True,
        ("vrrp3", True, State.BACKUP): None,
        ("carp", True, State.MASTER): True,
        ("carp", True, State.BACKUP): None,
        ("vrrp3", False, State.MASTER): False,
        ("vrrp3", False, State.BACKUP): None,
    }


def test_status_shows_why_and_since_when_and_host_steps_that_went_wrong() -> None:
    vh = {
        "name": "carp0",
        "state": "MASTER",
        "carpdev": "eth0",
        "vhid": 1,
        "advbase": 1,
        "advskew": 0,
        "addresses": ["192.0.2.100/24"],
        "last_transition": "2026-11-28T11:00:00+0000",
        "last_reason": "master timed out",
        "host_steps": [
            {"name": "announce", "runs": 3, "failed": 0, "late": 0, "last_error": None},
            {"name": "add addresses", "runs": 2, "failed": 1, "late": 0, "last_error": "EPERM"},
            {"name": "commit", "runs": 2, "failed": 0, "late": 1, "last_error": None},
        ],
    }
    assert format_status({"vhosts": [vh]}).splitlines()[2:] == [
        "\tsince 2026-11-28T11:00:00+0000: master timed out",
        "\tadd addresses: 1 failed, 0 late of 2; last error: EPERM",
        "\tcommit: 0 failed, 1 late of 2; ok",
    ]


def test_capabilities_are_read_from_proc_status() -> None:
    assert effective_capabilities("Name:\tx\nCapEff:\t0000000000003000\n") == 0x3000
    assert effective_capabilities("Name:\tx\n") == 0


def test_carpctl_web_user_prints_a_hash_never_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    from carpd.web.auth import verify_password

    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse\n"))
    assert carpctl(["web-user", "alice"]) == 0
    line = capsys.readouterr().out.strip()
    name, stored = line.split(":", 1)
    assert name == "alice" and "correct horse" not in line
    assert verify_password(stored, "correct horse")
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert carpctl(["web-user", "alice"]) == 2
