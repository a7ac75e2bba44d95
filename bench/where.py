"""Where carpd's time goes at 16 VRIDs and 10 ms adverts, by stage.

A lone carpd MASTER of 16 VRRPv3 VRIDs at 10 ms (as in the jitter scenario, normal
policy) is sampled by py-spy (``record --format raw``: one line per distinct Python
stack, with its count) for ``seconds``, while its CPU is read from schedstat over the
same window. py-spy counts a sample only when the thread is on a CPU, and a C call's
time (a syscall's, in the kernel) falls on the Python line that made it, so each stage
below is carpd's own Python and the kernel work it asks for. A sample's stage is taken
from its innermost frame, then its innermost carpd frame:

- wakeup: the event loop's ``epoll_wait`` returning (the timerfd fired: the kernel's
  context switch back to carpd);
- loop: asyncio's own Python around it (its ready queue, its handles);
- timer: reading the timerfd and arming it again (carpd.linux.timerfd, the runtime's
  ticks);
- send: the adverts' ``sendto`` (carpd.linux.sockets: the kernel's IP and veth path);
- core: the protocol's decision and the advert (carpd.core);
- runtime: the daemon's other bookkeeping (carpd.daemon: transmit, the vhosts, events);
- other: anything else of carpd's (netlink, the link watch).

The share of each is of the samples; times the window's CPU it is % of one core.
py-spy stops the process for each sample (a consistent stack): a rate of 200 a second
costs carpd a little time, so this runs apart from the jitter and CPU figures.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from core import cpu_percent, sample_cpu, setting_up
from vrrp import carpd_master_of_16

from carpd_lab.netlab import Lab

STAGES = ("wakeup", "loop", "timer", "send", "core", "runtime", "other")
RATE = 200  # samples a second
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]+):\d+\)$")
# Innermost carpd frames by file, first match wins; frames of carpd's entry are not a stage.
_BY_FILE = (
    ("carpd/linux/timerfd.py", "timer"),
    ("carpd/daemon/runtime/ticks.py", "timer"),
    ("carpd/linux/sockets.py", "send"),
    ("carpd/core/", "core"),
    ("carpd/daemon/", "runtime"),
    ("carpd/", "other"),
)
_ENTRY = ("carpd/__main__.py", "carpd/daemon/service/main.py", "carpd/daemon/service/serve.py")


def py_spy() -> str:
    """The venv's py-spy (the bench extra), else one on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise RuntimeError("py-spy is missing: pip install -e '.[bench]'")
    return found


def stage_of(stack: str) -> str:
    """The stage of one py-spy raw stack ("outer (file:line);...;inner (file:line)")."""
    frames = [m.groupdict() if (m := _FRAME.match(f)) else {} for f in stack.split(";")]
    files = [f.get("file", "") for f in frames]
    carpd = [f for f in files if f.startswith("carpd/") and not f.startswith(_ENTRY)]
    if not carpd:  # the event loop alone: in epoll_wait (the C call), or its own Python
        return "wakeup" if frames and frames[-1].get("func", "").endswith(".select") else "loop"
    innermost = carpd[-1]
    return next(stage for prefix, stage in _BY_FILE if innermost.startswith(prefix))


def shares(raw: str) -> tuple[int, dict[str, float]]:
    """The samples in py-spy's raw output, and each stage's share of them."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, n = line.rstrip().rpartition(" ")
        if stack and n.isdigit():
            counts[stage_of(stack)] += int(n)
    total = sum(counts.values())
    return total, {s: counts[s] / total if total else 0.0 for s in STAGES}


def profile(seconds: float) -> dict[str, float]:
    """One window: the samples, the CPU over it, and each stage's share."""
    with Lab("bwt") as lab:
        with setting_up("carpd, 16 VRIDs MASTER"):
            pid = carpd_master_of_16(lab, lab.add_host("n1", "192.0.2.1/24"))
            lab.add_host("w", "192.0.2.9/24")  # the segment has a listener, as in jitter
            time.sleep(1.0)  # settled
        out = lab.tmp / "py-spy.txt"
        argv = [py_spy(), "record", "--pid", str(pid), "--duration", f"{seconds:g}",
                "--rate", str(RATE), "--format", "raw", "--output", str(out)]  # fmt: skip
        before = sample_cpu(pid)
        subprocess.run(argv, check=True, capture_output=True, timeout=seconds + 30)
        after = sample_cpu(pid)
        samples, share = shares(out.read_text())
    if samples == 0:
        raise RuntimeError("py-spy took no sample of carpd")
    return {
        "samples": samples,
        "cpu_pct": cpu_percent(before, after)[1],
        **{f"share {s}": v for s, v in share.items()},
    }
