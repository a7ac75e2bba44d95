"""The conntrackd effect around the real runtime (fake netlink and sockets, and a fake
conntrackd that logs each call with the monotonic clock, which is the loop's)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
from fakes import FakeNetlink, FakePorts, config, install, takeover

from carpd.core.model import State
from carpd.daemon.effects import conntrack
from carpd.daemon.runtime.runtime import Daemon
from carpd.daemon.seam.view import to_json
from carpd.linux.conntrackd import running
from carpd_lab import bounds

# conntrack-tools 1.4.7's `conntrackd -s`, the external cache's size read from a file.
STATS = (Path(__file__).parent / "data" / "conntrackd-s-1.4.7.txt").read_text()

FAKE = """#!{python}
import os, re, sys, time
LOG, COMMIT, STATUS, STATS = {log!r}, {commit!r}, {status!r}, {stats!r}
args = sys.argv[3:]  # after -C <config>
with open(LOG, "a") as f:
    f.write(f"{{time.monotonic()}} start {{' '.join(args)}}\\n")
if args == ["-c"]:
    time.sleep(COMMIT)
if args == ["-s"] and os.path.exists(LOG + ".dead"):
    print("can't connect: is conntrackd running? appropriate permissions?", file=sys.stderr)
    sys.exit(1)
if args == ["-d"]:  # as conntrackd: refuses while its lock file is there
    if os.path.exists(LOG + ".lock"):
        print("lockfile exists, perhaps conntrackd already running?", file=sys.stderr)
        sys.exit(1)
    open(LOG + ".lock", "w").close()
    os.unlink(LOG + ".dead")
    if os.path.exists(LOG + ".daemon"):  # as conntrackd -d: a daemon stays behind
        import subprocess
        code = chr(10).join([
            "import signal, sys, time",
            "def term(*_):",
            f"    open({{LOG + '.term'!r}}, 'w').write(str(time.monotonic()))",
            "    sys.exit(0)",
            "signal.signal(signal.SIGTERM, term)",
            "time.sleep(120)",
        ])
        child = subprocess.Popen(
            ["conntrackd", "-c", code, "-C", sys.argv[2], "-d"],
            executable=sys.executable,
            start_new_session=True,
        )
        open(LOG + ".daemon", "w").write(str(child.pid))
        for _ in range(500):  # its argv is set a moment after exec
            argv = open(f"/proc/{{child.pid}}/cmdline", "rb").read()
            if argv.startswith(b"conntrackd" + bytes(1)):
                break
            time.sleep(0.01)
if args == ["-s"]:
    external = open(LOG + ".external").read().strip() if os.path.exists(LOG + ".external") else "0"
    # The peer's keep-alives: one more packet each look, unless it is silent.
    received = int(open(LOG + ".recv").read()) if os.path.exists(LOG + ".recv") else 0
    if not os.path.exists(LOG + ".silent"):
        received += 1
    # Replaced, not rewritten: two looks at once (the poll's and a transition's) must
    # never read it half-written (an empty file: the fake failed, "does not answer").
    open(LOG + f".recv.{{os.getpid()}}", "w").write(str(received))
    os.replace(LOG + f".recv.{{os.getpid()}}", LOG + ".recv")
    out = STATS.replace("200", external)
    print(re.sub(r"\\d+ Pckts recv", f"{{received}} Pckts recv", out))
with open(LOG, "a") as f:
    f.write(f"{{time.monotonic()}} end {{' '.join(args)}}\\n")
