"""carpd --check on this node: what the file names must be here (carpd.daemon.service.nodecheck),
named like config errors, exit 2; --other-node for a file meant for another node. This
node's interfaces are faked (the lab checks the real ones, in a namespace)."""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
import textwrap
from pathlib import Path

import pytest

from carpd.config.errors import show
from carpd.daemon.service.main import main as carpd
from carpd.linux import ifaddrs

ip = ipaddress.ip_address


@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> None:
    """lan0 with an IPv4 address and a link-local; wan0 with no address at all."""
    monkeypatch.setattr(ifaddrs, "interfaces", lambda: {"lo": 1, "lan0": 2, "wan0": 3})
    own = {1: [ip("127.0.0.1")], 2: [ip("192.0.2.2"), ip("fe80::2")], 3: []}
    monkeypatch.setattr(ifaddrs, "addresses", lambda: own)


def script(path: Path, mode: int = 0o755) -> Path:
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(mode)
    return path


def shown(tmp_path: Path, name: str) -> str:
    """A path under tmp_path as a message shows it (shortened past 80 characters)."""
    return show(str(tmp_path / name))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "carpd.toml"
    path.write_text(textwrap.dedent(text))
    return path


LAN = """\
    [[carp]]
    name = "lan"
    vhid = 1
    carpdev = "lan0"
    pass = "secret"
    addresses = ["192.0.2.100/24"]
"""


def check(capsys: pytest.CaptureFixture[str], path: Path, *more: str) -> tuple[int, list[str], str]:
    rc = carpd(["--check", "--config", str(path), *more])
    out, err = capsys.readouterr()
    return rc, [x.removeprefix("carpd: ") for x in err.splitlines()], out


def test_a_good_file_passes_on_this_node(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], node: None
) -> None:
    up = script(tmp_path / "up.sh")
    rc, err, out = check(capsys, write(tmp_path, LAN + f'    up = "{up}"\n'))
    assert (rc, err) == (0, [])
    assert out == f"carpd: {tmp_path / 'carpd.toml'}: configuration OK (1 vhid(s))\n"


def test_a_missing_carpdev_and_a_carpdev_without_an_address_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], node: None
) -> None:
    text = LAN.replace('"lan0"', '"eth9"') + LAN.replace('"lan"', '"wan"').replace(
        '"lan0"', '"wan0"'
    ).replace("vhid = 1", "vhid = 2")
    path = write(tmp_path, text)
    rc, err, out = check(capsys, path)
    assert rc == 2 and out == ""
    assert err == [
        f'{path}: carp "lan".carpdev = "eth9": no such interface on this node (it has: lan0, wan0)',
        f'{path}: carp "wan": carpdev wan0 has no IPv4 address of its own to send adverts '
        "from: add one or set srcip",
    ]
    # The same file for another node: only the file is checked.
    rc, err, out = check(capsys, path, "--other-node")
    assert (rc, err) == (0, [])
    assert "configuration OK (2 vhid(s)), as a file for another node (this node not checked)" in out


