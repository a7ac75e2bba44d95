"""The README's first command, run as a newcomer runs it: `./scripts/demo` (and
`--firewall`), end to end, with its lines checked and nothing left behind, Ctrl-C
included."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from carpd_lab import bounds
from carpd_lab.netlab import LogWatch

DEMO = Path(__file__).parents[2] / "scripts" / "demo"
# The demo's pair: advbase 1, node2's advskew 100; the client pings every 10 ms.
MASTER_DOWN = bounds.carp_master_down(1, 100)
PING_INTERVAL = 0.01
# A whole demo: setup (already done by scripts/test: a check and an editable install),
# the start-ups, two failovers and the pings around them, the firewall pair's conntrackd.
# Only a wait's limit: the assertions below use the protocol's bounds.
DEMO_LIMIT = 150.0


def leftovers(pid: int, tag: str) -> list[str]:
    """The demo's namespaces (named after its pid by carpd_lab.netlab.Lab) and any
    process still running from its lab's files."""
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    prefix = f"carpd-{tag}-{pid % 100000}"
    found = [line.split()[0] for line in names.splitlines() if line.startswith(prefix)]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # it exited while we looked
            continue
        if f"/carpd-{tag}-" in cmdline:
            found.append(f"pid {proc.name}: {cmdline}")
    return found


@pytest.fixture
def root() -> None:
    if os.geteuid() != 0:
        pytest.skip("the demo builds network namespaces: needs root")


def run_demo(*args: str) -> tuple[subprocess.CompletedProcess[str], int]:
    proc = subprocess.Popen(
        [str(DEMO), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        out, _ = proc.communicate(timeout=DEMO_LIMIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out), proc.pid


def number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found, f"no line matches {pattern!r} in:\n{text}"
    return float(found.group(1))


@pytest.mark.solo  # measures a takeover and a client's outage: run alone
def test_the_demo_elects_fails_over_hands_over_and_cleans_up(root: None) -> None:
    result, pid = run_demo()
    out = result.stdout
    assert result.returncode == 0, out
    # The election: node1 alone becomes MASTER after a master-down interval of silence;
    # node2 hears it and stays BACKUP; carpctl answers on both.
    assert number(r"MASTER after ([\d.]+) s", out) <= bounds.first_master(1.0)
    assert "carp0: MASTER carpdev eth0 vhid 1 advbase 1 advskew 0" in out
    assert "carp0: BACKUP carpdev eth0 vhid 1 advbase 1 advskew 100" in out
    # The crash: node2 takes over within its master-down interval of node1's last advert
    # (sent before the kill), and the client's longest silence is no longer than that.
    assert number(r"node2 MASTER ([\d.]+) s after the kill", out) <= bounds.takeover(MASTER_DOWN)
    outages = [float(x) / 1000 for x in re.findall(r"client outage: (\d+) ms", out)]
    assert len(outages) == 2, out
    assert outages[0] <= bounds.takeover(MASTER_DOWN) + PING_INTERVAL
    # node1 comes back as BACKUP (preempt off); SIGTERM hands over at once.
    assert "node1: {'carp0': 'BACKUP'}  node2: {'carp0': 'MASTER'}" in out
    handover = number(r"node1 MASTER (\d+) ms after SIGTERM", out) / 1000
    assert handover <= bounds.REACTION
    assert outages[1] <= bounds.REACTION + PING_INTERVAL
    assert "node2 exited 0" in out
    assert out.rstrip().endswith("done: every namespace and process of the demo is gone")
    assert leftovers(pid, "demo") == []


@pytest.mark.solo  # a TCP flow through a failover: run alone
def test_the_firewall_demo_keeps_a_tcp_connection_through_a_crash(root: None) -> None:
    result, pid = run_demo("--firewall")
    out = result.stdout
    assert result.returncode == 0, out
    assert re.search(r"carpctl status on fw1:\n\s+lan: MASTER", out), out
    assert re.search(r"carpctl status on fw2:\n\s+lan: BACKUP", out), out
    # The same connection, not a new one: one accept at the server, no error.
    assert re.search(r"carries data again [\d.]+ s after the crash; errors: none;", out), out
    assert "connections the server accepted: 1," in out
    assert out.rstrip().endswith("done: every namespace and process of the demo is gone")
    assert leftovers(pid, "demofw") == []


@pytest.fixture
def demo_in_its_own_group() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [str(DEMO)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_ctrl_c_in_the_middle_of_the_demo_leaves_nothing_behind(
    root: None, demo_in_its_own_group: subprocess.Popen[bytes]
) -> None:
    proc = demo_in_its_own_group
    assert proc.stdout is not None
    out = LogWatch(proc.stdout)
    # Both daemons and the client's ping run: the most there is to tear down.
    out.wait_for(r"client pings", timeout=DEMO_LIMIT)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends: the whole group
    assert proc.wait(timeout=DEMO_LIMIT) == 130
    out.wait_for(r"interrupted: lab removed", timeout=bounds.COMMAND)
    assert leftovers(proc.pid, "demo") == []