sys.exit(STATUS)
"""


def fake_conntrackd(tmp_path: Path, commit: float = 0.0, status: int = 0) -> tuple[Path, Path]:
    log = tmp_path / "conntrackd.log"
    binary = tmp_path / "conntrackd"
    fake = FAKE.format(
        python=sys.executable, log=str(log), commit=commit, status=status, stats=STATS
    )
    binary.write_text(fake)
    binary.chmod(0o755)
    return binary, log


def calls(log: Path) -> list[tuple[float, str, str]]:
    out = []
    for line in log.read_text().splitlines():
        t, what, *args = line.split(" ")
        out.append((float(t), what, " ".join(args)))
    return out


def table(binary: Path, extra: str = "") -> str:
    """A vhid and a [conntrackd] table; its conntrackd.conf names the fake's lock file."""
    conf = binary.parent / "conntrackd.conf"
    conf.write_text(f"General {{\n\tLockFile {binary.parent / 'conntrackd.log.lock'}\n}}\n")
    return (
        'vhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n'
        f'\n[conntrackd]\nenabled = true\nbinary = "{binary}"\nconfig = "{conf}"\n{extra}'
    )


def run_takeover(tmp_path: Path, text: str, wait: float) -> tuple[Daemon, FakeNetlink, float]:
    """Start as BACKUP, then take over; the daemon, netlink's log, and when it took over."""
    netlink = FakeNetlink()
    daemon = Daemon(config(tmp_path, text), FakePorts(netlink))
    return daemon, netlink, takeover(daemon, wait)


def test_backup_at_start_up_then_master_commits_before_the_addresses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install()
    monkeypatch.setattr(conntrack, "BULK_POLL", 3600.0)  # no bulk polls in this test
    binary, log = fake_conntrackd(tmp_path, commit=0.3)
    _, netlink, _ = run_takeover(tmp_path, table(binary), 0.5)
    seen = calls(log)
    started_cmds = [args for _, what, args in seen if what == "start"]
    # BACKUP at start: is it running, then flush later and ask the peer; MASTER: commit,
    # then flush, resync and bulk-send.
    # (-s, which looks at conntrackd, also runs for status and to check the flush.)
    assert started_cmds[0] == "-s"
    assert [c for c in started_cmds if c != "-s"] == ["-t", "-n", "-c", "-f", "-R", "-B"]
    commit_end = next(t for t, what, args in seen if what == "end" and args == "-c")
    added = next(t for t, verb, _ in netlink.log if verb == "add")
    assert commit_end <= added  # the kernel knew the connections before the address was up
    after = [t for t, what, args in seen if what == "start" and args in ("-f", "-R", "-B")]
    assert min(after) >= added


