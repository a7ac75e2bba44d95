"""[global] realtime_priority: carpd under SCHED_FIFO, what it starts under the normal
policy, and the RLIMIT_RTTIME guard, against the real kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from carpd_lab import bounds
from carpd_lab.cluster import Node, VhidSpec
from carpd_lab.netlab import Lab

PRIORITY = 10


def test_carpd_runs_sched_fifo_and_what_it_starts_does_not(lab: Lab) -> None:
    host = lab.add_host("n1", "192.0.2.1/24")
    extra = {"protocol": "vrrp3", "priority": 200, "advbase": 0.01}
    spec = VhidSpec(5, ("192.0.2.150/24",), password="", extra=extra)
    node = Node(lab, host, [spec], global_={"realtime_priority": PRIORITY})
    seen = lab.tmp / "check-policy"
    # A service check is a child of carpd: its policy is what a hook's would be.
    node.add_check("policy", f"chrt -p $$ > {seen}.tmp && mv {seen}.tmp {seen}")
    node.start()
    node.wait_state("MASTER", timeout=bounds.first_master(node.master_down))
    assert node.proc is not None
    policy = os.sched_getscheduler(node.proc.pid)
    assert policy == os.SCHED_FIFO | os.SCHED_RESET_ON_FORK
    assert os.sched_getparam(node.proc.pid).sched_priority == PRIORITY
    node.wait_log(r"realtime: SCHED_FIFO priority 10 ", timeout=bounds.REACTION)
    assert "\nrealtime: SCHED_FIFO priority 10\n" in node.ctl("status")[1] + "\n"
    assert node.status()["realtime"]["policy"] == "fifo"
    # The first service check ran before the start-up demotion was lifted.
    assert "SCHED_OTHER" in seen.read_text(), seen.read_text()


# A process that spins while SCHED_FIFO, with a budget and retry made short.
SPIN = textwrap.dedent(
    """
    import asyncio, json, os, time
    from carpd.linux import realtime
    realtime.BUDGET, realtime.HARD, realtime.RETRY = 0.05, 2.0, 0.3

    async def main():
        rt = realtime.Realtime(asyncio.get_running_loop())
        rt.apply(PRIORITY)
        before = os.sched_getscheduler(0)
        t0 = time.process_time()
        while rt.policy == "fifo" and time.process_time() - t0 < 1.0:
            pass  # a callback that never sleeps
        spun = time.process_time() - t0
        after = os.sched_getscheduler(0)
        deadline = time.monotonic() + 5.0  # RETRY is 0.3 s
        while rt.policy != "fifo" and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        print(json.dumps({"before": before, "spun": spun, "after": after,
                          "again": os.sched_getscheduler(0), "report": rt.report().to_json()}))
        rt.close()

    asyncio.run(main())
    """
).replace("PRIORITY", str(PRIORITY))


def test_a_carpd_that_spins_under_sched_fifo_falls_back_and_tries_again() -> None:
    r = subprocess.run(
        [sys.executable, "-c", SPIN], capture_output=True, text=True, timeout=bounds.START_UP * 2
    )
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    fifo = os.SCHED_FIFO | os.SCHED_RESET_ON_FORK
    assert seen["before"] == fifo
    # SIGXCPU at the 50 ms budget (the kernel counts it in ticks), not after the 1 s spin.
    assert seen["spun"] < 0.5, seen
    assert seen["after"] == os.SCHED_OTHER | os.SCHED_RESET_ON_FORK
    assert seen["again"] == fifo, seen
    assert seen["report"]["budget_exceeded"] == 1
    assert "RLIMIT_RTTIME): back to the normal policy" in r.stderr, r.stderr


def test_without_cap_sys_nice_carpd_says_so_and_runs_on(lab: Lab) -> None:
    host = lab.add_host("n1", "192.0.2.1/24")
    node = Node(lab, host, [VhidSpec(1)], global_={"realtime_priority": PRIORITY})
    node.start(wrap=["setpriv", "--bounding-set=-sys_nice", "--inh-caps=-sys_nice"])
    node.wait_log(
        r"realtime: realtime_priority = 10 refused \(Operation not permitted\): it needs "
        "CAP_SYS_NICE",
        timeout=bounds.START_UP,
    )
    node.wait_state("MASTER", timeout=bounds.first_master(node.master_down))
    assert node.proc is not None
    assert os.sched_getscheduler(node.proc.pid) == os.SCHED_OTHER
    refused = "realtime: realtime_priority 10 refused (Operation not permitted): normal policy"
    assert refused in node.ctl("status")[1]
