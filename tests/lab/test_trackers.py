"""[[track]] against real targets in namespaces: an HTTP server stopped and started
(http, tcp); a gateway that drops one echo reply in ten, then all (ping with rise and
fall); three gateways and a quorum of two; a BGP session to a router down and up
(bgp, BIRD's control socket), and FRR's BGP and BFD sessions (vtysh); and three nodes
whose uplinks' weights order them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from typing import Any

from carpd_lab import bounds
from carpd_lab.bgp import Bird, Frr
from carpd_lab.cluster import Node, VhidSpec, start_master_first
from carpd_lab.netlab import Host, Lab, LogWatch

LAN = "192.0.2.100/24"
# A tracker's verdict needs its fall (or rise) probes, each at most its timeout late,
# and a probe's start may wait one interval.
INTERVAL = 0.2


def verdict_limit(count: int, interval: float = INTERVAL, timeout: float = INTERVAL) -> float:
    return (count + 1) * interval + timeout + bounds.REACTION


def pair(lab: Lab, tracks: list[dict[str, Any]], skew2: int = 100) -> tuple[Node, Node]:
    """n1 (advskew 0) tracks; n2 (advskew ``skew2``) does not; both preempt."""
    nodes = []
    for i, skew in ((1, 0), (2, skew2)):
        host = lab.add_host(f"n{i}", f"192.0.2.{i}/24")
        spec = VhidSpec(1, (LAN,), advskew=skew, name="lan", extra={"preempt": True})
        nodes.append(Node(lab, host, [spec]))
    n1, n2 = nodes
    n1.arrays["track"] = tracks
    start_master_first(n1, n2)
    n2.wait_ready()
    return n1, n2


def trackers(node: Node) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in node.status()["trackers"]["trackers"]}


def wait_tracker(node: Node, name: str, up: bool, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (t := trackers(node).get(name, {})).get("up") is not up:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{node.name}: track {name}: {t}")
        time.sleep(0.05)
    return t


def takeover_limit(master: Node) -> float:
    """A demoted MASTER advertises its demotion at once; the preempting BACKUP takes over
    when it hears it."""
    return master.vhids[0].advert_interval + bounds.REACTION


def http_server(lab: Lab, host: Host) -> subprocess.Popen[bytes]:
    proc = host.spawn(
        [sys.executable, "-u", "-m", "http.server", "8080", "--bind", "192.0.2.80"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    LogWatch(proc.stdout).wait_for("Serving HTTP", bounds.START_UP)
    return proc


def test_http_and_tcp_trackers_follow_a_real_server(lab: Lab) -> None:
    web = lab.add_host("web", "192.0.2.80/24")
    server = http_server(lab, web)
    probe = {"interval": INTERVAL, "timeout": INTERVAL, "rise": 2, "fall": 2}
    n1, n2 = pair(lab, [
        {"name": "site", "kind": "http", "targets": "http://192.0.2.80:8080/", **probe},
        {"name": "port", "kind": "tcp", "targets": "192.0.2.80:8080", **probe},
    ])  # fmt: skip
    assert wait_tracker(n1, "site", True, verdict_limit(1))["targets"][0]["detail"].startswith(
        "HTTP 200"
    )
    wait_tracker(n1, "port", True, verdict_limit(1))
    rc, text, _ = n1.ctl("status")
    assert rc == 0 and "track site (http): up: track site: up (HTTP 200 in" in text, text
    mark = n1.mark()
    lab.kill(server, 9)
    server.wait(bounds.COMMAND)
    n1.wait_log(r"demoted by 1048576 to \d+ \(track site: down \(", verdict_limit(2), mark)
    n1.wait_log(r"demoted by 1048576 to \d+ \(track port: down \(", verdict_limit(2), mark)
    n2.wait_state("MASTER", "lan", takeover_limit(n1) + verdict_limit(2))
    assert n1.status()["demotion"] == {"track site": 1048576, "track port": 1048576}
    rc, text, _ = n1.ctl("status")
    assert "track port (tcp): DOWN, demoting node by 1048576: track port: down (" in text, text
    # Back: rise successes, the demotion lifted, n1 preempts again.
    mark = n1.mark()
    server = http_server(lab, web)
    n1.wait_log(r"demoted by -1048576 to 0 \(track (site|port): up", verdict_limit(2) * 2, mark)
    n1.wait_state("MASTER", "lan", takeover_limit(n2) + verdict_limit(2), mark)


def switch_nft(lab: Lab, rules: str) -> None:
    r = subprocess.run(["ip", "netns", "exec", lab.switch, "nft", "-f", "-"], input=rules,
                       text=True, capture_output=True)  # fmt: skip
    assert r.returncode == 0, r.stderr


def drop_replies(lab: Lab, host: Host, every: int | None) -> None:
    """On the switch: drop every ``every``-th echo reply ``host`` sends (1: all; None:
    none). Counted, not random: one in ten is exactly one in ten."""
    table = f"replies_{host.port}"
    subprocess.run(["ip", "netns", "exec", lab.switch, "nft", "delete", "table", "bridge", table],
                   capture_output=True)  # fmt: skip
    if every is None:
        return
    switch_nft(lab, textwrap.dedent(f"""\
        table bridge {table} {{
            chain pre {{
                type filter hook prerouting priority 0;
                iifname "{host.port}" icmp type echo-reply numgen inc mod {every} == 0 drop
            }}
        }}
        """))  # fmt: skip


def test_one_lost_ping_in_ten_moves_nothing_a_sustained_loss_moves_the_role_once(
    lab: Lab,
) -> None:
    gw = lab.add_host("gw", "192.0.2.254/24")
    track = {"name": "gw", "kind": "ping", "targets": "192.0.2.254", "interval": INTERVAL,
             "timeout": INTERVAL, "rise": 3, "fall": 3, "weight": 50}  # fmt: skip
    n1, n2 = pair(lab, [track], skew2=10)
    wait_tracker(n1, "gw", True, verdict_limit(1))
    mark = n1.mark()
    drop_replies(lab, gw, 10)
    # 20 probes, two of them lost, never two in a row (fall 3 would need three).
    time.sleep(20 * INTERVAL)
    t = trackers(n1)["gw"]
    assert t["up"] is True and t["demotion"] == 0, t
    assert n1.log is not None and not any("track gw" in x for x in n1.log.lines[mark:])
    assert n1.states() == {"lan": "MASTER"}
    # Every reply lost: down once (fall 3), demoted by 50 over n2's advskew 10: n2 takes over.
    drop_replies(lab, gw, 1)
    n1.wait_log(
        r"demoted by 50 to 50 \(track gw: down \(no answer within 0.2 s\)\)", verdict_limit(3)
    )
    n2.wait_state("MASTER", "lan", takeover_limit(n1) + verdict_limit(3))
    time.sleep(10 * INTERVAL)  # still lost: no second demotion, no flap
    assert sum("track gw" in x for x in n1.log.lines[mark:]) == 1
    drop_replies(lab, gw, None)
    n1.wait_log(r"demoted by -50 to 0 \(track gw: up \(rtt", verdict_limit(3))
    n1.wait_state("MASTER", "lan", takeover_limit(n2) + verdict_limit(3))


def test_a_quorum_of_two_gateways_of_three(lab: Lab) -> None:
    gws = [lab.add_host(f"gw{i}", f"192.0.2.{250 + i}/24") for i in (1, 2, 3)]
    track = {"name": "uplink", "kind": "ping", "targets": [f"192.0.2.{250 + i}" for i in (1, 2, 3)],
             "quorum": 2, "interval": INTERVAL, "timeout": INTERVAL, "rise": 2, "fall": 2,
             "weight": 50}  # fmt: skip
    n1, n2 = pair(lab, [track], skew2=10)
    wait_tracker(n1, "uplink", True, verdict_limit(1))
    lab.cut(gws[0])
    deadline = time.monotonic() + verdict_limit(2)
    while trackers(n1)["uplink"]["targets"][0]["up"] is not False:
        assert time.monotonic() < deadline, trackers(n1)
        time.sleep(0.05)
    t = trackers(n1)["uplink"]
    assert t["up"] is True and t["demotion"] == 0, t  # one gateway lost: still up
    assert n1.states() == {"lan": "MASTER"}
    lab.cut(gws[1])
    n1.wait_log(r"demoted by 50 to 50 \(track uplink: 2 of 3 targets lost\)", verdict_limit(2))
    n2.wait_state("MASTER", "lan", takeover_limit(n1) + verdict_limit(2))


def bgp_peer(me: str, asn: int, name: str, peer: str, peer_asn: int) -> str:
    """A BIRD config with one BGP session, quick to notice a peer (no routes)."""
    return textwrap.dedent(f"""\
        router id {me};
        protocol device {{ scan time 1; }}
        protocol bgp {name} {{
            local {me} as {asn}; neighbor {peer} as {peer_asn};
            hold time 3; keepalive time 1; connect retry time 1;
            ipv4 {{ import none; export none; }};
        }}
        """)


def test_a_bgp_session_down_demotes_and_up_restores(lab: Lab) -> None:
    router = lab.add_host("router", "192.0.2.254/24")
    rbird = Bird(lab, router, bgp_peer("192.0.2.254", 65000, "peer1", "192.0.2.1", 65001))
    host1 = lab.add_host("n1", "192.0.2.1/24")
    nbird = Bird(lab, host1, bgp_peer("192.0.2.1", 65001, "uplink", "192.0.2.254", 65000))
    nbird.wait_established("uplink", 10 + bounds.START_UP)
    track = {"name": "isp", "kind": "bgp", "targets": "uplink", "control": str(nbird.socket),
             "interval": INTERVAL, "timeout": INTERVAL, "rise": 1, "fall": 1,
             "weight": 50}  # fmt: skip
    spec = VhidSpec(1, (LAN,), advskew=0, name="lan", extra={"preempt": True})
    n1 = Node(lab, host1, [spec])
    n1.arrays["track"] = [track]
    host2 = lab.add_host("n2", "192.0.2.2/24")
    n2 = Node(lab, host2, [VhidSpec(1, (LAN,), advskew=10, name="lan", extra={"preempt": True})])
    start_master_first(n1, n2)
    n2.wait_ready()
    assert wait_tracker(n1, "isp", True, verdict_limit(1))["targets"][0]["detail"].endswith(
        "Established"
    )
    rbird.birdc("disable", "peer1")
    # BIRD on n1 sees the session close at once (a notification), not after the hold time.
    n1.wait_log(r"demoted by 50 to 50 \(track isp: down", verdict_limit(1) + bounds.COMMAND)
    n2.wait_state("MASTER", "lan", takeover_limit(n1) + verdict_limit(1))
    rbird.birdc("enable", "peer1")
    n1.wait_log(r"demoted by -50 to 0 \(track isp: up", verdict_limit(1) + 3 + bounds.COMMAND)
    n1.wait_state("MASTER", "lan", takeover_limit(n2) + verdict_limit(1))


FRR_BGPD = """\
router bgp 65001
 bgp router-id 192.0.2.1
 no bgp ebgp-requires-policy
 neighbor 192.0.2.254 remote-as 65000
 neighbor 192.0.2.254 timers 1 3
 neighbor 192.0.2.254 timers connect 1
