"""The ucarp-compatible command line (carpd.config.ucarp_cli)."""

from __future__ import annotations

import argparse
import ipaddress
import shlex
from pathlib import Path

import pytest

from carpd.config import ConfigError, config_from_ucarp_args, load_config, make_ucarp_parser

BASE = "-i eth0 -s 192.0.2.1 -v 7 -p secret -a 192.0.2.100"


def args(line: str) -> list[str]:
    return shlex.split(line)


def problems(line: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config_from_ucarp_args(args(line))
    return str(info.value).splitlines()


def test_same_config_as_the_equivalent_toml(tmp_path: Path) -> None:
    line = (
        "--interface=eth0 --srcip=192.0.2.1 -v 7 -p secret -a 192.0.2.100 -u /etc/vip-up.sh "
        "-d /etc/vip-down.sh -P -z -x web -b 2 -k 10 -r 4 -n -f local3 -D"
    )
    config = config_from_ucarp_args(args(line))
    toml = tmp_path / "carpd.toml"
    toml.write_text(
        """
        [global]
        log_level = "debug"
        syslog = true
        syslog_facility = "local3"

        [[carp]]
        name = "carp0"
        carpdev = "eth0"
        srcip = "192.0.2.1"
        vhid = 7
        pass = "secret"
        addresses = ["192.0.2.100"]
        up = "/etc/vip-up.sh"
        down = "/etc/vip-down.sh"
        preempt = true
        xparam = "web"
        advbase = 2
        advskew = 10
        deadratio = 4
        neutral = true
        """
    )
    expected = load_config(toml)
    assert config.source == "command line"
    assert config.global_ == expected.global_
    # But for the bare -a: its prefix is the carpdev's subnet's, at start (test_subnets.py).
    bare = {"prefix_from_carpdev": (ipaddress.ip_address("192.0.2.100"),)}
    assert config.carp == (expected.carp[0].model_copy(update=bare),)
    assert config.carp[0].password == b"secret"


def test_ucarp_defaults() -> None:
    config = config_from_ucarp_args(args(BASE))
    g, (c,) = config.global_, config.carp
    # As with ucarp: syslog on, facility daemon, no preemption, 1/0, deadratio 3.
    assert (g.syslog, g.syslog_facility, g.log_level, g.preempt) == (True, "daemon", "info", False)
    assert (c.name, c.vhid, c.carpdev, c.srcip) == (
        "carp0",
        7,
        "eth0",
        ipaddress.IPv4Address("192.0.2.1"),
    )
    assert (c.advbase, c.advskew, c.deadratio, c.preempt, c.neutral) == (1, 0, 3, False, False)
    assert c.addresses == (ipaddress.IPv4Interface("192.0.2.100/32"),)


def test_facility_none_disables_syslog() -> None:
    assert config_from_ucarp_args(args(BASE + " -f none")).global_.syslog is False


def test_passfile_relative_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_bytes(b"from-file\n")
    monkeypatch.chdir(tmp_path)
    config = config_from_ucarp_args(args(BASE.replace("-p secret", "-o pw") + " -u up.sh"))
    c = config.carp[0]
    assert c.password == b"from-file"
    assert c.up == tmp_path / "up.sh"


def test_several_addresses() -> None:
    config = config_from_ucarp_args(args(BASE + " -a 2001:db8::100/64"))
    assert [str(a) for a in config.carp[0].addresses] == ["192.0.2.100/32", "2001:db8::100/64"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("-v 300", "command line: --vhid = 300: allowed range is 1-255"),
        ("-k 255", "command line: --advskew = 255: allowed range is 0-254"),
        ("-b 0", "command line: --advbase = 0: allowed range is 1-255"),
        ("-r 0", "command line: --deadratio = 0: allowed range is 1-255"),
        ("-k ten", 'command line: --advskew = "ten": must be an integer'),
        (
            "-a 192.0.2.300",
            'command line: --addr = "192.0.2.300": not an address/prefix '
            "(e.g. 192.0.2.100/24 or 2001:db8::100/64)",
        ),
        (
            "-s 2001:db8::1",
            'command line: --srcip = "2001:db8::1": not an IPv4 address (e.g. 192.0.2.1)',
        ),
        (
            "-p 0123456789abcdefghijk",
            "command line: --pass = <hidden, 21 characters>: at most 19 characters "
            "(ucarp and the BSDs use only 19)",
        ),
        ("-f mars", 'command line: --facility = "mars": allowed values: "auth", "authpriv"'),
        ("-i eth0:1", 'command line: --interface = "eth0:1": not an interface name'),
    ],
)
def test_errors_name_the_option(change: str, expected: str) -> None:
    lines = problems(f"{BASE} {change}")
    assert len(lines) == 1 and lines[0].startswith(expected)


