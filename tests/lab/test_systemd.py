"""carpd under systemd's eyes: sd_notify from the real daemon to a real NOTIFY_SOCKET."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from carpd_lab import bounds
from carpd_lab.cluster import Node, VhidSpec
from carpd_lab.netlab import Lab

# It measures timings or loads the CPU: scripts/test runs it alone.
pytestmark = pytest.mark.solo

WATCHDOG_USEC = 400_000  # so a pet every 0.2 s


class NotifySocket:
    """What systemd listens on: a datagram socket; messages as lists of lines."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.path = path
        self.seen: list[list[str]] = []

    def wait_for(self, first: str, timeout: float) -> list[str]:
        """Until a message whose first line is ``first``; the non-watchdog ones are kept."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {first} within {timeout} s; seen {self.seen}")
            self.sock.settimeout(left)
            lines = self.sock.recv(4096).decode().split("\n")
            if lines != ["WATCHDOG=1"]:
                self.seen.append(lines)
            if lines[0] == first:
                return lines


@pytest.fixture
def notify(lab: Lab) -> Iterator[NotifySocket]:
    ns = NotifySocket(lab.tmp / "notify")
    try:
        yield ns
    finally:
        ns.sock.close()


def test_ready_reloading_watchdog_and_stopping(lab: Lab, notify: NotifySocket) -> None:
    host = lab.add_host("n1", "192.0.2.1/24")
    node = Node(lab, host, [VhidSpec(1, ("192.0.2.100/24",), name="lan")])
    env = dict(os.environ, NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC=str(WATCHDOG_USEC))
    node.start(env=env)
    ready = notify.wait_for("READY=1", bounds.START_UP)
    node.wait_ready()  # READY=1 comes with the control socket bound, the state decided
    # The start-up demotion (until the first service check is done, a moment later) may
    # still be on: which one READY sees depends on the order of two tasks at start.
    assert re.fullmatch(r"STATUS=lan BACKUP; demotion (0|240)", ready[1]), ready
    assert ready[2].startswith("MAINPID=")
    # A lone node: MASTER after the master-down interval, and the STATUS follows.
    status = notify.wait_for("STATUS=lan MASTER; demotion 0", bounds.takeover(node.master_down))
    assert status == ["STATUS=lan MASTER; demotion 0"]
    # The watchdog, petted from the protocol's loop: several in one advert interval.
    notify.sock.settimeout(bounds.REACTION + WATCHDOG_USEC / 2e6)
    pets = [notify.sock.recv(100) for _ in range(3)]
    assert pets == [b"WATCHDOG=1"] * 3
    # SIGHUP: RELOADING=1 with the monotonic clock (Type=notify-reload needs it), READY=1.
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    node.signal(signal.SIGHUP)
    reloading = notify.wait_for("RELOADING=1", bounds.COMMAND)
    assert before <= int(reloading[1].removeprefix("MONOTONIC_USEC=")) <= before + 10**7
    assert notify.wait_for("READY=1", bounds.COMMAND)[1] == "STATUS=lan MASTER; demotion 0"
    # SIGTERM: STOPPING=1 as the hand-over begins.
    node.signal(signal.SIGTERM)
    assert notify.wait_for("STOPPING=1", bounds.COMMAND) == [
        "STOPPING=1",
        "STATUS=stopping: handing over",
    ]
    assert node.stop() == 0
