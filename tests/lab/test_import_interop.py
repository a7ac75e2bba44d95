"""Issue 31, end to end: a keepalived.conf converted by ``carpd import keepalived`` runs
on one node while a real keepalived runs its own file on the other; they elect one
MASTER per VRID and fail over both ways, by crash and by graceful stop.

Three shapes of file: a pair (a vrrp_script tracker, a notify_master script), a sync
group of LAN and WAN on two links, unicast peers with nopreempt. Each runs twice: with
keepalived as the first MASTER and with carpd as the first MASTER (the priorities
swapped in both files). Node k1 runs keepalived, k2 carpd, cl is a client on the LAN.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyroute2 import NetNS

from carpd_lab import bounds
from carpd_lab.cluster import Node, line_time
from carpd_lab.keepalived import KEEPALIVED, Keepalived
from carpd_lab.netlab import Host, Lab, LogWatch
from carpd_lab.probe import sniff

# keepalived takes fractional intervals with VRRPv3, and the importer carries them over:
# half a second keeps each test (three elections, a crash, a handover) short.
INTERVAL = 0.5
HIGH, LOW = 150, 100  # the first MASTER's priority, the other's
TRACK_INTERVAL, WEIGHT = 1, 60  # the pair's vrrp_script: HIGH - WEIGHT < LOW

K1 = ("192.0.2.1/24", "198.51.100.1/24")  # keepalived's own addresses: LAN, WAN
K2 = ("192.0.2.2/24", "198.51.100.2/24")  # carpd's
CLIENT = "192.0.2.9/24"
CLIENT_WAN = "198.51.100.9/24"
LAN_VIP = "192.0.2.100"
WAN_VIP = "198.51.100.100"


# From a frame on the client's wire until carpd_lab.sniff's line about it reaches the
# test: a Python process reading a raw socket, printing to a pipe: one helper process.
SNIFF = bounds.COMMAND


def skew(priority: int) -> float:
    """RFC 5798's Skew_Time: how long a BACKUP waits after a priority-0 advert."""
    return (256 - priority) * INTERVAL / 256


def handover(priority: int) -> float:
    """From SIGTERM to the stopping MASTER until the other side is MASTER: the stopping
    daemon reacts to its signal (its priority-0 advert), the other to that advert after
    its skew time."""
    return bounds.REACTION + skew(priority) + bounds.REACTION


# Each vrrp_instance's link: an index into K1, K2 and the clients.
LINK = {"VI_1": 0, "LAN": 0, "WAN": 1, "cloud_vip": 0}


@dataclass
class Case:
    instances: dict[str, int]  # vrrp_instance name -> VRID
    vips: dict[str, str]  # vrrp_instance name -> its address
    preempt: bool
    notify: bool  # a notify_master script
    render: Callable[[str, int, str, Path], str]  # (node, priority, state, lab dir) -> conf


def _pair(node: str, priority: int, state: str, tmp: Path) -> str:
    return textwrap.dedent(f"""\
        ! keepalived.conf on {node}
        global_defs {{
            router_id {node}
            vrrp_version 3
        }}

        vrrp_script chk_svc {{
            script "/usr/bin/test -e {tmp}/{node}-svc-up"
            interval {TRACK_INTERVAL}
            weight -{WEIGHT}
        }}

        vrrp_instance VI_1 {{
            state {state}
            interface eth0
            virtual_router_id 51
            priority {priority}
            advert_int {INTERVAL}
            virtual_ipaddress {{
                {LAN_VIP}/24
            }}
            track_script {{
                chk_svc
            }}
            notify_master "{tmp}/notify.sh {node} MASTER"
        }}
        """)


def _sync(node: str, priority: int, state: str, tmp: Path) -> str:
    return textwrap.dedent(f"""\
        ! keepalived.conf on {node}: the LAN and WAN addresses move together
        global_defs {{
            router_id {node}
            vrrp_version 3
        }}

        vrrp_sync_group FW {{
            group {{
                LAN
                WAN
            }}
            notify_master "{tmp}/notify.sh {node} MASTER"
        }}

        vrrp_instance LAN {{
            state {state}
            interface eth0
            virtual_router_id 61
            priority {priority}
            advert_int {INTERVAL}
            virtual_ipaddress {{
                {LAN_VIP}/24
            }}
        }}

        vrrp_instance WAN {{
            state {state}
            interface eth1
            virtual_router_id 62
            priority {priority}
            advert_int {INTERVAL}
            virtual_ipaddress {{
                {WAN_VIP}/24
            }}
        }}
        """)