def test_a_virtual_address_on_the_carpdev_is_not_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], node: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A VIP held now (this node is MASTER) is no source for the adverts at the next start."""
    monkeypatch.setattr(ifaddrs, "addresses", lambda: {2: [ip("192.0.2.100")]})
    rc, err, _ = check(capsys, write(tmp_path, LAN))
    assert rc == 2
    assert err[0].endswith('carp "lan": carpdev lan0 has no IPv4 address of its own to send '
                           "adverts from: add one or set srcip")  # fmt: skip


def test_programs_it_runs_must_be_there_and_executable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], node: None
) -> None:
    script(tmp_path / "down.sh", 0o644)
    (tmp_path / "dir").mkdir()
    text = LAN + textwrap.dedent(
        """\
        up = "absent.sh"
        down = "down.sh"
        pre_release = "dir"
        [[action]]
        name = "notify"
        vhid = "lan"
        on = ["master"]
        run = ["no-such-program-carpd", "x"]
        [[follow]]
        interface = "wan9"
        vhid = "lan"
        dhcp = "none"
        """
    )
    path = write(tmp_path, text)
    rc, err, _ = check(capsys, path)
    assert rc == 2
    assert err == [
        f'{path}: carp "lan".up = {shown(tmp_path, "absent.sh")}: no such file',
        f'{path}: carp "lan".down = {shown(tmp_path, "down.sh")}: not executable (chmod +x)',
        f'{path}: carp "lan".pre_release = {shown(tmp_path, "dir")}: a directory, not a program',
        f'{path}: action "notify".run[0] = "no-such-program-carpd": no-such-program-carpd: '
        f"no such program in PATH ({os.environ['PATH']})",
        f'{path}: follow[0].interface = "wan9": no such interface on this node '
        "(it has: lan0, wan0)",
    ]


def test_files_read_later_must_be_readable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], node: None
) -> None:
    (tmp_path / "cert.pem").write_text("")
    text = LAN + textwrap.dedent(
        """\
        [web]
        listen = "127.0.0.1"
        tls_cert = "cert.pem"
        tls_key = "key.pem"
        [conntrackd]
        enabled = true
        binary = "conntrackd-absent"
        config = "conntrackd.conf"
        interface = "sync0"
        """
    )
    path = write(tmp_path, text)
    at = functools.partial(shown, tmp_path)
    rc, err, _ = check(capsys, path)
    assert rc == 2
    # [web] is off: its files are not read, so not checked either.
    assert err == [
        f"{path}: conntrackd.binary = {at('conntrackd-absent')}: no such file",
        f"{path}: conntrackd.config = {at('conntrackd.conf')}: cannot read it: "
        "No such file or directory",
        f'{path}: conntrackd.interface = "sync0": no such interface on this node '
        "(it has: lan0, wan0)",
    ]
    # [web] on: its files are read at start, so checked now (carpd[web] is installed here)
    rc, err, _ = check(capsys, write(tmp_path, text.replace("[web]", "[web]\nenabled = true")))
    assert (
        f"{path}: web.tls_key = {shown(tmp_path, 'key.pem')}: cannot read it: "
        "No such file or directory" in err
    )
    assert not [x for x in err if "tls_cert" in x]


def test_service_checks_a_directory_of_programs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], node: None
) -> None:
    checks = tmp_path / "checks"
    checks.mkdir()
    script(checks / "ok")
    script(checks / "forgot-chmod", 0o644)
    script(checks / ".disabled", 0o644)
    path = write(tmp_path, 'global.service_checks = "checks"\n' + LAN)
    rc, err, out = check(capsys, path)
    assert rc == 0 and "configuration OK" in out
    assert err == [
        f"warning: {path}: global.service_checks = {shown(tmp_path, 'checks')}: forgot-chmod "
        "is not executable, so it is not run (chmod +x to run it)"
    ]
    rc, err, _ = check(capsys, write(tmp_path, 'global.service_checks = "absent"\n' + LAN))
    assert rc == 0
    assert err == [
        f"warning: {path}: global.service_checks = {shown(tmp_path, 'absent')}: no such directory, "
        "so no service checks run"
    ]
    rc, err, _ = check(capsys, write(tmp_path, 'global.service_checks = "checks/ok"\n' + LAN))
    assert (rc, err) == (
        2,
        [f"{path}: global.service_checks = {shown(tmp_path, 'checks/ok')}: not a directory"],
    )


def test_ifstated_commands_name_programs_that_are_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], node: None
) -> None:
    (tmp_path / "ifstated.conf").write_text(
        textwrap.dedent(
            """\
            init-state one
            state one {
                init {
                    run "FOO=1 no-such-program-carpd --now"
                }
                if ! "/nonexistent/probe -q" every 5 {
                    run "echo $FOO | logger"
                    set-state two
                }
            }
            state two {
                init {
                    run "sh -c 'exit 0'"
                }
            }
            """
        )
    )
    path = write(tmp_path, LAN + '[ifstated]\nfile = "ifstated.conf"\n')
    rc, err, _ = check(capsys, path)
    assert rc == 2
    where = f"{path}: ifstated.file = {shown(tmp_path, 'ifstated.conf')}"
    assert err == [
        f'{where}: "FOO=1 no-such-program-carpd --now": no-such-program-carpd: no such program '
        f"in PATH ({os.environ['PATH']})",
        f'{where}: "/nonexistent/probe -q": no such file',
    ]


def test_an_overlay_value_is_named_by_the_overlay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], node: None
) -> None:
    (tmp_path / "node.toml").write_text('[carp.lan]\ncarpdev = "eth7"\n')
    path = write(tmp_path, 'global.overlay = "node.toml"\n' + LAN)
    rc, err, _ = check(capsys, path)
    assert (rc, err) == (
        2,
        [f'{tmp_path}/node.toml: carp.lan.carpdev = "eth7": no such interface on this node '
         "(it has: lan0, wan0)"],
    )  # fmt: skip


def test_a_ucarp_command_line_is_named_by_its_options(
    capsys: pytest.CaptureFixture[str],
    node: None,
) -> None:
    argv = ["-i", "eth9", "-s", "192.0.2.2", "-v", "7", "-p", "pw", "-a", "192.0.2.100"]
    assert carpd([*argv, "--check"]) == 2
    err = capsys.readouterr().err
    assert err == (
        'carpd: command line: --interface = "eth9": no such interface on this node '
        "(it has: lan0, wan0)\n"
    )


def test_other_node_goes_with_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], node: None
) -> None:
    assert carpd(["--other-node", "--config", str(write(tmp_path, LAN))]) == 2
    assert "--other-node goes with --check" in capsys.readouterr().err


def test_the_netlink_dump_reads_this_namespace() -> None:
    """Unfaked: the names are if_nameindex(3)'s, the addresses are by those indexes, and
    those of lo are loopback ones (none while lo is down)."""
    real = {n: i for i, n in socket.if_nameindex()}
    assert ifaddrs.interfaces() == real and "lo" in real
    by_index = ifaddrs.addresses()
    assert set(by_index) <= set(real.values())
    assert all(a.is_loopback for a in by_index.get(real["lo"], []))
