"""Two carpd nodes and a client on a bridge: election, failover, reload, IPv6."""

from __future__ import annotations

import json
import signal
import time

import pytest

from carpd_lab import bounds
from carpd_lab.cluster import Node, VhidSpec, line_time, start_master_first
from carpd_lab.netlab import Lab
from carpd_lab.probe import Pinger

VIPS = ("192.0.2.100/24", "2001:db8::100/64")


def pair(lab: Lab, skew1: int = 0, skew2: int = 100, **global_: object) -> tuple[Node, Node]:
    h1 = lab.add_host("n1", "192.0.2.1/24", "2001:db8::1/64")
    h2 = lab.add_host("n2", "192.0.2.2/24", "2001:db8::2/64")
    n1 = Node(lab, h1, [VhidSpec(vhid=1, advskew=skew1, addresses=VIPS)], dict(global_))
    n2 = Node(lab, h2, [VhidSpec(vhid=1, advskew=skew2, addresses=VIPS)], dict(global_))
    start_master_first(n1, n2)
    h1.wait_address("192.0.2.100")
    return n1, n2


def test_two_nodes_elect_exactly_one_master_and_the_client_reaches_both_vips(lab: Lab) -> None:
    n1, n2 = pair(lab)
    client = lab.add_host("cl", "192.0.2.9/24", "2001:db8::9/64")
    assert n1.states() == {"carp1": "MASTER"}
    assert n2.states() == {"carp1": "BACKUP"}
    assert n1.host.has_address("192.0.2.100") and n1.host.has_address("2001:db8::100")
    assert not n2.host.has_address("192.0.2.100") and not n2.host.has_address("2001:db8::100")
    for vip in ("192.0.2.100", "2001:db8::100"):
        r = client.run(["ping", "-c", "3", "-i", "0.05", "-W", "1", vip])
        assert r.returncode == 0, r.stdout + r.stderr
    # The backup sees the master's adverts and knows who it is.
    st = n2.status()["vhosts"][0]
    link_local = [a.split("/")[0] for a in n1.host.addresses() if a.startswith("fe80")]
    assert st["master"] in ["192.0.2.1", *link_local]
    assert st["counters"]["adverts_received"] > 0


@pytest.mark.solo  # measures timings: run alone
def test_kill_9_of_the_master_fails_over_within_the_master_down_interval(lab: Lab) -> None:
    n1, n2 = pair(lab)
    mark = n2.mark()
    n2.wait_counter("adverts_received", 1)  # start the clock right after an advert was heard
    killed = time.time()
    n1.signal(signal.SIGKILL)
    bound = bounds.takeover(n2.master_down)  # 3 x 1 + 100/256 s after the last advert
    _, line = n2.wait_state("MASTER", timeout=3 * bound, start=mark)
    took = line_time(line) - killed
    assert took <= bound, f"takeover after {took:.3f} s"
    n2.host.wait_address("192.0.2.100")


@pytest.mark.solo  # measures timings: run alone
def test_sigterm_of_the_master_hands_over_at_once(lab: Lab) -> None:
    n1, n2 = pair(lab)
    mark = n2.mark()
    stopped = time.time()
    n1.signal(signal.SIGTERM)
    # The bow-out advert: the backup takes over on hearing it, not after a timeout.
    _, line = n2.wait_state("MASTER", timeout=n2.master_down, start=mark)
    took = line_time(line) - stopped
    assert n1.stop(signal.SIGTERM) == 0
    assert took < bounds.REACTION, f"handover after {took:.3f} s"
    # The stopped master left nothing behind.
    assert not n1.host.has_address("192.0.2.100")
    assert not n1.host.has_address("2001:db8::100")


def test_sighup_with_an_unchanged_config_causes_no_transition(lab: Lab) -> None:
    n1, n2 = pair(lab)
    marks = (n1.mark(), n2.mark())
    for node in (n1, n2):
        node.signal(signal.SIGHUP)
        node.wait_log(r"configuration reloaded: 1 vhid\(s\) unchanged, 0", timeout=bounds.COMMAND)
    # Give a flap every chance to show: two more adverts (per family) heard after the reloads.
    n2.wait_counter("adverts_received", 4)
    for node, mark in zip((n1, n2), marks, strict=True):
        assert node.log is not None
        assert not [line for line in node.log.lines[mark:] if "state transition" in line]
    assert n1.states() == {"carp1": "MASTER"} and n2.states() == {"carp1": "BACKUP"}
    assert n1.status()["vhosts"][0]["counters"]["transitions"] == 2