def test_a_release_and_a_takeover_in_one_tick_each_get_their_resync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The steps are planned a loop turn after the transitions, when the vhid is MASTER
    again: the release's resync as backup still happens, because its removal carries the
    transition it serves (MASTER -> BACKUP), not the state at planning time; then the
    takeover's, in order in conntrackd's chain."""
    install()
    monkeypatch.setattr(conntrack, "BULK_POLL", 3600.0)
    binary, log = fake_conntrackd(tmp_path)
    daemon = Daemon(config(tmp_path, table(binary)), FakePorts(FakeNetlink()))
    takeover(daemon, 0.0)  # BACKUP, then MASTER, settled
    before = len(calls(log))

    async def main() -> None:
        await started_again(daemon)
        daemon.force_state("carp1", State.BACKUP)
        daemon.force_state("carp1", State.MASTER)  # before Host.flush ran
        await daemon.settle()

    asyncio.run(main())
    ran = [args for _, what, args in calls(log)[before:] if what == "start" and args != "-s"]
    assert "-c" in ran  # the commit is blocking: beside the chain, in the lane
    assert [a for a in ran if a != "-c"] == ["-t", "-n", "-f", "-R", "-B"]


async def started_again(daemon: Daemon) -> None:
    """A new loop for the same daemon (each asyncio.run is one): its lanes follow."""
    loop = asyncio.get_running_loop()
    daemon._loop = loop
    for vh in daemon.vhosts.values():
        vh.lane.loop = loop


def test_a_commit_past_its_deadline_does_not_hold_the_addresses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install()
    binary, log = fake_conntrackd(tmp_path, commit=3.0)
    daemon, netlink, t0 = run_takeover(tmp_path, table(binary, "commit_timeout = 0.5\n"), 1.0)
    added = next(t for t, verb, _ in netlink.log if verb == "add")
    assert 0.5 <= added - t0 < 0.5 + 0.5  # the deadline, plus a slow machine
    # The commit was not killed: it finished later (settle waited for it).
    commit_end = next(t for t, what, args in calls(log) if what == "end" and args == "-c")
    assert commit_end > added
    stats = daemon.vhosts[("eth0", 1)].lane.stats["conntrackd commit"]
    assert (stats.late, stats.failed, stats.runs) == (1, 0, 1)


def test_a_failing_conntrackd_is_logged_and_the_takeover_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    install()
    binary, _ = fake_conntrackd(tmp_path, status=1)
    daemon, netlink, _ = run_takeover(tmp_path, table(binary), 0.3)
    assert [verb for _, verb, _ in netlink.log] == ["remove", "add"]
    assert daemon.vhosts[("eth0", 1)].machine.state is State.MASTER
    assert any("conntrackd -c failed with exit status 1" in m for m in caplog.messages)
    assert daemon.vhosts[("eth0", 1)].lane.stats["conntrackd commit"].failed == 1


def test_a_node_is_demoted_until_the_bulk_resync_is_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """pfsync's bulk demotion: raised at start-up, lifted once the peer's table (the
    external cache) has stopped growing."""
    install()
    # The table grows every 0.2 s, far inside BULK_QUIET even on a loaded machine (each
    # look spawns the fake conntrackd, a Python process: 0.1-0.3 s on a busy CI).
    monkeypatch.setattr(conntrack, "BULK_POLL", 0.05)
    monkeypatch.setattr(conntrack, "BULK_QUIET", 1.5)
    binary, log = fake_conntrackd(tmp_path)
    external = Path(str(log) + ".external")
    daemon = Daemon(config(tmp_path, table(binary)), FakePorts(FakeNetlink()))
    seen: list[int] = []
    quiet: list[float] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await daemon.start()
        await daemon.settle()
        seen.append(daemon.ledger.sources.get("state sync", 0))
        for n in (10, 120, 200):  # the peer's table arriving
            external.write_text(str(n))
            await asyncio.sleep(0.2)
        seen.append(daemon.ledger.sources.get("state sync", 0))  # still arriving
        last = loop.time()
        async with asyncio.timeout(conntrack.BULK_QUIET + 10):  # quiet: lifted, awaited
            while daemon.ledger.sources.get("state sync", 0):
                await asyncio.sleep(0.05)
        seen.append(daemon.ledger.sources.get("state sync", 0))
        quiet.append(loop.time() - last)

    asyncio.run(main())
    assert seen == [240, 240, 0]
    assert quiet[0] >= conntrack.BULK_QUIET - 0.2 - 0.05  # not before the table was quiet
    assert "carp: demoted by 240 to 240 (state sync bulk start)" in caplog.messages
    assert "carp: demoted by -240 to 0 (state sync bulk done)" in caplog.messages


def test_a_bulk_resync_that_never_ends_is_given_up_after_bulk_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    install()
    monkeypatch.setattr(conntrack, "BULK_POLL", 0.05)
    binary, log = fake_conntrackd(tmp_path)
    external = Path(str(log) + ".external")
    text = table(binary, "bulk_timeout = 0.5\n")
    daemon = Daemon(config(tmp_path, text), FakePorts(FakeNetlink()))

    async def main() -> None:
        await daemon.start()
        for n in range(30):  # the peer keeps sending, for longer than bulk_timeout
            external.write_text(str(n))
            await asyncio.sleep(0.05)

    asyncio.run(main())
    assert daemon.ledger.sources.get("state sync", 0) == 0
    assert "carp: demoted by -240 to 0 (state sync bulk fail)" in caplog.messages


def test_a_flush_that_conntrackd_ignored_is_noticed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """conntrackd 1.4.7 ignores -f right after a commit and exits 0: the effect looks."""
    install()
    monkeypatch.setattr(conntrack, "BULK_POLL", 3600.0)
    binary, log = fake_conntrackd(tmp_path)
    Path(str(log) + ".external").write_text("7")  # the fake's -f flushes nothing
    run_takeover(tmp_path, table(binary), 0.5)
    assert any("conntrackd kept 7 entries of the peer's after -f" in m for m in caplog.messages)


def test_status_shows_conntrackd_and_its_counters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install()
    monkeypatch.setattr(conntrack, "BULK_POLL", 3600.0)
    binary, log = fake_conntrackd(tmp_path)
    Path(str(log) + ".external").write_text("200")
    daemon, _, _ = run_takeover(tmp_path, table(binary), 0.3)
    status = to_json(daemon.view(), text=True)  # as carpctl status asks for it
    sync = status["state_sync"]
    received = sync["stats"].pop("received")
    assert received > 0  # the fake peer's keep-alives
    assert sync == {
        "running": True,
        "bulk": "running",
        "link": None,  # no sync interface configured
        "stall": None,
        "demoted_by": ["state sync bulk start"],
        "started_by_carpd": None,  # it answered: carpd started none
        "stop_with_carpd": False,
        "stats": {
            "internal": 4,
            "external": 200,
            "send_errors": 3,
            "recv_errors": 0,
            "malformed": 0,
            "lost": 116,
        },
    }
    assert status["report_lines"] == [
        "state sync: conntrackd running, bulk resync running; "
        "demoted for: state sync bulk start; ours 4, the peer's 200; "
        "lost 116, malformed 0, send errors 3, receive errors 0"
    ]


def test_status_without_conntrackd_has_no_state_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install()
    text = 'vhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n'
    daemon, _, _ = run_takeover(tmp_path, text, 0.1)
    assert to_json(daemon.view())["state_sync"] is None


def test_a_conntrackd_that_dies_demotes_its_node_until_it_is_back_and_resynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    install()
    for name, value in (("BULK_POLL", 0.05), ("BULK_QUIET", 0.2), ("STATS_INTERVAL", 0.1)):
        monkeypatch.setattr(conntrack, name, value)
    binary, log = fake_conntrackd(tmp_path)
    dead = Path(str(log) + ".dead")
    daemon = Daemon(config(tmp_path, table(binary)), FakePorts(FakeNetlink()))
    seen: list[int] = []

    def demotion() -> int:
        return daemon.ledger.sources.get("state sync", 0)

    async def until(want: int) -> None:
        for _ in range(100):
            if demotion() == want:
                return
            await asyncio.sleep(0.05)

    async def main() -> None:
        await daemon.start()
        await daemon.settle()  # BACKUP: the bulk resync has started...
        await until(0)  # ... and is done
        seen.append(demotion())
        dead.touch()  # it dies (and leaves its lock file: the fake's -d made one)
        Path(str(log) + ".lock").touch()
        await until(240)
        seen.append(demotion())
        await until(0)  # carpd started it again, and it has the peer's table again
        seen.append(demotion())
        await daemon.stop()  # as carpd ends: not by the loop cancelling its tasks

    asyncio.run(main())
    assert seen == [0, 240, 0]
    for line in (
        "carp: conntrackd does not answer",
        "carp: demoted by 240 to 240 (state sync conntrackd down)",
        "carp: conntrackd is not running: starting it",
        "carp: state sync conntrackd up; still demoted (state sync bulk start)",
        "carp: demoted by -240 to 0 (state sync bulk done)",
    ):
        assert line in caplog.messages
    assert not dead.exists()


# Popen returns once the child's exec has passed its point of no return (the
# close-on-exec error pipe closes), and the kernel sets the new argv up a moment later: a
# loaded machine may show an empty /proc/PID/cmdline in between.


def wait_for_argv(pid: int, argv0: bytes, timeout: float = bounds.COMMAND) -> None:
    """Block until the process's cmdline starts with ``argv0`` (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if cmdline.split(b"\0", 1)[0] == argv0:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"pid {pid}: cmdline {cmdline!r}, not {argv0!r} yet")
        time.sleep(0.01)


