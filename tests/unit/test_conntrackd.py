"""conntrackd -s, as conntrack-tools 1.4.7 prints it (captured in a lab namespace; the
counts edited to be distinct), its lock file, and the conntrackd.conf carpd writes (read
by the real conntrackd)."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from pathlib import Path

import pytest

from carpd.config import ConfigError, load_config
from carpd.config.conntrackd_conf import render
from carpd.daemon.service.main import main as carpd
from carpd.linux import ifaddrs
from carpd.linux.conntrackd import ConntrackdStats, lock_file, parse_stats

CAPTURED = Path(__file__).parent / "data" / "conntrackd-s-1.4.7.txt"


def test_the_statistics_that_matter_are_read() -> None:
    assert parse_stats(CAPTURED.read_text()) == ConntrackdStats(
        internal=4, external=200, send_errors=3, recv_errors=0, malformed=0, lost=116, received=1
    )


def test_anything_else_is_not_statistics() -> None:
    assert parse_stats("") is None
    assert parse_stats("can't connect: is conntrackd running? appropriate permissions?") is None


def test_the_lock_file_is_read_from_conntrackd_conf(tmp_path: Path) -> None:
    conf = tmp_path / "c.conf"
    conf.write_text("General {\n#\tLockFile /old\n\tLockFile /run/x/conntrackd.lock\n}\n")
    assert lock_file(conf) == Path("/run/x/conntrackd.lock")
    assert lock_file(tmp_path / "missing.conf") is None


PAIR = """
[conntrackd]
enabled = true
interface = "sync0"
address = "203.0.113.1"
peer = "203.0.113.2"
run_dir = "{run}"

[[carp]]
name = "lan"
vhid = 1
carpdev = "lan0"
pass = "x"
addresses = ["192.0.2.1/24"]

