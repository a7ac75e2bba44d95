"""carpctl doctor's checks on a stand-in node (carpd.doctor.node.Host: sysctls, addresses,
bridges, files, the ruleset) and a status sample: each problem is named with what was
seen and the fix, a well node gives no problem, and the exit status follows."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from carpd.config import Config
from carpd.config.conntrackd_conf import render
from carpd.config.load import load_config
from carpd.ctl.main import EXIT_CHECK_FAILED, main
from carpd.doctor import daemon, node
from carpd.doctor.report import Finding
from carpd.doctor.ruleset import Ruleset, parse
from carpd.doctor.run import examine
from carpd.linux.ifaddrs import IPInterface

VHID = """
[[carp]]
name = "lan"
vhid = 1
carpdev = "{carpdev}"
pass = "secret"
vmac = {vmac}
addresses = ["192.0.2.100/24"]
"""
CONNTRACKD = """
[conntrackd]
enabled = true
interface = "sync0"
address = "203.0.113.1"
peer = "203.0.113.2"
port = 3780
config = "{conf}"
"""


def config(
    tmp_path: Path, carpdev: str = "eth0", vmac: bool = False, conntrackd: bool = False
) -> Config:
    text = f'[global]\ncontrol_socket = "{tmp_path}/carpd.sock"\n'
    if conntrackd:
        text += CONNTRACKD.format(conf=tmp_path / "conntrackd.conf")
    text += VHID.format(carpdev=carpdev, vmac="true" if vmac else "false")
    path = tmp_path / "carpd.toml"
    path.write_text(text)
    return load_config(path)


class FakeHost(node.Host):
    def __init__(
        self,
        sysctls: dict[str, str] | None = None,
        addresses: dict[str, list[str]] | None = None,
        links: dict[str, str] | None = None,
        masters: dict[str, str] | None = None,
        files: dict[Path, str] | None = None,
        ruleset: Ruleset | str = "no nft here",
    ) -> None:
        self.sysctls = sysctls or {}
        self.held = addresses or {"eth0": ["192.0.2.1/24"]}
        self.links = links or {}
        self.masters = masters or {}
        self.files = files or {}
        self.rules = ruleset

    def sysctl(self, name: str) -> str | None:
        return self.sysctls.get(name)

    def ruleset(self) -> Ruleset | str:
        return self.rules

    def addresses(self) -> dict[str, list[IPInterface]]:
        return {n: [ipaddress.ip_interface(a) for a in found] for n, found in self.held.items()}

    def link_file(self, ifname: str, rel: str) -> str | None:
        return self.links.get(f"{ifname}/{rel}")

    def master(self, ifname: str) -> str | None:
        return self.masters.get(ifname)

    def ports(self, bridge: str) -> list[str]:
        return sorted(p for p, m in self.masters.items() if m == bridge)

    def read(self, path: Path) -> str | None:
        return self.files.get(path)


def only(findings: list[Finding], check: str) -> Finding:
    found = [f for f in findings if f.check == check]
    assert len(found) == 1, found
    return found[0]


def test_the_same_vhid_twice_on_a_carpdev_is_the_loaders_error(tmp_path: Path) -> None:
    path = tmp_path / "carpd.toml"
    twice = VHID.format(carpdev="eth0", vmac="false")
    path.write_text(twice + twice.replace('"lan"', '"lan2"').replace("192.0.2.100", "192.0.2.101"))
    report = examine(str(path), None, "no socket", FakeHost())
    assert [f.check for f in report.findings] == ["config"]
    (f,) = report.problems
    assert "duplicate vhid 1 on carpdev eth0" in f.saw
    assert f.fix == f"carpd --config {path} --check, and the key it names"


def test_rp_filter_strict_on_the_carpdev_or_all(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    strict_all = FakeHost({"ipv4/conf/all/rp_filter": "1", "ipv4/conf/eth0/rp_filter": "0"})
    (f,) = node.rp_filter(cfg, strict_all)
    assert f.ok is False and f.subject == "eth0"
    assert f.saw.startswith("net.ipv4.conf.all.rp_filter = 1, net.ipv4.conf.eth0.rp_filter = 0")
    assert f.fix is not None and f.fix.startswith("sysctl -w net.ipv4.conf.all.rp_filter=2 (")
    loose = FakeHost({"ipv4/conf/all/rp_filter": "2", "ipv4/conf/eth0/rp_filter": "1"})
    (f,) = node.rp_filter(cfg, loose)  # the kernel takes the larger: 2, loose
    assert f.ok is True
    vlan = config(tmp_path, carpdev="eth0.100")
    host = FakeHost({"ipv4/conf/all/rp_filter": "0", "ipv4/conf/eth0.100/rp_filter": "1"})
    (f,) = node.rp_filter(vlan, host)
    assert f.ok is False and f.fix is not None
    assert f.fix.startswith("sysctl -w net/ipv4/conf/eth0.100/rp_filter=2")


def test_tcp_loose_matters_only_with_conntrackd(tmp_path: Path) -> None:
    host = FakeHost({"netfilter/nf_conntrack_tcp_loose": "1"})
    (f,) = node.tcp_loose(config(tmp_path), host)
    assert f.ok is None
    (f,) = node.tcp_loose(config(tmp_path, conntrackd=True), host)
    assert f.ok is False
    assert f.saw.startswith("net.netfilter.nf_conntrack_tcp_loose = 1 on a node with")
    assert f.fix is not None and f.fix.startswith(
        "sysctl -w net.netfilter.nf_conntrack_tcp_loose=0"
    )
    off = FakeHost({"netfilter/nf_conntrack_tcp_loose": "0"})
    (f,) = node.tcp_loose(config(tmp_path, conntrackd=True), off)
    assert f.ok is True


def test_the_sync_port_comes_from_conntrackd_conf(tmp_path: Path) -> None:
    cfg = config(tmp_path, conntrackd=True)
    written = render(cfg).replace("Port 3780", "Port 3790")
    host = FakeHost(files={tmp_path / "conntrackd.conf": written})
    link = node.sync_link(cfg, host)
    assert link is not None
    assert (link.interface, link.port, str(link.peer)) == ("sync0", 3790, "203.0.113.2")
    assert link.source == str(tmp_path / "conntrackd.conf")
    allow = {
        "match": {
            "op": "==",
            "left": {"payload": {"protocol": "udp", "field": "dport"}},
            "right": 3780,
        }
    }
    rules = parse(
        {
            "nftables": [
                {
                    "chain": {
                        "family": "inet",
                        "table": "fw",
                        "name": "in",
                        "hook": "input",
                        "type": "filter",
                        "prio": 0,
                        "policy": "drop",
                    }
                },
                {
                    "rule": {
                        "family": "inet",
                        "table": "fw",
                        "chain": "in",
                        "handle": 3,
                        "expr": [allow, {"accept": None}],
                    }
                },
            ]
        }
    )
    (f,) = node.conntrackd_port(cfg, host, rules)
    assert f.ok is False and f.subject == "sync0"
    assert "conntrackd's UDP port 3790 on sync0 from 203.0.113.2" in f.saw
    assert f.saw.endswith("drop by table inet fw chain in: policy drop")
    assert f.fix == 'nft insert rule inet fw in iifname "sync0" udp dport 3790 accept'
    # Without the file: [conntrackd]'s port, which the rule lets in.
    (f,) = node.conntrackd_port(cfg, FakeHost(), rules)
    assert f.ok is True and "port 3780" in f.saw


def test_a_vip_on_another_interface_answers_arp_with_arp_ignore_0(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    zero = {"ipv4/conf/all/arp_ignore": "0", "ipv4/conf/eth0/arp_ignore": "0"}
    host = FakeHost(zero, {"eth0": ["192.0.2.1/24"], "lo": ["192.0.2.100/32"]})
    (f,) = node.arp(cfg, host, running=False)
    assert f.ok is False and f.subject == "lan"
    assert "192.0.2.100 of lan is on lo too" in f.saw and "eth0 answers ARP for it" in f.saw
    assert f.fix == "ip addr del 192.0.2.100/32 dev lo (and from its configuration)"
    # On the carpdev itself (a MASTER holds it there): not this check's business.
    (f,) = node.arp(cfg, FakeHost(zero, {"eth0": ["192.0.2.1/24", "192.0.2.100/24"]}), False)
    assert f.ok is True


def test_vmac_carpdev_answering_arp_while_carpd_runs(tmp_path: Path) -> None:
    cfg = config(tmp_path, vmac=True)
    zero = {"ipv4/conf/all/arp_ignore": "0", "ipv4/conf/eth0/arp_ignore": "0"}
    host = FakeHost(zero, {"eth0": ["192.0.2.1/24"], "lan": ["192.0.2.100/24"]})
    (f,) = node.arp(cfg, host, running=False)  # carpd sets it at start
    assert f.ok is True
    (f,) = node.arp(cfg, host, running=True)
    assert f.ok is False and f.fix == (
        "sysctl -w net.ipv4.conf.eth0.arp_ignore=1 (carpd sets it at start; something set it back)"
    )
    one = {"ipv4/conf/all/arp_ignore": "1", "ipv4/conf/eth0/arp_ignore": "0"}
    (f,) = node.arp(cfg, FakeHost(one, host.held), running=True)  # all: the larger wins
    assert f.ok is True


def test_a_port_of_the_carpdevs_bridge_that_floods_no_multicast(tmp_path: Path) -> None:
    """Snooping without a querier is no fault (the bridge floods); a port with
    mcast_flood off gets no IPv4 advert."""
    cfg = config(tmp_path)
    masters = {"eth0": "br0", "vm1": "br0"}
    snooping = {"br0/bridge/multicast_snooping": "1", "br0/bridge/multicast_querier": "0"}
    (f,) = node.bridges(cfg, FakeHost(links=snooping, masters=masters))
    assert f.ok is True and f.saw == "br0 (eth0's bridge): every port floods"
    closed = {**snooping, "br0/brif/vm1/multicast_flood": "0", "br0/brif/eth0/multicast_flood": "1"}
    (f,) = node.bridges(cfg, FakeHost(links=closed, masters=masters))
    assert f.ok is False and f.subject == "br0"
    assert f.saw == (
        "br0 (eth0's bridge): mcast_flood off on vm1: the IPv4 adverts (224.0.0.18, flooded, "
        "never snooped) do not go out of it"
    )
    assert f.fix == "bridge link set dev vm1 mcast_flood on"
    as_carpdev = config(tmp_path, carpdev="br0")
    (f,) = node.bridges(as_carpdev, FakeHost(links=closed, masters={"vm1": "br0"}))
    assert f.ok is False and "(the carpdev)" in f.saw
    (f,) = node.bridges(cfg, FakeHost())
    assert f.ok is True and f.subject is None


def status(*diagnostics: dict[str, Any], dropped: dict[str, int] | None = None) -> dict[str, Any]:
    vh = {"name": "lan", "diagnostics": list(diagnostics), "counters": {"dropped": dropped or {}}}
    return {"pid": 1, "node": "fw1", "vhosts": [vh]}


def diagnosis(kind: str, text: str) -> dict[str, Any]:
    return {"kind": kind, "level": "warning", "text": text, "since": "t0", "last": "t1"}


def test_bad_hmac_and_a_vhid_clash_from_the_daemons_diagnoses() -> None:
    text = "adverts from 192.0.2.2 for vhid 1 fail the HMAC check: ..."
    bad = status(diagnosis("bad_hmac", text), dropped={"bad_hmac": 7})
    found = list(daemon.advert_checks(bad))
    auth, speakers = only(found, "advert-auth"), only(found, "vhid-speakers")
    assert auth.ok is False and auth.subject == "lan"
    assert auth.saw == f"{text} (7 advert(s) dropped as bad_hmac), since t0, last t1"
    assert speakers.ok is True
    clash = diagnosis("vhid-clash", "vhid 1 is also used by a VRRP router at 192.0.2.7")
    found = list(daemon.advert_checks(status(clash)))
    assert only(found, "vhid-speakers").ok is False
    assert "a VRRP router at 192.0.2.7" in only(found, "vhid-speakers").saw
    silence = diagnosis("silence", "no advert heard")  # not these checks' business
    assert all(f.ok for f in daemon.advert_checks(status(silence)))


def test_a_well_node_gives_a_clean_report_and_exit_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path)
    sysctls = {
        "ipv4/conf/all/rp_filter": "0",
        "ipv4/conf/eth0/rp_filter": "2",
        "ipv4/conf/all/arp_ignore": "0",
        "ipv4/conf/eth0/arp_ignore": "0",
    }
    well, ill = (
        FakeHost(sysctls),
        FakeHost({**sysctls, "ipv4/conf/all/rp_filter": "1", "ipv4/conf/eth0/rp_filter": "0"}),
    )
    report = examine(cfg.source, status(), None, well)
    assert not report.problems and report.running
    assert report.text().endswith("\nno problems found")
    assert report.to_json()["ok"] is True
    ran = {f.check for f in report.findings}
    assert ran == {
        "config", "carp-filter", "snat-adverts", "conntrack-tcp-loose", "conntrackd-port",
        "rp-filter", "arp-vip", "bridge-flood", "advert-auth", "vhid-speakers",
        "pair-peer", "pair-settings", "pair-preempt", "pair-clock",
    }  # fmt: skip
    # No [[cluster.peer]]: the pair checks are skipped, not a problem.
    pairs = [f for f in report.findings if f.check.startswith("pair-")]
    assert {(f.ok, f.warning) for f in pairs} == {(None, False)}
    # carpctl: 0 when well, 4 with a problem; unreachable carpd is said, not a problem.
    for host, code in ((well, 0), (ill, EXIT_CHECK_FAILED)):
        monkeypatch.setattr(node, "Host", lambda host=host: host)
        assert main(["--config", cfg.source, "doctor"]) == code
        out = capsys.readouterr().out
        assert f"carpd: not reachable ({tmp_path}/carpd.sock: " in out
        assert "advert-auth: skipped: needs the running carpd" in out
        assert "pair-settings: skipped: needs the running carpd" in out
    assert "rp-filter eth0: PROBLEM: " in out and "\tfix: sysctl -w net.ipv4.conf.all" in out