def test_a_conntrackd_that_runs_but_does_not_answer_gets_no_twin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A hung conntrackd still holds its lock: removing it and starting a second one
    beside it (primary-backup.sh would) makes two daemons fight over one socket."""
    install()
    monkeypatch.setattr(conntrack, "BULK_POLL", 3600.0)
    binary, log = fake_conntrackd(tmp_path)
    Path(str(log) + ".dead").touch()
    lock = Path(str(log) + ".lock")
    lock.touch()
    conf = binary.parent / "conntrackd.conf"
    text = table(binary)
    hung = subprocess.Popen(  # its /proc cmdline: conntrackd -c ... -C <conf> -d
        ["conntrackd", "-c", "import time; time.sleep(60)", "-C", str(conf), "-d"],
        executable=sys.executable,
    )
    try:
        wait_for_argv(hung.pid, b"conntrackd")
        assert running(conf) == [hung.pid]
        daemon = Daemon(config(tmp_path, text), FakePorts(FakeNetlink()))

        async def main() -> None:
            await daemon.start()
            await daemon.settle()

        asyncio.run(main())
    finally:
        hung.kill()
        hung.wait()
    assert lock.exists()
    assert "-d" not in [args for _, what, args in calls(log)]
    assert (
        f"carp: conntrackd (pid {hung.pid}) runs but does not answer on its socket: "
        "not starting another beside it"
    ) in caplog.messages
    assert running(conf) == []


def test_a_stale_lock_file_is_removed_and_conntrackd_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A killed conntrackd leaves its LockFile, and a new one refuses to start while it is
    there: carpd removes it (the one its conntrackd.conf names) when conntrackd does not
    answer, as primary-backup.sh does."""
    install()
    monkeypatch.setattr(conntrack, "BULK_POLL", 3600.0)
    binary, log = fake_conntrackd(tmp_path)
    Path(str(log) + ".dead").touch()
    lock = Path(str(log) + ".lock")
    lock.write_text("")
    daemon = Daemon(config(tmp_path, table(binary)), FakePorts(FakeNetlink()))

    async def main() -> None:
        await daemon.start()
        await daemon.settle()

    asyncio.run(main())
    assert f"carp: removing conntrackd's stale lock file {lock}" in caplog.messages
    assert [args for _, what, args in calls(log) if what == "end"].count("-d") == 1
    assert to_json(daemon.view())["state_sync"]["running"] is True


