"""sd_notify against a real AF_UNIX datagram socket, and the shipped systemd unit."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import FakeNetlink, FakePorts, config, install

from carpd.core.model import Reason, State
from carpd.daemon.observers.notify import Notifier, status_line
from carpd.daemon.runtime.runtime import Daemon
from carpd.daemon.seam.events import Lifecycle, RoleChanged

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(2.0)
    try:
        yield sock, path
    finally:
        sock.close()


def received(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Daemon:
    install()
    text = 'name = "lan"\nvhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n'
    return Daemon(config(tmp_path, text), FakePorts(FakeNetlink()))


def test_ready_status_and_stopping_reach_the_socket(
    tmp_path: Path, notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = notify_socket
    env = {"NOTIFY_SOCKET": path}
    notifier = Notifier(env)
    assert env == {}  # hooks and conntrackd do not inherit it
    d = daemon(tmp_path, monkeypatch)

    d.publisher.subscribers.append(notifier)

    async def main() -> None:
        await d.start()  # BACKUP: not ready yet, so no STATUS
        notifier.notify(Lifecycle("ready"), d.view())  # as Daemon.run publishes it
        d.force_state("lan", State.MASTER)
        await d.settle()
        notifier.notify(Lifecycle("stopping"), d.view())

    asyncio.run(main())
    ready = received(sock)
    assert ready[0] == "READY=1"
    assert ready[1] == "STATUS=lan BACKUP; demotion 0"
    assert ready[2] == f"MAINPID={os.getpid()}"
    assert received(sock) == ["STATUS=lan MASTER; demotion 0"]  # the transition
    assert received(sock) == ["STOPPING=1", "STATUS=stopping: handing over"]


def test_a_burst_of_transitions_sends_one_status_with_the_last_state(
    tmp_path: Path, notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """255 takeovers at once: one STATUS line (it names every vhid), not one each."""
    sock, path = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": path})
    d = daemon(tmp_path, monkeypatch)

    async def main() -> None:
        await d.start()
        notifier.notify(Lifecycle("ready"), d.view())
        d.publisher.subscribers.append(notifier)
        for new in (State.MASTER, State.BACKUP, State.MASTER):  # in one loop iteration
            event = RoleChanged(("eth0", 1), State.BACKUP, new, Reason.USER_REQUESTED, 0, "lan")
            d.publisher.publish(event)  # each with its view, built only if read
        d.force_state("lan", State.MASTER)  # what the view shows when the line goes out
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    asyncio.run(main())
    assert received(sock)[0] == "READY=1"
    assert received(sock) == ["STATUS=lan MASTER; demotion 0"]
    sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        sock.recv(4096)


def test_a_reload_says_reloading_with_the_monotonic_clock_then_ready(
    tmp_path: Path, notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": path})
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    lines = received(sock)
    assert lines[0] == "RELOADING=1"
    usec = int(lines[1].removeprefix("MONOTONIC_USEC="))
    assert before <= usec < before + 2_000_000
    d = daemon(tmp_path, monkeypatch)
    asyncio.run(d.start())
    notifier.reloaded(d.view())
    assert received(sock)[0] == "READY=1"


def test_the_watchdog_is_petted_from_the_loop_and_only_for_our_pid(
    notify_socket: tuple[socket.socket, str],
) -> None:
    sock, path = notify_socket
    other = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000", "WATCHDOG_PID": "1"})
    assert other.watchdog is None  # meant for another process
    notifier = Notifier(
        {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000", "WATCHDOG_PID": str(os.getpid())}
    )
    assert notifier.watchdog == 0.01  # half of WATCHDOG_USEC

    async def main() -> None:
        notifier.start_watchdog()
        await asyncio.sleep(0.1)
        notifier.close()

    asyncio.run(main())
    sock.settimeout(0)
    pets = []
    while True:
        try:
            pets.append(sock.recv(100))
        except BlockingIOError:
            break
    assert 3 <= len(pets) <= 12 and set(pets) == {b"WATCHDOG=1"}


def test_an_abstract_socket_is_addressed_with_a_nul(tmp_path: Path) -> None:
    name = f"carpd-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2.0)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).send("READY=1")
        assert sock.recv(100) == b"READY=1"
    finally:
        sock.close()


def test_without_systemd_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert notifier.address is None and notifier.watchdog is None
    assert notifier.send("READY=1") is False


def test_status_line_names_every_vhid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = daemon(tmp_path, monkeypatch)
    asyncio.run(d.start())
    assert status_line(d.view()) == "lan BACKUP; demotion 0"


def test_the_shipped_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """Any warning (an unknown or misspelt key, a bad value) fails: verify itself exits 0
    on those."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("needs systemd-analyze (Debian package systemd)")
    unit = (ROOT / "packaging" / "carpd.service").read_text()
    carpd = Path(sys.executable).parent / "carpd"  # ExecStart must exist for verify
    path = tmp_path / "carpd.service"
    path.write_text(unit.replace("/usr/local/bin/carpd", str(carpd)))
    r = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "" and r.stdout == ""
    caps = "AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW CAP_CHOWN"
    for key in ("Type=notify", "WatchdogSec=", caps):
        assert key in unit