def _unicast(node: str, priority: int, state: str, tmp: Path) -> str:
    me, peer = (K1[0], K2[0]) if node == "k1" else (K2[0], K1[0])
    # nopreempt wants state BACKUP on every node (keepalived ignores it with MASTER).
    return textwrap.dedent(f"""\
        # {node}: unicast adverts between the two nodes' own addresses
        global_defs {{
            router_id {node}
            vrrp_version 3
        }}

        vrrp_instance cloud_vip {{
            state BACKUP
            interface eth0
            virtual_router_id 20
            priority {priority}
            advert_int {INTERVAL}
            nopreempt
            unicast_src_ip {me.split("/")[0]}
            unicast_peer {{
                {peer.split("/")[0]}
            }}
            virtual_ipaddress {{
                {LAN_VIP}/24
            }}
        }}
        """)


CASES = {
    "pair": Case({"VI_1": 51}, {"VI_1": LAN_VIP}, True, True, _pair),
    "sync": Case({"LAN": 61, "WAN": 62}, {"LAN": LAN_VIP, "WAN": WAN_VIP}, True, True, _sync),
    "unicast": Case({"cloud_vip": 20}, {"cloud_vip": LAN_VIP}, False, False, _unicast),
}

# What the report must say for each file (the lines a user acts on), and its exit status.
REPORTS: dict[str, tuple[int, list[str]]] = {
    "pair": (
        0,
        [
            r"k2\.conf:\d+: state: \w+: a start hint; carpd starts every vhid as BACKUP",
            r"carpd import: \d+ notes: everything was carried over",
        ],
    ),
    "sync": (
        1,
        [
            r"k2\.conf:\d+: vrrp_sync_group FW: groups = \[\"FW\"\] on LAN, WAN: a demotion "
            r"\(a lost link, a tracker of the group\) moves them together",
        ],
    ),
    "unicast": (
        0,
        [r"carpd import: \d+ notes: everything was carried over"],
    ),
}


