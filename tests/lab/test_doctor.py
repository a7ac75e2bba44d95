"""carpctl doctor on real nodes: each fault is made for real in a node's namespace
(nftables rules, sysctls, an address, a bridge, a password, another speaker, a file) and
the doctor names it, with what it saw and a fix; the fix, run as printed, makes the
report clean again. A clean pair gives a clean report (exit 0)."""

from __future__ import annotations

import json
import shlex
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from carpd_lab import bounds
from carpd_lab.cluster import Node, VhidSpec, start_master_first
from carpd_lab.netlab import Host, Lab
from carpd_lab.pairview import INTERVAL, TIMEOUT, join

ROOT = Path(__file__).parents[2]
VIPS = ("192.0.2.100/24", "2001:db8::100/64")
DOCTOR_TIME = 60  # seconds: nft, sysctls and a status request; it takes well under one


def doctor(host: Host, config: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """carpctl doctor --json in the node's namespace: (exit status, report)."""
    argv = [sys.executable, "-m", "carpd.ctl", "--config", str(config), "doctor", "--json"]
    r = host.run([*argv, *args], timeout=DOCTOR_TIME, cwd=ROOT)
    assert r.returncode in (0, 4), r.stdout + r.stderr
    report: dict[str, Any] = json.loads(r.stdout)
    return r.returncode, report


def problems(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["ok"] is False]


def named(host: Host, config: Path, check: str) -> list[dict[str, Any]]:
    """The report names problems of ``check`` only; exit status 4."""
    code, report = doctor(host, config)
    found = problems(report)
    assert found and {f["check"] for f in found} == {check}, found
    assert code == 4 and report["ok"] is False
    return found


def one_problem(host: Host, config: Path, check: str) -> dict[str, Any]:
    """The report names exactly one problem, of ``check``; exit status 4."""
    (found,) = named(host, config, check)
    return found


def run_fix(host: Host, fix: str) -> None:
    """The fix as the doctor printed it: the commands before its parenthesised note."""
    for command in fix.split(" (", 1)[0].split("; "):
        host.check(*shlex.split(command))


def assert_clean(host: Host, config: Path) -> dict[str, Any]:
    code, report = doctor(host, config)
    assert problems(report) == [] and code == 0, report
    assert report["ok"] is True
    return report


def wait_for(what: str, timeout: float, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def pair(
    lab: Lab, n2_extra: dict[str, Any] | None = None, password: str = "lab-secret"
) -> tuple[Node, Node]:
    h1 = lab.add_host("n1", "192.0.2.1/24", "2001:db8::1/64")
    h2 = lab.add_host("n2", "192.0.2.2/24", "2001:db8::2/64")
    n1 = Node(lab, h1, [VhidSpec(vhid=1, advskew=0, addresses=VIPS)])
    spec2 = VhidSpec(vhid=1, advskew=100, addresses=VIPS, password=password)
    spec2.extra.update(n2_extra or {})
    return n1, Node(lab, h2, [spec2])


# One ARP request from the client's eth0; prints the MAC that answered with argv[2]'s (or
# nothing within argv[3] seconds).
ARP_REPLY = """
import sys
from scapy.all import ARP, Ether, conf, srp
conf.verb = 0
target, want, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
ask = Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=target)
answered, _ = srp(ask, iface="eth0", multi=True, timeout=timeout,
                  stop_filter=lambda p: ARP in p and p[ARP].hwsrc == want)
print(" ".join(sorted({r[ARP].hwsrc for _, r in answered} & {want})))
"""


# The firewall of docs/firewall.md, on a node's own namespace.
FIREWALL = """
table inet fw {
    chain input {
        type filter hook input priority filter; policy drop;
        iif "lo" accept
        ct state established,related accept
        meta l4proto 112 accept
        iifname "sync0" udp dport 3780 accept
        meta l4proto ipv6-icmp accept
    }
}
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat;
        oifname "wan0" ip saddr 192.0.2.0/24 snat to 198.51.100.1
    }
}
"""


def test_a_clean_pair_gives_a_clean_report_then_each_fault_is_named_and_its_fix_works(
    lab: Lab,
) -> None:
    n1, n2 = pair(lab)
    start_master_first(n1, n2)
    for node in (n1, n2):
        node.host.check("nft", "-f", "-", stdin=FIREWALL)
        node.host.check("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0")
        node.host.check("sysctl", "-qw", "net.ipv4.conf.eth0.rp_filter=2")
        report = assert_clean(node.host, node.config)
        assert report["running"] is True
        ran = {f["check"]: f["ok"] for f in report["findings"]}
        assert ran["carp-filter"] is ran["advert-auth"] is ran["vhid-speakers"] is True
    h2 = n2.host

    # 1. An input chain that drops what it does not expect, and nothing for 112: the
    # backup hears no more adverts and takes over, and the doctor says why.
    h2.check("nft", "flush", "chain", "inet", "fw", "input")
    h2.check("nft", "add", "rule", "inet", "fw", "input", "ct", "state", "established", "accept")
    mark = n2.mark()
    v4, v6 = named(h2, n2.config, "carp-filter")
    assert v4["subject"] == v6["subject"] == "eth0"
    for f, family in ((v4, 4), (v6, 6)):
        policy = "drop by table inet fw chain input: policy drop"
        assert f["saw"] == f"IPv{family} adverts into eth0: {policy}"
    f = v4
    assert f["fix"] == v6["fix"]
    assert f["fix"] == 'nft insert rule inet fw input iifname "eth0" meta l4proto vrrp accept'
    n2.wait_state("MASTER", timeout=bounds.takeover(n2.master_down) + bounds.REACTION, start=mark)
    mark = n2.mark()
    run_fix(h2, f["fix"])
    n2.wait_state("BACKUP", timeout=n1.vhids[0].advert_interval + bounds.REACTION, start=mark)
    assert_clean(h2, n2.config)

    # An explicit drop of ff02::12 ahead of the accept: named by its handle.
    h2.check("nft", "insert", "rule", "inet", "fw", "input", "ip6", "daddr", "ff02::12", "drop")
    f = one_problem(h2, n2.config, "carp-filter")
    assert f["saw"].startswith("IPv6 adverts into eth0: drop by table inet fw chain input handle ")
    assert f["saw"].endswith(": ip6 daddr ff02::12 drop")
    handle = f["saw"].split(" handle ")[1].split(":")[0]
    h2.check("nft", "delete", "rule", "inet", "fw", "input", "handle", handle)
    assert_clean(h2, n2.config)

    # 2. Masquerade of everything leaving the carpdev: our own adverts too.
    h2.check("nft", "add", "rule", "ip", "nat", "postrouting", "oifname", "eth0", "masquerade")
    f = one_problem(h2, n2.config, "snat-adverts")
    assert f["saw"].startswith(
        "IPv4 adverts out of eth0 (from 192.0.2.2): masquerade by table ip nat chain "
        "postrouting handle "
    )
    assert f["fix"].startswith("nft insert rule ip nat postrouting position ")
    run_fix(h2, f["fix"])
    assert_clean(h2, n2.config)

    # 5. Strict reverse-path filtering, by "all" (the kernel takes the larger).
    h2.check("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1")
    h2.check("sysctl", "-qw", "net.ipv4.conf.eth0.rp_filter=0")
    f = one_problem(h2, n2.config, "rp-filter")
    assert f["saw"].startswith("net.ipv4.conf.all.rp_filter = 1, net.ipv4.conf.eth0.rp_filter = 0")
    run_fix(h2, f["fix"])
    assert_clean(h2, n2.config)

    # 6. The virtual address configured by hand on another interface of the backup.
    h2.check("ip", "addr", "add", "192.0.2.100/32", "dev", "lo")
    f = one_problem(h2, n2.config, "arp-vip")
    assert f["saw"].startswith(
        "192.0.2.100 of carp1 is on lo too, and net.ipv4.conf.eth0.arp_ignore = 0"
    )
    # It does answer: a neighbour asking for the VIP hears from the backup's MAC too.
    mac = h2.check("cat", "/sys/class/net/eth0/address").strip()
    client = lab.add_host("cl", "192.0.2.9/24")
    argv = [sys.executable, "-c", ARP_REPLY, "192.0.2.100", mac, str(bounds.COMMAND)]
    assert client.check(*argv).split() == [mac]
    run_fix(h2, f["fix"])
    assert_clean(h2, n2.config)


def advert_sources(host: Host) -> list[str]:
    """Where a node's adverts come from: IPv4 its own address, IPv6 its link-local one
    (the diagnosis names the latest source)."""
    assert host.ipv4 is not None
    link_local = [a.split("/")[0] for a in host.addresses() if a.startswith("fe80")]
    return [host.ipv4.split("/")[0], *link_local]


def test_a_password_mismatch_names_the_source(lab: Lab) -> None:
    n1, n2 = pair(lab, password="not-the-same")
    n1.start()
    n1.wait_state("MASTER", timeout=bounds.first_master(n1.master_down))
    n2.start()
    n2.wait_ready()
    interval = n1.vhids[0].advert_interval
    wait_for(
        "n2 drops an advert as bad_hmac",
        interval + bounds.REACTION,
        lambda: n2.status()["vhosts"][0]["counters"]["dropped"].get("bad_hmac", 0) > 0,
    )
    f = one_problem(n2.host, n2.config, "advert-auth")
    assert f["subject"] == "carp1"
    said = f["saw"].split(" for vhid 1 fail the HMAC check")[0]
    assert said.removeprefix("adverts from ") in advert_sources(n1.host), f["saw"]
    assert "advert(s) dropped as bad_hmac" in f["saw"]


def test_a_vrrp_router_on_our_vhid_is_named(lab: Lab) -> None:
    n1, n2 = pair(lab, n2_extra={"protocol": "vrrp3", "priority": 100})
    n1.start()
    n1.wait_state("MASTER", timeout=bounds.first_master(n1.master_down))
    n1.wait_ready()
    n2.start()
    # The VRRP router hears no VRRP advert, takes over after its master-down and speaks.
    wait_for(
        "n1 diagnoses the vhid clash",
        bounds.first_master(n2.master_down) + n2.vhids[0].advert_interval + bounds.REACTION,
        lambda: any(d["kind"] == "vhid-clash" for d in n1.status()["vhosts"][0]["diagnostics"]),
    )
    f = one_problem(n1.host, n1.config, "vhid-speakers")
    said = f["saw"].split(", since ")[0]
    assert said.removeprefix("vhid 1 is also used by a VRRP router at ") in advert_sources(n2.host)


def test_vmac_carpdev_set_back_to_answer_arp(lab: Lab) -> None:
    host = lab.add_host("n1", "192.0.2.1/24")
    n1 = Node(lab, host, [VhidSpec(vhid=1, addresses=("192.0.2.100/24",), extra={"vmac": True})])
    n1.start()
    n1.wait_state("MASTER", timeout=bounds.first_master(n1.master_down))
    n1.wait_ready()
    assert_clean(host, n1.config)  # carpd set arp_ignore 1 on eth0
    host.check("sysctl", "-qw", "net.ipv4.conf.eth0.arp_ignore=0")  # a sysctl reload, say
    f = one_problem(host, n1.config, "arp-vip")
    assert f["saw"].startswith("net.ipv4.conf.eth0.arp_ignore = 0 (all 0) while carpd runs")
    run_fix(host, f["fix"])
    assert_clean(host, n1.config)


CONNTRACKD = """
[global]
control_socket = "{tmp}/none.sock"

[conntrackd]
enabled = true
interface = "sync0"
address = "203.0.113.1"
peer = "203.0.113.2"
config = "{tmp}/conntrackd.conf"
run_dir = "{tmp}/run"

[[carp]]
name = "lan"
vhid = 1
carpdev = "{carpdev}"
pass = "secret"
addresses = ["192.0.2.100/24"]
"""


def offline(lab: Lab, carpdev: str = "eth0") -> tuple[Host, Path]:
    """A node with [conntrackd] and a sync link, and no carpd running: the offline
    checks, on the node's real nftables and sysctls."""
    host = lab.add_host("fw1", "192.0.2.1/24")
    lab.add_interface(host, "sync0", "br1", "203.0.113.1/24")
    path = lab.tmp / "carpd.toml"
    path.write_text(CONNTRACKD.format(tmp=lab.tmp, carpdev=carpdev))
    return host, path


def test_conntrackd_sync_port_and_tcp_loose_offline(lab: Lab) -> None:
    host, path = offline(lab)
    written = host.run(
        [sys.executable, "-m", "carpd", "--config", str(path), "--conntrackd-conf"], cwd=ROOT
    )
    assert written.returncode == 0, written.stderr
    (lab.tmp / "conntrackd.conf").write_text(written.stdout.replace("Port 3780", "Port 3790"))
    host.check("nft", "-f", "-", stdin=FIREWALL.replace("3780", "3790"))
    host.check("sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_loose=0")
    report = assert_clean(host, path)
    assert report["running"] is False and "not reachable" in report["carpd"]
    skipped = {f["check"] for f in report["findings"] if f["ok"] is None}
    pair = {"pair-peer", "pair-settings", "pair-preempt", "pair-clock"}
    assert skipped == {"advert-auth", "vhid-speakers", *pair}

    # 3. The kernel's default: mid-stream TCP makes connections, synced or not.
    host.check("sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_loose=1")
    f = one_problem(host, path, "conntrack-tcp-loose")
    run_fix(host, f["fix"])
    assert_clean(host, path)

    # 4. The firewall lets in 3780, [conntrackd]'s default; conntrackd.conf says 3790.
    host.check("nft", "flush", "ruleset")
    host.check("nft", "-f", "-", stdin=FIREWALL)
    f = one_problem(host, path, "conntrackd-port")
    assert f["saw"] == (
        f"conntrackd's UDP port 3790 on sync0 from 203.0.113.2 ({lab.tmp}/conntrackd.conf): "
        "drop by table inet fw chain input: policy drop"
    )
    run_fix(host, f["fix"])
    assert_clean(host, path)


def test_a_bridge_port_that_floods_no_multicast_on_the_carpdevs_bridge(lab: Lab) -> None:
    """Snooping on and no querier is clean (the bridge floods); a port with mcast_flood
    off is named, with the command that opens it."""
    host, path = offline(lab, carpdev="lan1")
    lab.add_interface(host, "lan1", "br2", None)
    host.check(
        "ip", "link", "add", "brm", "type", "bridge", "mcast_snooping", "1", "mcast_querier", "0"
    )
    host.check("ip", "link", "set", "lan1", "master", "brm")
    host.check("ip", "link", "add", "vm1", "type", "veth", "peer", "name", "vm1p")
    host.check("ip", "link", "set", "vm1", "master", "brm")
    host.check("ip", "addr", "add", "192.0.2.5/24", "dev", "lan1")
    host.check("sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_loose=0")
    host.check("nft", "-f", "-", stdin=FIREWALL)
    assert_clean(host, path)
    host.check("bridge", "link", "set", "dev", "vm1", "mcast_flood", "off")
    f = one_problem(host, path, "bridge-flood")
    assert f["saw"] == (
        "brm (lan1's bridge): mcast_flood off on vm1: the IPv4 adverts (224.0.0.18, "
        "flooded, never snooped) do not go out of it"
    )
    run_fix(host, f["fix"])
    assert_clean(host, path)


def test_the_same_vhid_twice_is_the_loaders_error(lab: Lab) -> None:
    host, path = offline(lab)
    text = CONNTRACKD.format(tmp=lab.tmp, carpdev="eth0")
    path.write_text(text + text[text.index("[[carp]]") :].replace('"lan"', '"lan2"'))
    f = one_problem(host, path, "config")
    assert "duplicate vhid 1 on carpdev eth0" in f["saw"]


def peer_seen(node: Node, done: Callable[[dict[str, Any]], bool]) -> bool:
    """Whether ``node``'s cluster view has read its one peer, answering, with ``done``
    true of that peer's status."""
    peers = node.status().get("cluster", {}).get("peers", [])  # none until the first read
    return any(p["answering"] and done(p["status"]) for p in peers)


def test_the_pair_through_the_cluster_view_advbase_mismatch_and_advskew_tie(lab: Lab) -> None:
    """Two real nodes that read each other's status page: n2 with advbase 2 and n1's
    advskew 0. The doctor on n1 names both through the cluster view, with the fix; n2
    reloaded with advbase 1 and advskew 100, the pair checks are clean on both nodes."""
    nodes = {}
    for i, advbase in ((1, 1), (2, 2)):
        host = lab.add_host(f"n{i}", f"192.0.2.{i}/24")
        spec = VhidSpec(1, (VIPS[0],), advskew=0, advbase=advbase, name="lan")
        spec.extra["preempt"] = True  # the preferred node takes its role back (pair-preempt)
        nodes[f"192.0.2.{i}"] = Node(lab, host, [spec])
    join(lab, nodes)
    n1, n2 = nodes.values()
    start_master_first(n1, n2)  # n1 wins: CARP compares advbase first
    # n1's next read of n2 (every INTERVAL, each bounded by TIMEOUT) finds it answering.
    wait_for(
        "n1 reads n2",
        INTERVAL + TIMEOUT + bounds.REACTION,
        lambda: peer_seen(n1, lambda s: s["vhosts"][0]["advbase"] == 2),
    )
    code, report = doctor(n1.host, n1.config)
    assert code == 4
    found = problems(report)
    assert [f["check"] for f in found] == ["pair-settings", "pair-preempt"], found
    settings, tie = found
    assert settings["subject"] == tie["subject"] == "lan"
    assert settings["saw"].startswith(
        "lan: advbase 1 on n1, 2 on n2: the adverts' timing differs and so does the takeover "
        "bound (master-down 3.00 s on n1, 6.00 s on n2)"
    )
    assert settings["fix"] == "advbase = 1 for lan on n2 (or the same other value on both)"
    assert tie["saw"].startswith("lan: advskew 0 on both n1 and n2: a tie")
    assert tie["fix"] == "advskew = 100 for lan on the node meant to be BACKUP"
    ran = {f["check"]: f["ok"] for f in report["findings"] if f["subject"] == "n2"}
    assert ran == {"pair-peer": True, "pair-clock": True}, report  # one clock in the lab

    # The fixes: n2 gets advbase 1 and advskew 100, and reloads.
    n2.vhids[0].advbase, n2.vhids[0].advskew = 1, 100
    n2.write_config()
    mark = n2.mark()
    n2.signal(signal.SIGHUP)
    n2.wait_log("configuration reloaded", bounds.COMMAND, mark)  # a config read, a vhid restart
    wait_for(
        "n1 reads n2's new settings",
        INTERVAL + TIMEOUT + bounds.REACTION,
        lambda: peer_seen(n1, lambda s: (s["vhosts"][0]["advbase"], s["vhosts"][0]["advskew"])
                          == (1, 100)),
    )  # fmt: skip
    assert n1.states() == {"lan": "MASTER"} and n2.states() == {"lan": "BACKUP"}
    wait_for("n2 reads n1", INTERVAL + TIMEOUT + bounds.REACTION, lambda: peer_seen(n2, bool))
    for node, other in ((n1, "n2"), (n2, "n1")):
        report = assert_clean(node.host, node.config)
        pair = {f["check"]: f for f in report["findings"] if f["check"].startswith("pair-")}
        assert {c: f["ok"] for c, f in pair.items()} == dict.fromkeys(
            ("pair-peer", "pair-settings", "pair-preempt", "pair-clock"), True
        ), pair
        assert pair["pair-settings"]["subject"] == other