[[carp]]
name = "wan"
vhid = 2
carpdev = "wan0"
pass = "x"
addresses = ["198.51.100.1/24", "2001:db8::1/64"]
"""


ip = ipaddress.ip_address


@pytest.fixture
def node(
    monkeypatch: pytest.MonkeyPatch,
) -> dict[int, list[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    """This node as --conntrackd-conf reads it: lan0 and wan0 with addresses of its own,
    wan0 also holding a virtual address (a vhid MASTER here), and the sync link."""
    monkeypatch.setattr(ifaddrs, "interfaces", lambda: {"lo": 1, "lan0": 2, "wan0": 3, "sync0": 4})
    own = {
        1: [ip("127.0.0.1")],
        2: [ip("192.0.2.2"), ip("fe80::2")],
        3: [ip("198.51.100.2"), ip("198.51.100.1"), ip("2001:db8::2")],
        4: [ip("203.0.113.1")],
    }
    monkeypatch.setattr(ifaddrs, "addresses", lambda: own)
    return own


def pair(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "carpd.toml"
    path.write_text(PAIR.format(run=tmp_path / "run").replace("[[carp]]", extra + "[[carp]]", 1))
    return path


def test_the_conntrackd_conf_syncs_over_the_link_and_ignores_our_addresses(
    tmp_path: Path,
) -> None:
    text = render(load_config(pair(tmp_path)), {"lan0": [ip("192.0.2.2")], "wan0": []})
    for line in (
        "\t\tIPv4_address 203.0.113.1",
        "\t\tIPv4_Destination_Address 203.0.113.2",
        "\t\tInterface sync0",
        f"\tLockFile {tmp_path / 'run' / 'conntrackd.lock'}",
        f"\t\tPath {tmp_path / 'run' / 'conntrackd.ctl'}",
    ):
        assert line in text.splitlines()
    ignored = [line.split()[1] for line in text.splitlines() if "_address " in line][1:]
    assert ignored == [
        "127.0.0.1", "192.0.2.1", "192.0.2.2", "198.51.100.1", "203.0.113.1", "203.0.113.2",
        "::1", "2001:db8::1",
    ]  # fmt: skip
    assert "ExpectationSync" not in text
    assert "#   lan0: 192.0.2.2\n#   wan0: none\n" in text  # what was taken, and from where


def test_carpd_writes_a_conntrackd_conf_that_conntrackd_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], node: object
) -> None:
    """The real conntrackd parses it: as a client (-s) it reads its whole config before it
    tries the socket, so "can't connect" means the file was understood."""
    binary = shutil.which("conntrackd") or "/usr/sbin/conntrackd"
    assert Path(binary).exists(), "needs the Debian package conntrackd (scripts/setup)"
    assert (
        carpd(["--config", str(pair(tmp_path, "expectations = true\n")), "--conntrackd-conf"]) == 0
    )
    conf = tmp_path / "conntrackd.conf"
    conf.write_text(capsys.readouterr().out)
    assert "\tOptions {\n\t\tExpectationSync On\n\t}" in conf.read_text()
    r = subprocess.run([binary, "-C", str(conf), "-s"], capture_output=True, text=True)
    assert r.returncode == 1
    assert "can't connect" in r.stderr
    assert "syntax error" not in r.stderr


def test_what_conntrackd_cannot_parse_or_needs_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], node: object
) -> None:
    config = load_config(pair(tmp_path))
    hexname = config.model_copy(
        update={"conntrackd": config.conntrackd.model_copy(update={"interface": "ca"})}
    )
    with pytest.raises(ConfigError, match=r"conntrackd.interface = 'ca': conntrackd 1.4 cannot"):
        render(hexname)
    path = tmp_path / "bare.toml"
    path.write_text(pair(tmp_path).read_text().replace('interface = "sync0"\n', ""))
    assert carpd(["--config", str(path), "--conntrackd-conf"]) == 2
    assert capsys.readouterr().err == (
        f"carpd: {path}: conntrackd.interface: needed to write a conntrackd.conf\n"
    )


def test_it_says_which_addresses_it_took_as_this_nodes_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], node: object
) -> None:
    """From each carpdev and the sync link, without the link-locals, and never a virtual
    address that a vhid MASTER here holds now (198.51.100.1 on wan0)."""
    assert carpd(["--config", str(pair(tmp_path)), "--conntrackd-conf"]) == 0
    out, err = capsys.readouterr()
    assert err == (
        "carpd: this node's own addresses, from its interfaces now: lan0 192.0.2.2; "
        "sync0 203.0.113.1; wan0 198.51.100.2, 2001:db8::2\n"
    )
    assert (
        "# This node's own addresses, read from its interfaces when this was written\n"
        "# (ignored with the virtual ones; write it on each node, interfaces up):\n"
        "#   lan0: 192.0.2.2\n#   sync0: 203.0.113.1\n#   wan0: 198.51.100.2, 2001:db8::2\n"
    ) in out


def test_a_missing_interface_or_another_nodes_sync_address_is_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    node: dict[int, list[ipaddress.IPv4Address | ipaddress.IPv6Address]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Run where the interfaces are not (the host, not the node): refused, naming each
    missing interface and its key, rather than a file without the node's addresses."""
    path = pair(tmp_path)
    monkeypatch.setattr(ifaddrs, "interfaces", lambda: {"lo": 1, "lan0": 2})
    assert carpd(["--config", str(path), "--conntrackd-conf"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f'carpd: {path}: carp "wan".carpdev = "wan0": no such interface on this node '
        "(it has: lan0)\n"
        f'{path}: conntrackd.interface = "sync0": no such interface on this node '
        "(it has: lan0)\n"
    )
    # The other node's file: its conntrackd.address is not on this node's sync link.
    monkeypatch.setattr(ifaddrs, "interfaces", lambda: {"lo": 1, "lan0": 2, "wan0": 3, "sync0": 4})
    node[4] = [ip("203.0.113.2")]
    assert carpd(["--config", str(path), "--conntrackd-conf"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f'carpd: {path}: conntrackd.address = "203.0.113.1": not an address of sync0 on this '
        "node (it has: 203.0.113.2): write each node's conntrackd.conf on that node, with its "
        "interfaces configured\n"
    )
