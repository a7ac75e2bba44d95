"""carpd --check and --conntrackd-conf read the node they run on: the interfaces and
addresses of the network namespace they run in (not the host's, not /sys of whoever
mounted it), through their own netlink dump."""

from __future__ import annotations

from pathlib import Path

from carpd_lab.netlab import Lab, carpd_argv

CONFIG = """
[global]
service_checks = "{tmp}/checks"

[[carp]]
name = "lan"
vhid = 1
carpdev = "{carpdev}"
pass = "secret"
addresses = ["192.0.2.100/24"]

[conntrackd]
interface = "sync0"
address = "203.0.113.1"
peer = "203.0.113.2"
run_dir = "{tmp}/run"
"""


def write(tmp: Path, carpdev: str) -> Path:
    (tmp / "checks").mkdir(exist_ok=True)
    path = tmp / f"{carpdev}.toml"
    path.write_text(CONFIG.format(tmp=tmp, carpdev=carpdev))
    return path


def test_check_sees_the_namespaces_interfaces_and_their_addresses(lab: Lab) -> None:
    fw = lab.add_host("fw1", "192.0.2.1/24")
    lab.add_interface(fw, "bare0", "br1", None)  # up, no address of its own
    good = fw.run(carpd_argv("--config", str(write(lab.tmp, "eth0")), "--check"))
    assert good.returncode == 0, good.stderr
    assert "configuration OK (1 vhid(s))" in good.stdout
    # Only this namespace's interfaces: the host's others (ifb0, a bridge...) are not here.
    path = write(lab.tmp, "eth1")
    missing = fw.run(carpd_argv("--config", str(path), "--check"))
    assert missing.returncode == 2
    assert missing.stderr == (
        f'carpd: {path}: carp "lan".carpdev = "eth1": no such interface on this node '
        "(it has: bare0, eth0)\n"
    )
    path = write(lab.tmp, "bare0")
    bare = fw.run(carpd_argv("--config", str(path), "--check"))
    assert bare.returncode == 2
    assert bare.stderr == (
        f'carpd: {path}: carp "lan": carpdev bare0 has no IPv4 address of its own to send '
        "adverts from: add one or set srcip\n"
    )
    other = fw.run(carpd_argv("--config", str(path), "--check", "--other-node"))
    assert other.returncode == 0, other.stderr


def test_conntrackd_conf_takes_the_nodes_own_addresses_and_never_a_vip(lab: Lab) -> None:
    fw = lab.add_host("fw1", "192.0.2.1/24")
    path = write(lab.tmp, "eth0")
    # Before the sync link is there: refused, nothing written.
    early = fw.run(carpd_argv("--config", str(path), "--conntrackd-conf"))
    assert (early.returncode, early.stdout) == (2, "")
    assert early.stderr == (
        f'carpd: {path}: conntrackd.interface = "sync0": no such interface on this node '
        "(it has: eth0)\n"
    )
    lab.add_interface(fw, "sync0", "br1", "203.0.113.1/24")
    # This node is MASTER now: the VIP is on eth0 beside the node's own address.
    fw.check("ip", "addr", "add", "192.0.2.100/24", "dev", "eth0")
    r = fw.run(carpd_argv("--config", str(path), "--conntrackd-conf"))
    assert r.returncode == 0, r.stderr
    assert r.stderr == (
        "carpd: this node's own addresses, from its interfaces now: eth0 192.0.2.1; "
        "sync0 203.0.113.1\n"
    )
    assert "#   eth0: 192.0.2.1\n#   sync0: 203.0.113.1\n" in r.stdout
    ignored = [x.split()[1] for x in r.stdout.splitlines() if x.startswith("\t\t\tIPv")]
    assert "192.0.2.100" in ignored  # as a virtual address, not as the node's own