def convert(conf: Path) -> tuple[int, str, str]:
    """The real command line, as a user runs it: (exit status, carpd.toml, report)."""
    r = subprocess.run(
        [sys.executable, "-m", "carpd", "import", "keepalived", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=conf.parent,
    )
    return r.returncode, r.stdout, r.stderr


def in_lab(toml: str, node: Node) -> str:
    """The generated file with the node's control socket, state directory and service
    checks put inside the lab (the defaults are the host's /run, /var/lib and /etc)."""
    lab_keys = (
        f'control_socket = "{node.socket}"\n'
        f'state_dir = "{node.state_dir}"\n'
        f'service_checks = "{node.checks}"\n'
    )
    if re.search(r"^\[global\]$", toml, re.M):
        return re.sub(r"^\[global\]\n", lambda m: m.group(0) + lab_keys, toml, count=1, flags=re.M)
    return "[global]\n" + lab_keys + "\n" + toml


NODE = {"keepalived": "k1", "carpd": "k2"}


def other_side(side: str) -> str:
    return "carpd" if side == "keepalived" else "keepalived"


def holds(host: Host, address: str) -> bool:
    """Whether the address is on any of the host's interfaces (the WAN one is eth1)."""
    with NetNS(host.ns) as ipr:
        return any(m.get("IFA_ADDRESS") == address for m in ipr.get_addr())


def wait_held(host: Host, address: str, present: bool = True) -> None:
    """Poll netlink until the address is there (or gone): one netlink change."""
    deadline = time.monotonic() + bounds.COMMAND
    while holds(host, address) != present:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{host.name}: {address} still {'absent' if present else 'held'}")
        time.sleep(0.01)


def mac(host: Host, ifname: str) -> str:
    return host.check("cat", f"/sys/class/net/{ifname}/address").strip()


class Pair:
    """keepalived on k1, carpd (from the converted file) on k2, a client on the LAN."""

    def __init__(self, lab: Lab, case: Case, name: str, first: str) -> None:
        self.lab, self.case = lab, case
        wan = name == "sync"
        self.k1 = lab.add_host("k1", K1[0])
        self.k2 = lab.add_host("k2", K2[0])
        self.cl = lab.add_host("cl", CLIENT)
        if wan:
            lab.add_interface(self.k1, "eth1", "brw", K1[1])
            lab.add_interface(self.k2, "eth1", "brw", K2[1])
        notify = lab.tmp / "notify.sh"
        notify.write_text(f'#!/bin/sh\necho "$2" >> {lab.tmp}/notify-"$1"\n')
        notify.chmod(0o755)
        for n in ("k1", "k2"):
            (lab.tmp / f"{n}-svc-up").touch()
        self.prio = {first: HIGH, other_side(first): LOW}
        self.k1_conf = lab.tmp / "k1.conf"
        self.k1_conf.write_text(
            case.render("k1", self.prio["keepalived"], _state(self.prio["keepalived"]), lab.tmp)
        )
        self.k2_conf = lab.tmp / "k2.conf"
        self.k2_conf.write_text(
            case.render("k2", self.prio["carpd"], _state(self.prio["carpd"]), lab.tmp)
        )
        self.node = Node(lab, self.k2, [])
        self.ka: Keepalived | None = None
        self.clients: list[tuple[Host, LogWatch]] = [(self.cl, sniff(self.cl))]
        if wan:
            cw = lab.add_host("cw", CLIENT_WAN, bridge="brw")
            self.clients.append((cw, sniff(cw)))
        ifnames = ("eth0", "eth1") if wan else ("eth0",)
        self.macs = {
            "keepalived": [mac(self.k1, i) for i in ifnames],
            "carpd": [mac(self.k2, i) for i in ifnames],
        }
        self.hosts = {"keepalived": self.k1, "carpd": self.k2}

    # -- starting and stopping each side -------------------------------------------------

    def start_carpd(self, toml: Path) -> None:
        self.node.start(args=["--config", str(toml)])

    def start_keepalived(self) -> None:
        self.ka = Keepalived.from_file(self.lab, self.k1, self.k1_conf)

    def ka_wait(self, state: str, timeout: float, start: int = 0) -> None:
        assert self.ka is not None
        for name in self.case.instances:
            self.ka.wait_state(name, state, timeout=timeout, start=start)

    def cd_wait(self, state: str, timeout: float, start: int = 0) -> None:
        for name in self.case.instances:
            self.node.wait_state(state, vhid=name, timeout=timeout, start=start)

    def master_down(self, side: str) -> float:
        return bounds.vrrp_master_down(INTERVAL, self.prio[side])

    # -- what each side and the wire say --------------------------------------------------

    def assert_one_master(self, master: str) -> None:
        """Each side's own word, the addresses on each host, and the wire: every VRID
        has ``master`` as its one MASTER."""
        backup = other_side(master)
        want: dict[str, dict[str, str]] = {"keepalived": {}, "carpd": {}}
        for name in self.case.instances:
            want[master][name] = "MASTER"
            want[backup][name] = "BACKUP"
        assert self.ka is not None
        assert {n: s for n, s in self.ka.states().items() if n in self.case.instances} == want[
            "keepalived"
        ]
        assert self.node.states() == want["carpd"]
        for vip in self.case.vips.values():
            # keepalived says MASTER before it adds the address: one netlink change.
            wait_held(self.hosts[master], vip)
            assert not holds(self.hosts[backup], vip), f"{backup} holds {vip} too"
        for inst, vrid in self.case.instances.items():
            self.assert_answers_from(master, inst)
            if self.case.render is not _unicast:  # unicast adverts never reach a client
                self.assert_adverts_from(master, inst, vrid)

    def assert_answers_from(self, master: str, inst: str, barrier: str | None = None) -> None:
        """The client on the instance's link, its ARP cache flushed, pings the instance's
        address: every ARP answer for it comes from the MASTER's MAC. The barrier: the
        BACKUP then answers an ARP for its own address, after any answer it would have
        sent for the virtual one (the MASTER itself when the other side is cut off)."""
        backup = barrier or other_side(master)
        link = LINK[inst]
        client, watch = self.clients[link]
        vip = self.case.vips[inst]
        backup_ip = (K1 if backup == "keepalived" else K2)[link].split("/")[0]
        mark = watch.mark()
        client.check("ip", "neigh", "flush", "dev", "eth0")
        client.check("ping", "-c", "1", "-W", str(bounds.COMMAND), vip)
        # Asked outright, not by ping: the client may hold the BACKUP's MAC already (the
        # BACKUP's own ARP probe of the client leaves it one), and then ping never asks.
        assert client.ipv4 is not None
        sender = client.ipv4.split("/")[0]
        client.check(sys.executable, "-m", "carpd_lab.arping", "eth0", sender, backup_ip)
        barrier = rf"^arp {self.macs[backup][link]} op=2 spa={re.escape(backup_ip)} "
        try:
            watch.wait_for(barrier, SNIFF, mark)
        except TimeoutError as e:
            raise TimeoutError(f"{e}; the client saw:\n" + "\n".join(watch.lines[mark:])) from None
        answers = {
            m.group(1)
            for line in watch.lines[mark:]
            if (m := re.match(rf"^arp (\S+) op=2 spa={re.escape(vip)} ", line))
        }
        assert answers == {self.macs[master][link]}, f"{vip} answered by {answers}"

    def assert_adverts_from(self, master: str, inst: str, vrid: int) -> None:
        """Two adverts in a row from the MASTER, nothing from anyone else in between (a
        second MASTER would have sent one within the interval)."""
        link = LINK[inst]
        _, watch = self.clients[link]
        src = (K1 if master == "keepalived" else K2)[link].split("/")[0]
        mark = watch.mark()
        limit = INTERVAL + SNIFF
        i, _ = watch.wait_for(rf"^vrrp {re.escape(src)} vrid={vrid} prio=", limit, mark)
        j, _ = watch.wait_for(rf"^vrrp {re.escape(src)} vrid={vrid} prio=", limit, i + 1)
        others = [
            line
            for line in watch.lines[mark : j + 1]
            if re.match(rf"^vrrp \S+ vrid={vrid} ", line) and not line.startswith(f"vrrp {src} ")
        ]
        assert others == [], others

    def notified(self, node: str, state: str) -> None:
        """The notify script ran with ``state`` on the node (keepalived's notify_master,
        or the [[action]] carpd import made of it)."""
        path = self.lab.tmp / f"notify-{node}"
        deadline = time.monotonic() + bounds.COMMAND
        while not (path.exists() and state in path.read_text().split()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{node}: no notify {state}")
            time.sleep(0.02)


def _state(priority: int) -> str:
    return "MASTER" if priority == HIGH else "BACKUP"


@pytest.fixture
def keepalived_bin() -> str:
    assert os.path.exists(KEEPALIVED), "needs the Debian package keepalived"
    return KEEPALIVED


@pytest.mark.parametrize("first", ["keepalived", "carpd"])
@pytest.mark.parametrize("name", list(CASES))
def test_converted_file_elects_one_master_with_keepalived_and_fails_over_both_ways(
    lab: Lab, keepalived_bin: str, name: str, first: str
) -> None:
    """k2's keepalived.conf through ``carpd import keepalived``, carpd on it; k1's own
    file in keepalived. ``first`` has the higher priority and starts alone."""
    case = CASES[name]
    p = Pair(lab, case, name, first)
    second = other_side(first)

    # Convert k2's file as a user would, and read the report.
    rc, toml, report = convert(p.k2_conf)
    want_rc, want_lines = REPORTS[name]
    assert rc == want_rc, report
    for rx in want_lines:
        assert re.search(rx, report, re.M), f"{rx!r} not in the report:\n{report}"
    toml_path = lab.tmp / "k2-carpd.toml"
    toml_path.write_text(in_lab(toml, p.node))
    check = p.k2.run([sys.executable, "-m", "carpd", "--check", "--config", str(toml_path)])
    assert check.returncode == 0, check.stdout + check.stderr

    def start(side: str) -> None:
        if side == "carpd":
            p.start_carpd(toml_path)
        else:
            p.start_keepalived()

    def wait(side: str, state: str, timeout: float, start: int = 0) -> None:
        if side == "carpd":
            p.cd_wait(state, timeout, start)
        else:
            p.ka_wait(state, timeout, start)

    def reboot(side: str) -> None:
        """What a crashed box finds when it boots: its dead daemon reaped, /run empty
        (keepalived's pid files), its cables in."""
        proc = p.node.proc if side == "carpd" else p.ka.proc if p.ka is not None else None
        assert proc is not None
        proc.wait(timeout=bounds.COMMAND)
        for pidfile in (lab.tmp / "keepalived-k1").glob("*.pid"):
            pidfile.unlink()
        lab.cut(p.hosts[side], on=False)

    def mark_both() -> dict[str, int]:
        return {
            "carpd": p.node.mark(),
            "keepalived": p.ka.log.mark() if p.ka is not None else 0,
        }

    def heard_past_a_master_down(backup: str) -> None:
        """The BACKUP side, already BACKUP, goes on hearing the MASTER for longer than
        its master-down interval (one more advert than fits in it) and never takes over:
        it would have, had it not heard the adverts."""
        adverts = math.ceil(p.master_down(backup) / INTERVAL) + 1
        # The adverts come every INTERVAL; the first one within one INTERVAL.
        limit = (adverts + 1) * INTERVAL + bounds.REACTION
        if backup == "carpd":
            p.node.wait_ready()
            p.node.wait_counter("adverts_received", adverts, timeout=limit)
            assert p.node.log is not None and p.node.log.count(r"-> MASTER") == 0
        else:
            p.node.wait_counter("adverts_sent", adverts, timeout=limit)
            assert p.ka is not None and p.ka.log.count(r"Entering MASTER STATE") == 0

    # One MASTER: the first side alone, then the second, which must stay BACKUP.
    start(first)
    wait(first, "MASTER", bounds.first_master(p.master_down(first)))
    if first == "carpd":
        p.node.wait_ready()
    start(second)
    wait(second, "BACKUP", bounds.START_UP)
    heard_past_a_master_down(second)
    p.assert_one_master(first)
    # notify_master, as keepalived runs it and as the [[action]] carpd import made of it
    if case.notify:
        p.notified(NODE[first], "MASTER")

    # Sync group: the MASTER loses its WAN link; LAN and WAN move together, and
    # come back together with the link (preempt).
    if name == "sync":
        marks = mark_both()
        lab.set_port(p.hosts[first], "eth1", False)
        wait(second, "MASTER", bounds.takeover(p.master_down(second)), marks[second])
        for vip in case.vips.values():
            wait_held(p.hosts[second], vip)
            assert not holds(p.hosts[first], vip), f"{first} still holds {vip}"
        p.assert_answers_from(second, "LAN")
        p.assert_answers_from(second, "WAN", barrier=second)  # first's WAN is cut
        marks = mark_both()
        lab.set_port(p.hosts[first], "eth1", True)
        limit = bounds.COMMAND + bounds.takeover(p.master_down(first))
        wait(first, "MASTER", limit, marks[first])
        wait(second, "BACKUP", bounds.REACTION, marks[second])
        p.assert_one_master(first)

    # Crash of the MASTER (stopped, cables pulled, killed -9): the other side takes
    # over within its master-down interval.
    marks = mark_both()
    crashed = lab.crash(p.hosts[first])
    left = bounds.takeover(p.master_down(second)) - (time.monotonic() - crashed)
    wait(second, "MASTER", max(left, 0.0), marks[second])
    for vip in case.vips.values():
        wait_held(p.hosts[second], vip)
    for inst in case.instances:
        p.assert_answers_from(second, inst, barrier=second)
    if case.notify:
        p.notified(NODE[second], "MASTER")

    # It comes back (cables in, the daemon started again): preempt gives the MASTER
    # back to the higher priority; nopreempt leaves it with the side that has it.
    reboot(first)
    marks = mark_both()
    start(first)
    if case.preempt:
        wait(first, "MASTER", bounds.first_master(p.master_down(first)))
        wait(second, "BACKUP", bounds.REACTION, marks[second])
        master = first
    else:
        wait(first, "BACKUP", bounds.START_UP)
        heard_past_a_master_down(first)
        master = second
    p.assert_one_master(master)

    # The pair's vrrp_script fails on the MASTER: its weight takes it below the other
    # side (keepalived's priority in its adverts, or the [[track]] carpd import made),
    # which takes over as a BACKUP with preempt does: one master-down interval later.
    prio = dict(p.prio)
    if name == "pair":
        marks = mark_both()
        (lab.tmp / f"{NODE[master]}-svc-up").unlink()
        prio[master] -= WEIGHT
        rest = other_side(master)
        limit = TRACK_INTERVAL + bounds.COMMAND + bounds.takeover(p.master_down(rest))
        wait(rest, "MASTER", limit, marks[rest])
        wait(master, "BACKUP", bounds.REACTION, marks[master])
        p.assert_one_master(rest)
        master = rest

    # Graceful stop of the MASTER: its priority-0 advert (keepalived) or handover
    # advert (carpd) lets the other side take over after its skew time, not its
    # master-down interval.
    rest = other_side(master)
    marks = mark_both()
    t0, wall = time.monotonic(), time.time()
    if master == "carpd":
        p.node.signal(signal.SIGTERM)
    else:
        assert p.ka is not None
        os.kill(p.ka.proc.pid, signal.SIGTERM)  # keepalived's parent, as systemctl stop
    # Waited for up to the master-down interval: a late takeover is reported with its
    # figure rather than as a time-out.
    limit = bounds.takeover(bounds.vrrp_master_down(INTERVAL, prio[rest]))
    if rest == "carpd":
        for inst in case.instances:
            _, line = p.node.wait_state(
                "MASTER",
                vhid=inst,
                timeout=limit,
                start=marks[rest],
            )
        took = line_time(line) - wall
    else:
        p.ka_wait("MASTER", limit, marks[rest])
        took = time.monotonic() - t0
    assert took < handover(prio[rest]), f"took {took:.3f} s"
    for vip in case.vips.values():
        wait_held(p.hosts[rest], vip)
        wait_held(p.hosts[master], vip, present=False)
    for inst in case.instances:
        p.assert_answers_from(rest, inst)
