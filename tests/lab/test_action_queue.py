"""[[action]]s on a real node: a hanging action does not hold up the adverts and is
killed at its timeout; a burst of transitions behind it runs in order, the last state
last, and the results reach `carpctl events`."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time

import pytest

from carpd.ctl.main import request
from carpd_lab import bounds
from carpd_lab.cluster import Node, VhidSpec
from carpd_lab.netlab import Lab, LogWatch
from carpd_lab.probe import sniff

# It measures timings or loads the CPU: scripts/test runs it alone.
pytestmark = pytest.mark.solo

ADVERT = r" carp 192\.0\.2\.2 "
ADVERTS = 4  # adverts timed while the action hangs, 1 s apart (advbase 1, advskew 0)
BURST = ("backup", "master", "backup", "master")  # states asked for behind it
# The hanging action's timeout: it must outlast the adverts timed and the burst's requests,
# so that the burst piles up behind it.
HANG = ADVERTS * (1.0 + bounds.REACTION) + len(BURST) * bounds.COMMAND


def test_a_hanging_action_holds_up_no_advert_and_a_burst_runs_last_state_last(
    lab: Lab,
) -> None:
    record, release = lab.tmp / "record", lab.tmp / "release"
    node = Node(
        lab, lab.add_host("n1", "192.0.2.2/24"), [VhidSpec(1, ("192.0.2.1/24",), name="lan")]
    )
    node.arrays["action"] = [
        {"name": "hang", "vhid": "lan", "on": ["master"], "timeout": HANG,
         "shell": f"[ -e {release} ] || exec sleep 60"},
        {"name": "record", "vhid": "lan", "on": ["master", "backup"],
         "run": ["/bin/sh", "-c", f'echo "$CARP_PHASE $CARP_PREVIOUS_STATE" >> {record}']},
    ]  # fmt: skip
    listener = lab.add_host("listener", "192.0.2.9/24")
    watch = sniff(listener, "--times")
    node.start()
    node.wait_ready()
    events = node.host.spawn(
        [sys.executable, "-m", "carpd.ctl", "--socket", str(node.socket), "events"],
        stdout=subprocess.PIPE,
    )
    assert events.stdout is not None
    stream = LogWatch(events.stdout)
    node.wait_state("MASTER", "lan", bounds.first_master(node.master_down))
    took_over = time.time()

    # While "hang" runs: every advert comes within its interval of the one before.
    interval = node.vhids[0].advert_interval
    # (The sniffer's lines reach us after a process boundary; the kernel's stamps are
    # what is asserted.)
    at, _ = watch.wait_for(ADVERT, interval + bounds.COMMAND, watch.mark())
    for _ in range(ADVERTS - 1):
        at, _ = watch.wait_for(ADVERT, interval + bounds.COMMAND, at + 1)
    stamps = [float(x.split()[0]) for x in watch.lines if " carp 192.0.2.2 " in x][-ADVERTS:]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    print(f"advert gaps while an action hangs: {', '.join(f'{g:.3f}' for g in gaps)} s")
    assert max(gaps) <= interval + bounds.REACTION

    # A burst behind it: only the newest waiting run happens once hang is killed.
    for state in BURST:
        reply = request(str(node.socket), {"command": "state", "name": "lan", "state": state})
        assert reply["ok"], reply
    release.touch()  # the next run of hang returns at once
    assert time.time() - took_over < HANG, "the burst came too late to pile up"
    at, line = stream.wait_for(r'"action": "hang"', HANG + bounds.COMMAND)
    killed = json.loads(line)
    assert (killed["status"], killed["error"]) == (None, f"killed after {HANG:.1f} s")
    # Each run in order: the first (hang killed, then record), then the last state's
    # (hang released, then record); each line looked for after the one before.
    at, _ = stream.wait_for(r'"action": "record", "phase": "master"', bounds.COMMAND, at + 1)
    at, _ = stream.wait_for(r'"action": "hang".*"status": 0', 2 * bounds.COMMAND, at + 1)
    stream.wait_for(r'"action": "record", "phase": "master"', bounds.COMMAND, at + 1)
    deadline = time.monotonic() + bounds.COMMAND
    while record.read_text().count("\n") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert record.read_text().splitlines() == ["backup INIT", "master BACKUP", "master BACKUP"]
    status = node.status()
    steps = {s["name"]: s for s in status["vhosts"][0]["host_steps"]}
    assert steps["master actions"]["skipped"] + steps["backup actions"]["skipped"] == 3
    lab.kill(events)
