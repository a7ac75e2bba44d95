"""A firewall pair with real conntrackd and nftables: connections survive a failover.

Every test keeps one TCP connection (a record every 20 ms) and a UDP flow from the LAN
client to the WAN server through the pair (SNAT to the WAN virtual address, a strict
stateful policy, nf_conntrack_tcp_loose = 0; see carpd_lab.firewall), fails the master
in some way, and asks whether the *same* connection carries data again through the new
master: never reconnected, no reset, the server still seeing the virtual address and
the same port. The control (state sync off) shows that the test can fail.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from carpd.daemon.effects.conntrack import BULK_QUIET, STATS_INTERVAL
from carpd_lab import bounds
from carpd_lab.cluster import Node
from carpd_lab.firewall import LAN_VIP, WAN_VIP, FirewallPair, Flows, failover_limit, started
from carpd_lab.netlab import Lab

# It measures timings or loads the CPU: scripts/test runs it alone.
pytestmark = pytest.mark.solo


@pytest.fixture
def pair(lab: Lab) -> Iterator[FirewallPair]:
    with started(lab) as pair:
        yield pair


def survived(pair: FirewallPair, flows: Flows, since: int) -> dict[str, float]:
    """The flows carried data again in time, over the very same TCP connection."""
    backup = pair.fw[1]
    resumed = flows.wait_resumed(failover_limit(backup), since)
    report = flows.report(bounds.COMMAND)
    assert report["errors"] == {} and report["sending_working"] == 1
    accepts = flows.server_events("accept")
    assert len(accepts) == 1 and accepts[0][0] == WAN_VIP  # no reconnect; SNAT moved
    assert flows.server_events("closed") == []  # no reset
    return resumed


def preempt_limit(master: Node) -> float:
    """A less demoted BACKUP (preempt on) takes over when it hears the master's next
    advert: within one of the master's advert intervals (1 + 100/256 s for fw2). A master
    whose own demotion rose advertises it at once, which is sooner."""
    return master.vhids[0].advert_interval + bounds.REACTION


def both(node: Node, state: str, timeout: float, start: int = 0) -> list[int]:
    return [node.wait_state(state, s.ifname, timeout, start)[0] for s in node.vhids]


def test_without_state_sync_the_same_crash_breaks_the_connection(lab: Lab) -> None:
    """The control: no conntrackd, and the backup drops the connection's packets as
    invalid (no state, no mid-stream pickup), so the client stalls."""
    pair = FirewallPair(lab, sync=False)
    pair.start()
    fw1, fw2 = pair.fw
    flows = pair.flows()
    since = flows.mark(pair.crash(fw1))
    both(fw2, "MASTER", bounds.takeover(fw2.master_down))
    with pytest.raises(TimeoutError):
        flows.wait_resumed(failover_limit(fw2), since)
    assert flows.report(bounds.COMMAND)["sending_working"] == 0
    assert pair.invalid(fw2) > 0  # the connection's packets, dropped: fw2 never knew it


def test_maintenance_then_sigterm_hand_the_connection_over(pair: FirewallPair) -> None:
    """`carpctl maintenance on` moves the role to fw2, `off` brings it back (preempt on),
    SIGTERM moves it to fw2 again: the same connection survives all three."""
    fw1, fw2 = pair.fw
    flows = pair.flows()
    since = flows.mark(time.monotonic())
    assert fw1.ctl("maintenance", "on")[0] == 0
    survived(pair, flows, since)
    both(fw2, "MASTER", 1)
    start = fw1.mark()
    since = flows.mark(time.monotonic())
    assert fw1.ctl("maintenance", "off")[0] == 0
    both(fw1, "MASTER", preempt_limit(fw2), start)
    survived(pair, flows, since)
    since = flows.mark(time.monotonic())
    assert fw1.stop(signal.SIGTERM) == 0
    survived(pair, flows, since)
    fw2.wait_states({"lan": "MASTER", "wan": "MASTER"}, bounds.REACTION)


def test_a_crash_then_a_restart_that_waits_for_the_table_before_taking_the_role_back(
    pair: FirewallPair,
) -> None:
    """A crash of the master: the connection carries on through fw2, whose commit came
    before its addresses (not one packet dropped as invalid there). Then, preempt on,
    fw1 comes back with an empty table; demoted by the state sync source until its bulk
    resync from fw2 is done, then MASTER again, and the connection survives that too."""
    fw1, fw2 = pair.fw
    flows = pair.flows()
    since = flows.mark(pair.crash(fw1))
    resumed = survived(pair, flows, since)
    both(fw2, "MASTER", 1)
    assert pair.invalid(fw2) == 0  # not one packet met fw2 before the commit
    for vhost in fw2.status()["vhosts"]:
        (commit,) = [s for s in vhost["host_steps"] if s["name"] == "conntrackd commit"]
        assert commit["runs"] == 1 and commit["failed"] == 0 and commit["late"] == 0
    print(
        f"crash: data again after {resumed['resumed']} s (UDP {resumed['udp']} s); "
        f"the commit took {commit['last_duration']} s"
    )
    pair.revive(fw1)
    fw1.start()  # its conntrackd was killed too: carpd starts it (a stale lock left)
    start = fw1.wait_log(r"demoted by 240 to 240 \(state sync bulk start\)", bounds.START_UP)[0]
    backup = both(fw1, "BACKUP", bounds.START_UP, start)
    done = fw1.wait_log(
        r"\(state sync bulk done\)", BULK_QUIET + STATS_INTERVAL + bounds.START_UP, start
    )[0]
    assert max(backup) < done
    since = flows.mark(time.monotonic())
    master = both(fw1, "MASTER", preempt_limit(fw2), done)
    assert min(master) > done  # never MASTER before the peer's table was in
    assert fw1.log.count(r"stale lock file") == 1
    survived(pair, flows, since)


def test_a_dead_conntrackd_demotes_its_node_until_it_is_back_and_resynced(
    pair: FirewallPair,
) -> None:
    fw1, fw2 = pair.fw
    flows = pair.flows()
    os.kill(pair.conntrackd_pid(fw1), signal.SIGKILL)
    start = fw1.wait_log(
        r"demoted by 240 to 240 \(state sync conntrackd down\)", STATS_INTERVAL + bounds.COMMAND
    )[0]
    since = flows.mark(time.monotonic())
    both(fw2, "MASTER", preempt_limit(fw1))
    survived(pair, flows, since)
    # fw1 is BACKUP now: it starts conntrackd again, resyncs, and takes the role back.
    done = fw1.wait_log(r"\(state sync bulk done\)", BULK_QUIET + STATS_INTERVAL * 2, start)[0]
    since = flows.mark(time.monotonic())
    both(fw1, "MASTER", preempt_limit(fw2), done)
    survived(pair, flows, since)


def test_a_cut_sync_link_demotes_its_node(pair: FirewallPair) -> None:
    """pfsync link down: a master that can no longer send its table to the peer hands the
    role over (preempt on) while the connections still survive; the link back, a bulk
    resync, then the role back."""
    fw1, fw2 = pair.fw
    flows = pair.flows()
    pair.lab.set_port(fw1.host, "sync0", up=False)
    start = fw1.wait_log(r"demoted by 240 to 240 \(state sync link down\)", bounds.COMMAND)[0]
    since = flows.mark(time.monotonic())
    both(fw2, "MASTER", preempt_limit(fw1))
    survived(pair, flows, since)
    pair.lab.set_port(fw1.host, "sync0", up=True)
    done = fw1.wait_log(r"\(state sync bulk done\)", BULK_QUIET + STATS_INTERVAL * 2, start)[0]
    both(fw1, "MASTER", preempt_limit(fw2), done)


def running_pid(pid: int) -> bool:
    """The process exists and has not exited (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_the_conntrackd_carpd_started_outlives_it_unless_stop_with_carpd(
    pair: FirewallPair,
) -> None:
    """fw1's carpd started its conntrackd (fw2's is the lab's, as systemd's would be).
    By default it keeps running after carpd, and status and the log say so and why. With
    stop_with_carpd = true, carpd stops the one it started at SIGTERM, after the hand-over
    (the connection survives it); fw2's, which carpd did not start, is left running."""
    fw1, fw2 = pair.fw
    pid = pair.conntrackd_pid(fw1)
    sync = fw1.status()["state_sync"]
    assert (sync["started_by_carpd"], sync["stop_with_carpd"]) == (pid, False)
    text = fw1.ctl("status")[1]
    assert f"\tconntrackd (pid {pid}) was started by carpd and keeps running when carpd" in text
    assert fw2.status()["state_sync"]["started_by_carpd"] is None  # the lab started it
    start = fw1.mark()
    assert fw1.stop(signal.SIGTERM) == 0
    fw1.wait_log(
        rf"conntrackd \(pid {pid}\), started by carpd, keeps running: a restart of carpd "
        r"keeps the connection table",
        bounds.COMMAND,
        start,
    )
    assert running_pid(pid)
    both(fw2, "MASTER", bounds.REACTION)

    # Now carpd starts it (stop_with_carpd on), takes the role back, and stops it at exit.
    os.kill(pid, signal.SIGTERM)  # conntrackd removes its lock file and socket
    deadline = time.monotonic() + bounds.COMMAND
    while running_pid(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running_pid(pid)
    for node in pair.fw:
        node.tables["conntrackd"]["stop_with_carpd"] = True
    fw2.write_config()
    assert fw2.ctl("reload")[0] == 0
    fw1.start()
    start = fw1.wait_log(r"conntrackd is not running: starting it", bounds.START_UP)[0]
    done = fw1.wait_log(r"\(state sync bulk done\)", BULK_QUIET + STATS_INTERVAL * 2, start)[0]
    both(fw1, "MASTER", preempt_limit(fw2), done)
    pid = pair.conntrackd_pid(fw1)
    assert fw1.status()["state_sync"]["started_by_carpd"] == pid
    assert "was started by carpd and stops with it (stop_with_carpd)" in fw1.ctl("status")[1]
    flows = pair.flows()
    since = flows.mark(time.monotonic())
    start = fw1.mark()
    assert fw1.stop(signal.SIGTERM) == 0
    survived(pair, flows, since)
    both(fw2, "MASTER", bounds.REACTION)
    stopped = fw1.wait_log(rf"conntrackd \(pid {pid}\) stopped with carpd", 0, start)[0]
    for name in ("lan", "wan"):  # the hand-over came first
        assert fw1.wait_log(rf"{name}: state transition: MASTER -> INIT", 0, start)[0] < stopped
    assert not fw1.host.has_address(LAN_VIP) and not fw1.host.has_address(WAN_VIP)
    assert not running_pid(pid)

    theirs = pair.conntrackd_pid(fw2)
    start = fw2.mark()
    assert fw2.stop(signal.SIGTERM) == 0
    fw2.wait_log(r"conntrackd was not started by this carpd: left running", 0, start)
    assert running_pid(theirs)