"""
FRR_BFDD = "bfd\n peer 192.0.2.254\n  receive-interval 100\n  transmit-interval 100\n"


def test_frr_bgp_and_bfd_sessions_down_demote_and_up_restore(lab: Lab) -> None:
    """daemon = "frr": FRR's bgpd and bfdd on the node (read with vtysh --vty_socket),
    peering with a BIRD router whose BGP protocol and then BFD session are disabled."""
    router = lab.add_host("router", "192.0.2.254/24")
    bfd = 'protocol bfd bfd1 { neighbor 192.0.2.1; interface "eth0" { interval 100 ms; }; }\n'
    rbird = Bird(lab, router, bgp_peer("192.0.2.254", 65000, "peer1", "192.0.2.1", 65001) + bfd)
    host1 = lab.add_host("n1", "192.0.2.1/24")
    frr = Frr(lab, host1, FRR_BGPD, FRR_BFDD)
    bgp_state = "show bgp neighbor 192.0.2.254 json"
    frr.wait(bgp_state, lambda j: j["192.0.2.254"]["bgpState"] == "Established",
             10 + bounds.START_UP)  # fmt: skip
    frr.wait("show bfd peers json", lambda j: j[0]["status"] == "up", 10 + bounds.START_UP)
    # Each probe is a vtysh process: its timeout is a helper process's bound on a busy
    # machine (at INTERVAL's 0.2 s a slow fork timed a probe out, a down for no reason).
    every = bounds.COMMAND
    limit = verdict_limit(1, every, every)
    common = {"daemon": "frr", "control": str(frr.vty), "targets": "192.0.2.254",
              "interval": every, "timeout": every, "rise": 1, "fall": 1}  # fmt: skip
    tracks = [{"name": "isp", "kind": "bgp", "weight": 50, **common},
              {"name": "isp-bfd", "kind": "bfd", "weight": 20, **common}]  # fmt: skip
    host2 = lab.add_host("n2", "192.0.2.2/24")
    n1 = Node(lab, host1, [VhidSpec(1, (LAN,), advskew=0, name="lan", extra={"preempt": True})])
    n1.arrays["track"] = tracks
    n2 = Node(lab, host2, [VhidSpec(1, (LAN,), advskew=10, name="lan", extra={"preempt": True})])
    start_master_first(n1, n2)
    n2.wait_ready()
    assert wait_tracker(n1, "isp", True, limit)["targets"][0]["detail"] == ("BGP Established")
    assert wait_tracker(n1, "isp-bfd", True, limit)["targets"][0]["detail"] == "BFD up"

    rbird.birdc("disable", "peer1")  # a notification: FRR's session closes at once
    n1.wait_log(r"demoted by 50 to 50 \(track isp: down \(BGP (Idle|Active|Connect)",
                limit + bounds.COMMAND)  # fmt: skip
    n2.wait_state("MASTER", "lan", takeover_limit(n1) + limit)
    rbird.birdc("enable", "peer1")
    n1.wait_log(r"demoted by -50 to 0 \(track isp: up", limit + 3 + bounds.COMMAND)
    n1.wait_state("MASTER", "lan", takeover_limit(n2) + limit)

    rbird.birdc("disable", "bfd1")  # BIRD says AdminDown: FRR's peer goes down at once
    n1.wait_log(r"demoted by 20 to 20 \(track isp-bfd: down \(BFD down",
                limit + bounds.COMMAND)  # fmt: skip
    rbird.birdc("enable", "bfd1")
    n1.wait_log(r"demoted by -20 to 0 \(track isp-bfd: up", limit + 3 + bounds.COMMAND)


def test_weights_order_three_nodes_by_their_uplinks(lab: Lab) -> None:
    """Each node tracks two uplinks (veth links), 50 each: a has both, b one, c none.
    a is MASTER; when it dies b, with one uplink, wins over c, with none."""
    nodes = []
    for i, down in ((1, ()), (2, ("up2",)), (3, ("up1", "up2"))):
        host = lab.add_host(f"n{i}", f"192.0.2.{i}/24")
        for link in ("up1", "up2"):  # a veth pair: up with both ends up
            host.check("ip", "link", "add", link, "type", "veth", "peer", "name", f"{link}p")
            if link not in down:
                for end in (link, f"{link}p"):
                    host.check("ip", "link", "set", end, "up")
        spec = VhidSpec(1, (LAN,), advskew=0, name="lan", extra={"preempt": True})
        node = Node(lab, host, [spec])
        node.arrays["track"] = [
            {"name": link, "kind": "interface", "targets": link, "interval": INTERVAL,
             "timeout": INTERVAL, "rise": 1, "fall": 1, "weight": 50}
            for link in ("up1", "up2")
        ]  # fmt: skip
        nodes.append(node)
    a, b, c = nodes
    start_master_first(a, b, c)
    for node in (b, c):
        node.wait_ready()
    assert [n.status()["vhosts"][0]["demotion"] for n in nodes] == [0, 50, 100]
    mark = b.mark()
    a.stop(9)
    # b's and c's master-down intervals end together (the same configured advskew): both
    # may be MASTER for a moment, then c hears b's better advert and steps back.
    b.wait_state("MASTER", "lan", b.master_down + bounds.REACTION + 1, mark)
    c.wait_states({"lan": "BACKUP"}, b.vhids[0].advert_interval * 2 + bounds.REACTION)
    assert b.states() == {"lan": "MASTER"}


def dns_server(lab: Lab, host: Host) -> subprocess.Popen[bytes]:
    """dnsmasq answering one name, nothing else (no upstream, no hosts file)."""
    proc = host.spawn(
        ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
         "--no-hosts", "--listen-address=192.0.2.53", "--bind-interfaces",
         "--address=/site.example/192.0.2.80", "--log-facility=-", "--log-queries"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    LogWatch(proc.stdout).wait_for("started", bounds.START_UP)
    return proc


BFD = """\
    router id {me};
    protocol device {{ scan time 1; }}
    protocol bfd {{ neighbor {peer}; interface "eth0" {{ interval 100 ms; multiplier 3; }}; }}
    """


def verdict(track: dict[str, Any]) -> float:
    return verdict_limit(1, track["interval"], track["timeout"])


def test_file_process_script_dns_and_bfd_trackers(lab: Lab) -> None:
    """Every other kind against its real target, each provoked down and back up."""
    dns = lab.add_host("dns", "192.0.2.53/24")
    server = dns_server(lab, dns)
    router = lab.add_host("router", "192.0.2.254/24")
    rbird = Bird(lab, router, textwrap.dedent(BFD.format(me="192.0.2.254", peer="192.0.2.1")))
    host = lab.add_host("n1", "192.0.2.1/24")
    nbird = Bird(lab, host, textwrap.dedent(BFD.format(me="192.0.2.1", peer="192.0.2.254")))
    level, flag, pidfile = lab.tmp / "level", lab.tmp / "flag", lab.tmp / "worker.pid"
    level.write_text("0\n")
    flag.touch()
    worker = host.spawn(["sleep", "3600"])
    pidfile.write_text(f"{worker.pid}\n")
    fast = {"interval": INTERVAL, "timeout": INTERVAL, "rise": 1, "fall": 1}
    # A script is a process per probe: a fork and exec's bound on a busy machine.
    slow = {**fast, "interval": bounds.COMMAND, "timeout": bounds.COMMAND}
    tracks = [
        {"name": "level", "kind": "file", "targets": str(level), "weight": 1, **fast},
        {"name": "worker", "kind": "process", "targets": str(pidfile), "weight": 2, **fast},
        {"name": "flag", "kind": "script", "targets": f"test -e {flag}", "weight": 4,
         **slow},
        {"name": "resolver", "kind": "dns", "targets": "192.0.2.53", "query": "site.example",
         "weight": 8, **fast},
        {"name": "bfd", "kind": "bfd", "targets": "192.0.2.254", "control": str(nbird.socket),
         "weight": 16, "interval": INTERVAL, "timeout": INTERVAL, "rise": 1, "fall": 1},
    ]  # fmt: skip
    n1 = Node(lab, host, [VhidSpec(1, (LAN,), name="lan")])
    n1.arrays["track"] = tracks
    n1.start()
    n1.wait_ready()
    # BFD comes up once both BIRDs have talked (100 ms x 3), the others at the first probe.
    for t in tracks:
        wait_tracker(n1, t["name"], True, verdict(t) + bounds.START_UP)
    # Every target down at once: 1 + 2 + 4 + 8 + 16.
    level.write_text("3\n")
    lab.kill(worker, 9)
    worker.wait(bounds.COMMAND)
    flag.unlink()
    lab.kill(server, 9)
    rbird.birdc("disable", "bfd1")
    for t in tracks:
        wait_tracker(n1, t["name"], False, verdict(t) + bounds.COMMAND)
    assert n1.status()["vhosts"][0]["demotion"] == 31
    details = {t["name"]: t["targets"][0]["detail"] for t in trackers(n1).values()}
    assert details["level"] == "value 3" and details["flag"] == "exit 1", details
    assert details["bfd"].startswith("BFD "), details
    # And back.
    level.write_text("0\n")
    flag.touch()
    worker = host.spawn(["sleep", "3600"])
    pidfile.write_text(f"{worker.pid}\n")
    server = dns_server(lab, dns)
    rbird.birdc("enable", "bfd1")
    for t in tracks:
        wait_tracker(n1, t["name"], True, verdict(t) + bounds.START_UP)
    assert n1.status()["vhosts"][0]["demotion"] == 0