def test_sighup_with_a_changed_vhid_restarts_only_that_vhid(lab: Lab) -> None:
    n1, n2 = pair(lab)
    n2.vhids[0].advskew = 50
    n2.write_config()
    mark = n2.mark()
    n2.signal(signal.SIGHUP)
    n2.wait_log(
        r"configuration reloaded: 0 vhid\(s\) unchanged, 1", timeout=bounds.COMMAND, start=mark
    )
    n2.wait_state("BACKUP", timeout=bounds.COMMAND, start=mark)
    assert n2.status()["vhosts"][0]["advskew"] == 50
    assert n1.states() == {"carp1": "MASTER"}


def test_status_shows_ifconfig_form_and_json_without_the_password(lab: Lab) -> None:
    n1, n2 = pair(lab)
    import contextlib
    import io
    import re

    from carpd.ctl.main import main as carpctl

    # The BACKUP names the master it hears, and how long ago: within one of its intervals.
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert carpctl(["--socket", str(n2.socket), "status"]) == 0
    m = re.search(r"^\tmaster 192\.0\.2\.1, heard (\d+\.\d\d) s ago$", out.getvalue(), re.M)
    assert m is not None, out.getvalue()
    assert float(m.group(1)) <= n1.vhids[0].advert_interval + bounds.REACTION

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert carpctl(["--socket", str(n1.socket), "status"]) == 0
    text = out.getvalue()
    assert text.splitlines()[0] == "carp1: MASTER carpdev eth0 vhid 1 advbase 1 advskew 0"
    assert "\tinet 192.0.2.100/24" in text and "\tinet6 2001:db8::100/64" in text
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert carpctl(["--socket", str(n1.socket), "status", "--json"]) == 0
    data = json.loads(out.getvalue())
    vh = data["vhosts"][0]
    assert vh["state"] == "MASTER" and vh["last_transition"]
    assert vh["master"] == "192.0.2.1"
    assert vh["counters"]["adverts_sent"] > 0
    assert "lab-secret" not in out.getvalue() and "lab-secret" not in text
    assert n1.log is not None and not [line for line in n1.log.lines if "lab-secret" in line]


def test_crash_leaves_an_address_that_a_restart_removes(lab: Lab) -> None:
    n1, n2 = pair(lab)
    n1.signal(signal.SIGKILL)
    assert n1.proc is not None
    n1.proc.wait(5)
    assert n1.host.has_address("192.0.2.100")  # kill -9 cannot clean up...
    n2.wait_state("MASTER", timeout=bounds.takeover(n2.master_down))
    n1.start()
    n1.wait_state("BACKUP", timeout=bounds.START_UP)  # ...but the restart does, and takes no role
    assert not n1.host.has_address("192.0.2.100")
    assert n2.states() == {"carp1": "MASTER"}


@pytest.mark.solo  # measures timings: run alone
@pytest.mark.parametrize("vip", ["192.0.2.100", "2001:db8::100"])
def test_client_follows_the_address_after_a_crash(lab: Lab, vip: str) -> None:
    """kill -9 plus a pulled cable: the client only gets the address back from the new
    master if it announces it (gratuitous ARP / unsolicited NA), because its neighbour
    entry still points at the dead master's MAC."""
    n1, n2 = pair(lab)
    client = lab.add_host("cl", "192.0.2.9/24", "2001:db8::9/64")
    ping = Pinger(client, vip)
    ping.wait_reply()
    mark = n2.mark()
    n1.signal(signal.SIGKILL)
    lab.set_link(n1.host, False)
    n2.wait_state("MASTER", timeout=bounds.takeover(n2.master_down), start=mark)
    ping.log.wait_for(r"bytes from", timeout=bounds.COMMAND, start=ping.mark())
    outage = ping.stop()
    assert outage.longest_gap_ms < (3 + 100 / 256 + 0.5) * 1000


