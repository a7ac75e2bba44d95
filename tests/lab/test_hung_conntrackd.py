"""A conntrackd whose resync (-R) hangs after a takeover holds only conntrackd's own
chain of the host lane: the up hook and a master [[action]] start within their own
bound, not after conntrackd's command_timeout (review-integrations.md, finding 2)."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from carpd_lab import bounds
from carpd_lab.cluster import Node, VhidSpec
from carpd_lab.netlab import Lab

STATS = Path(__file__).parents[1] / "unit" / "data" / "conntrackd-s-1.4.7.txt"

# conntrackd's command_timeout here: the longest carpd allows, so a hook held behind the
# hung -R would start at least this long after the takeover.
COMMAND_TIMEOUT = 120.0
# From the transition to the start of a background step: the blocking steps before it
# (the commit, the address change, the route-less announce), each one process or one
# netlink change, and the fork and exec of the hook or action itself.
OWN_BOUND = 3 * bounds.COMMAND

FAKE = """#!/bin/sh
shift 2  # -C <config>
echo "$(date +%s.%N) $*" >> {log}
case "$1" in
  -s) cat {stats} ;;
  -R) exec sleep 600 ;;  # hangs: killed at command_timeout
esac
exit 0
"""

STAMP = "date +%s.%N > {out}"


def test_a_hung_conntrackd_resync_holds_neither_the_up_hook_nor_a_master_action(
    lab: Lab,
) -> None:
    log, hook_at, action_at = lab.tmp / "conntrackd.log", lab.tmp / "hook", lab.tmp / "action"
    binary = lab.tmp / "conntrackd"
    binary.write_text(FAKE.format(log=log, stats=STATS))
    binary.chmod(0o755)
    up = lab.tmp / "up"
    up.write_text(f"#!/bin/sh\n{STAMP.format(out=hook_at)}\n")
    up.chmod(0o755)
    conf = lab.tmp / "conntrackd.conf"
    conf.write_text("General {\n}\n")
    spec = VhidSpec(1, ("192.0.2.1/24",), name="lan", extra={"up": str(up)})
    node = Node(lab, lab.add_host("n1", "192.0.2.2/24"), [spec])
    node.tables["conntrackd"] = {
        "enabled": True,
        "binary": str(binary),
        "config": str(conf),
        "command_timeout": COMMAND_TIMEOUT,
    }
    node.arrays["action"] = [
        {"name": "stamp", "vhid": "lan", "on": ["master"],
         "run": ["/bin/sh", "-c", STAMP.format(out=action_at)]},
    ]  # fmt: skip
    node.start()
    node.wait_ready()
    node.wait_state("MASTER", "lan", bounds.first_master(node.master_down))
    (took_over,) = [
        datetime.fromisoformat(h["at"]).timestamp()
        for h in node.status()["vhosts"][0]["history"]
        if h["to"] == "MASTER"
    ]
    # The resync as master is hung in -R (it started after the takeover).
    deadline = time.monotonic() + OWN_BOUND
    while " -R" not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert " -R" in log.read_text(), "conntrackd -R never ran"
    deadline = time.monotonic() + OWN_BOUND
    while not (hook_at.exists() and action_at.exists()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hook_at.exists(), f"the up hook did not start within {OWN_BOUND} s"
    assert action_at.exists(), f"the master action did not start within {OWN_BOUND} s"
    for what, path in (("up hook", hook_at), ("master action", action_at)):
        late = float(path.read_text()) - took_over
        print(f"{what} started {late:.3f} s after the takeover, -R hung")
        assert late < OWN_BOUND, f"{what} started {late:.1f} s after the takeover"
    # Still hung: conntrackd's chain is busy, and nothing else waited for it.
    plan = node.status()["vhosts"][0]["plan"]
    assert [p["step"] for p in plan if not p["blocking"]] == [
        "conntrackd resync as master",
        "master actions",
        "up hook",
    ]
    assert " -B" not in log.read_text()