def test_a_silent_peer_is_a_stall_and_its_bulk_resync_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No keep-alive from the peer's conntrackd: an empty external cache that does not
    grow is not a finished bulk resync (the peer never sent one), and the silence is
    diagnosed by name."""
    install()
    for name, value in (("BULK_POLL", 0.05), ("BULK_QUIET", 0.1), ("STATS_INTERVAL", 0.1)):
        monkeypatch.setattr(conntrack, name, value)
    binary, log = fake_conntrackd(tmp_path)
    Path(str(log) + ".silent").touch()
    text = table(binary, "bulk_timeout = 0.8\n")
    daemon = Daemon(config(tmp_path, text), FakePorts(FakeNetlink()))

    async def main() -> None:
        await daemon.start()
        for _ in range(40):
            if daemon.ledger.sources.get("state sync", 240) == 0:
                break
            await asyncio.sleep(0.05)
        # As carpd ends, not by asyncio.run cancelling its tasks: one cancelled while a
        # conntrackd -s is being spawned hangs Python 3.11 for ever (CPython gh-125502).
        await daemon.stop()

    asyncio.run(main())
    assert "carp: demoted by -240 to 0 (state sync bulk fail)" in caplog.messages
    assert "carp: demoted by -240 to 0 (state sync bulk done)" not in caplog.messages
    stall = to_json(daemon.view())["state_sync"]["stall"]
    assert stall.startswith("nothing from the peer's conntrackd in 0.1 s")
    assert f"carp: state sync stalled: {stall}" in caplog.messages


def test_the_sync_link_down_demotes_and_its_return_resyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """pfsync's link down: demoted while the sync interface is down; back up, the peer's
    table is asked for again and the node stays demoted until it has arrived. (The
    watcher itself is real netlink: the firewall-pair lab cuts a real link.)"""
    install()
    for name, value in (("BULK_POLL", 0.05), ("BULK_QUIET", 0.2)):
        monkeypatch.setattr(conntrack, name, value)
    binary, _ = fake_conntrackd(tmp_path)
    daemon = Daemon(config(tmp_path, table(binary)), FakePorts(FakeNetlink()))
    effect = next(e for e in daemon.host.effects if isinstance(e, conntrack.Conntrack))
    seen: list[tuple[int, list[str]]] = []

    def look() -> None:
        seen.append((daemon.ledger.sources.get("state sync", 0), sorted(effect._reasons)))

    async def until_lifted() -> None:
        for _ in range(100):
            if daemon.ledger.sources.get("state sync", 0) == 0:
                return
            await asyncio.sleep(0.05)

    async def main() -> None:
        await daemon.start()
        await until_lifted()  # the start-up bulk resync
        await effect._link_changed("sync0", True)  # the first look: nothing to do
        await effect._link_changed("sync0", False)
        look()
        await effect._link_changed("sync0", True)
        look()
        await until_lifted()
        look()

    asyncio.run(main())
    assert seen == [
        (240, [conntrack.LINK]),
        (240, [conntrack.BULK]),  # never a moment undemoted in between
        (0, []),
    ]
    for line in (
        "carp: demoted by 240 to 240 (state sync link down)",
        "carp: sync interface sync0 up: asking the peer for its table",
        "carp: demoted by -240 to 0 (state sync bulk done)",
    ):
        assert line in caplog.messages


# -- the conntrackd carpd started, at carpd's exit ---------------------------------------


def exited(pid: int, fd: int) -> bool:
    """The process behind a pidfd has exited (readable), zombie or reaped."""
    import select

    return bool(select.select([fd], [], [], 0)[0])


def life(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    extra: str = "",
    reload_extra: str | None = None,
) -> tuple[Daemon, FakeNetlink, Path, dict[str, object]]:
    """carpd starts conntrackd (the fake's -d leaves a daemon behind), takes over, is
    reloaded with ``reload_extra`` if given, then exits as at SIGTERM. Returns the daemon,
    netlink's log, the fake's log, and what status said before the exit (its text status
    lines under "lines")."""
    install()
    monkeypatch.setattr(conntrack, "BULK_POLL", 3600.0)
    binary, log = fake_conntrackd(tmp_path)
    Path(str(log) + ".dead").touch()  # not running: carpd starts it
    Path(str(log) + ".daemon").touch()
    netlink = FakeNetlink()
    daemon = Daemon(config(tmp_path, table(binary, extra)), FakePorts(netlink))
    seen: dict[str, object] = {}

    async def main() -> None:
        await daemon.start()
        await daemon.settle()
        daemon.force_state("carp1", State.MASTER)
        await daemon.settle()
        if reload_extra is not None:
            await daemon.reload(config(tmp_path, table(binary, reload_extra)))
        status = to_json(daemon.view(), text=True)
        seen.update(status["state_sync"], lines=status["report_lines"])
        await daemon.stop()

    asyncio.run(main())
    return daemon, netlink, log, seen


@pytest.fixture
def reaper(tmp_path: Path) -> Iterator[None]:
    """The fake conntrackd daemon that a test's carpd started, killed after the test
    whatever happened (the fake writes its pid next to its log)."""
    import os
    import signal

    yield
    pidfile = tmp_path / "conntrackd.log.daemon"
    text = pidfile.read_text() if pidfile.exists() else ""
    if text:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(text), signal.SIGKILL)


def test_a_conntrackd_carpd_started_keeps_running_after_it_and_status_says_so(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    reaper: None,
) -> None:
    import os

    caplog.set_level("INFO")
    _, _, log, sync = life(tmp_path, monkeypatch)
    pid = int(Path(str(log) + ".daemon").read_text())
    fd = os.pidfd_open(pid)
    try:
        assert not exited(pid, fd)  # carpd is gone, its conntrackd is not
    finally:
        os.close(fd)
    assert (sync["started_by_carpd"], sync["stop_with_carpd"]) == (pid, False)
    assert sync["lines"] == [
        mock.ANY,
        f"\tconntrackd (pid {pid}) was started by carpd and keeps running when carpd stops, "
        "so a restart keeps the connection table ([conntrackd] stop_with_carpd = true stops it)",
    ]
    assert (
        f"carp: conntrackd (pid {pid}), started by carpd, keeps running: a restart of carpd "
        "keeps the connection table (the unit's KillMode=process); [conntrackd] "
        "stop_with_carpd = true stops it with carpd"
    ) in caplog.messages
    assert not Path(str(log) + ".term").exists()


def test_stop_with_carpd_stops_it_after_the_hand_over(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    reaper: None,
) -> None:
    """Turned on by a reload (the new [conntrackd] knows whom the old one started): at
    exit, SIGTERM to that conntrackd only after the addresses are gone."""
    import os

    caplog.set_level("INFO")
    _, netlink, log, sync = life(tmp_path, monkeypatch, reload_extra="stop_with_carpd = true\n")
    pid = int(Path(str(log) + ".daemon").read_text())
    assert (sync["started_by_carpd"], sync["stop_with_carpd"]) == (pid, True)
    assert sync["lines"] == [
        mock.ANY,
        f"\tconntrackd (pid {pid}) was started by carpd and stops with it (stop_with_carpd)",
    ]
    terminated = float(Path(str(log) + ".term").read_text())
    removed = [t for t, verb, _ in netlink.log if verb == "remove"]
    assert removed and max(removed) < terminated  # the hand-over came first
    assert f"carp: conntrackd (pid {pid}) stopped with carpd (stop_with_carpd)" in caplog.messages
    with contextlib.suppress(ProcessLookupError):
        fd = os.pidfd_open(pid)
        try:
            assert exited(pid, fd)
        finally:
            os.close(fd)


def test_stop_with_carpd_never_stops_a_conntrackd_carpd_did_not_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One already running (systemd's, a user's): carpd leaves it be, even told to stop
    the one it started."""
    caplog.set_level("INFO")
    install()
    monkeypatch.setattr(conntrack, "BULK_POLL", 3600.0)
    binary, _ = fake_conntrackd(tmp_path)
    conf = binary.parent / "conntrackd.conf"
    theirs = subprocess.Popen(  # answers (the fake's -s), so carpd starts none
        ["conntrackd", "-c", "import time; time.sleep(60)", "-C", str(conf), "-d"],
        executable=sys.executable,
    )
    try:
        wait_for_argv(theirs.pid, b"conntrackd")
        text = table(binary, "stop_with_carpd = true\n")
        daemon = Daemon(config(tmp_path, text), FakePorts(FakeNetlink()))
        sync: dict[str, object] = {}

        async def main() -> None:
            await daemon.start()
            await daemon.settle()
            status = to_json(daemon.view(), text=True)
            sync.update(status["state_sync"], lines=status["report_lines"])
            await daemon.stop()

        asyncio.run(main())
        assert theirs.poll() is None  # still running
    finally:
        theirs.kill()
        theirs.wait()
    assert sync["started_by_carpd"] is None and sync["lines"] == [mock.ANY]
    assert (
        "carp: conntrackd was not started by this carpd: left running "
        "(stop_with_carpd stops only the one carpd started)"
    ) in caplog.messages