def test_malformed_and_forged_adverts_are_counted_and_change_nothing(lab: Lab) -> None:
    import sys
    from pathlib import Path

    n1, n2 = pair(lab)
    attacker = lab.add_host("at", "192.0.2.66/24")
    transitions = {n.name: n.counter("transitions") for n in (n1, n2)}
    forge = Path(__file__).with_name("forge.py")
    r = attacker.run([sys.executable, str(forge), "192.0.2.66", "1"], timeout=20)
    assert r.returncode == 0, r.stderr
    expected = {
        "bad_hmac": 10,  # five forged better adverts and five forged bow-outs (or copies)
        "bad_ttl": 5,
        "bad_checksum": 5,
        "bad_version": 10,  # five of version 4, five VRRPv3 adverts for our vhid
        "short": 5,
        "bad_length": 5,
        "unknown_vhid": 5,
    }
    for node in (n1, n2):
        deadline = time.monotonic() + 5
        while True:
            st = node.status()
            dropped = dict(st["dropped"]["eth0"])
            for reason, count in st["vhosts"][0]["counters"]["dropped"].items():
                dropped[reason] = dropped.get(reason, 0) + count
            # A copy of a datagram refused already is counted as repeated, unread.
            if "repeated" in dropped:
                dropped["bad_hmac"] = dropped.get("bad_hmac", 0) + dropped.pop("repeated")
            if dropped == expected or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert dropped == expected, f"{node.name}: {dropped}"
        assert node.counter("transitions") == transitions[node.name]
        assert node.proc is not None and node.proc.poll() is None
    assert n1.states() == {"carp1": "MASTER"} and n2.states() == {"carp1": "BACKUP"}
    # Logged, but rate-limited: one line per reason and source, not one per packet.
    assert n2.log is not None
    assert n2.log.count(r"carp: bad_hmac from 192.0.2.66 on eth0") == 1
    # ...and diagnosed, with a hint.
    assert n2.log.count(r"carp1: vhid 1 is also used by a VRRP router at 192\.0\.2\.66") == 1
    assert n2.log.count(r"carp1: adverts from 192\.0\.2\.66 for vhid 1 fail the HMAC check") == 1
    assert "vhid 1 is also used by a VRRP router" in n2.ctl("status")[1]


def test_many_vhids_in_one_process_are_independent(lab: Lab) -> None:
    h1 = lab.add_host("n1", "192.0.2.1/24", "2001:db8::1/64")
    h2 = lab.add_host("n2", "192.0.2.2/24", "2001:db8::2/64")

    def specs(skews: tuple[int, int, int]) -> list[VhidSpec]:
        return [
            VhidSpec(1, ("192.0.2.100/24", "198.51.100.100/24"), advskew=skews[0]),
            VhidSpec(2, ("192.0.2.101/24",), advskew=skews[1]),
            VhidSpec(3, ("2001:db8::103/64",), advskew=skews[2]),
        ]

    # Each node must win one vhid and lose another: no start order can decide that, so
    # both preempt, and whichever is ready first hands back what it must not keep.
    n1 = Node(lab, h1, specs((0, 100, 0)), {"preempt": True})
    n2 = Node(lab, h2, specs((100, 0, 100)), {"preempt": True})
    n1.start()
    n2.start()
    n1.wait_ready()
    n2.wait_ready()
    converged = bounds.first_master(max(n1.master_down, n2.master_down)) + bounds.REACTION
    n1.wait_states({"carp1": "MASTER", "carp2": "BACKUP", "carp3": "MASTER"}, converged)
    n2.wait_states({"carp1": "BACKUP", "carp2": "MASTER", "carp3": "BACKUP"}, converged)
    h1.wait_address("198.51.100.100")
    h2.wait_address("192.0.2.101")
    h1.wait_address("2001:db8::103")
    mark = n1.mark()
    n2.stop(signal.SIGTERM)
    n1.wait_state("MASTER", vhid="carp2", timeout=n1.master_down, start=mark)
    assert n1.log is not None
    moved = [line for line in n1.log.lines[mark:] if "state transition" in line]
    assert len(moved) == 1 and "carp2:" in moved[0]
    h1.wait_address("192.0.2.101")