def test_pass_and_passfile_are_exclusive(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("secret\n")
    assert problems(f"{BASE} -o {tmp_path / 'pw'}") == [
        "command line: exactly one of --pass or --passfile is required (found both)"
    ]
    assert problems(BASE.replace("-p secret", "")) == [
        "command line: exactly one of --pass or --passfile is required (found neither)"
    ]


def test_missing_required_options() -> None:
    assert problems("-v 7") == [
        "command line: --srcip: missing required option (as with ucarp)",
        "command line: exactly one of --pass or --passfile is required (found neither)",
        "command line: --interface: missing required option",
        "command line: --addr: missing required option",
    ]


def test_password_not_in_errors() -> None:
    secret = "0123456789abcdefghijklmnop"
    with pytest.raises(ConfigError) as info:
        config_from_ucarp_args(args(f"-i eth0 -s 192.0.2.1 -v 300 -p {secret} -a 192.0.2.1"))
    assert secret not in str(info.value) and secret not in repr(info.value)
    assert info.value.__cause__ is None
    config = config_from_ucarp_args(args(BASE.replace("secret", "hush-hush")))
    assert "hush-hush" not in repr(config)


def test_shutdown_is_accepted_and_mcastip_default_too() -> None:
    assert config_from_ucarp_args(args(BASE + " -z --mcastip 224.0.0.18")).carp[0].vhid == 7


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (
            "-B",
            "command line: -B/--daemonize: carpd does not daemonize; "
            "run carpd in the foreground under systemd",
        ),
        ("--daemonize", "command line: -B/--daemonize: carpd does not daemonize"),
        ("-S", "command line: -S/--ignoreifstate: carpd does not support this yet"),
        ("-M", "command line: -M/--nomcast: carpd does not support this yet"),
        (
            "--mcastip 239.1.2.3",
            'command line: --mcastip = "239.1.2.3": carpd does not support a multicast group '
            "other than 224.0.0.18 yet",
        ),
        ("--mcast 239.1.2.3", 'command line: --mcastip = "239.1.2.3"'),  # getopt-style prefix
    ],
)
def test_unsupported_options_are_refused(option: str, expected: str) -> None:
    (line,) = problems(f"{BASE} {option}")
    assert line.startswith(expected)


def test_usage_errors_raise_config_error() -> None:
    assert problems(BASE + " --bogus") == ["command line: unrecognized arguments: --bogus"]
    assert problems("-i eth0 -v") == ["command line: argument -v/--vhid: expected one argument"]


def test_parser_for_help_and_as_parent() -> None:
    text = make_ucarp_parser().format_help()
    for option in ("--interface", "--srcip", "--vhid", "--passfile", "--mcastip", "--xparam"):
        assert option in text
    parent = make_ucarp_parser(add_help=False)
    child = argparse.ArgumentParser(parents=[parent], conflict_handler="resolve")
    ns = child.parse_args(args(BASE + " -P"))
    assert (ns.interface, ns.vhid, ns.preempt) == ("eth0", "7", True)
