"""The runtime's lanes, on fake netlink and sockets (tests/unit/fakes.py): the wire
(adverts) never waits for the host (addresses, announcements, hooks), and the host lane
keeps its order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fakes import (
    FakeAnnouncer,
    FakeNetlink,
    FakePorts,
    FakeSocket,
    FakeV4,
    added_at,
    config,
    install,
    takeover,
)

from carpd.core.actions import AddAddresses
from carpd.core.model import Reason, State
from carpd.daemon.effects.hooks import Hooks
from carpd.daemon.runtime.runtime import Daemon
from carpd.daemon.seam.events import AddressesApplied, Event, RoleChanged
from carpd.daemon.seam.lanes import HostWork, Step
from carpd.daemon.seam.view import NodeView, VhidView

SLOW = 2.5  # seconds for one netlink address change: a conntrackd commit can take that
# How late an advert may be on a busy machine: a timer woken late, far from SLOW.
ON_TIME = 0.25


def test_a_new_masters_adverts_keep_their_schedule_while_netlink_is_slow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = install()
    netlink = FakeNetlink(delay=SLOW)
    cfg = config(tmp_path, 'vhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n')

    async def main() -> float:
        daemon = Daemon(cfg, FakePorts(netlink))
        await daemon.start()
        t0 = asyncio.get_running_loop().time()
        daemon.force_state("carp1", State.MASTER)
        await asyncio.sleep(2 * SLOW + 0.5)  # the removal at start, then the add
        return t0

    t0 = asyncio.run(main())
    adverts = [t - t0 for t, kind, _ in sent if kind == FakeV4.__name__]
    # One at once, then one per advbase (1 s), whatever the address change is doing.
    assert len(adverts) >= 4, adverts
    for i, at in enumerate(adverts[:4]):
        assert i <= at < i + ON_TIME, f"advert {i} at {at:.3f} s: {adverts}"
    # The host lane kept its order: BACKUP's removal at start, then the address, then the
    # announcement about it.
    assert [verb for _, verb, _ in netlink.log] == ["remove", "add"]
    added = netlink.log[1][0]
    garps = [t for t, kind, _ in sent if kind == FakeAnnouncer.__name__]
    assert garps and garps[0] >= added


class Commit:
    """An effect like the conntrackd commit: a blocking step before the addresses."""

    def __init__(self, takes: float, deadline: float | None = None) -> None:
        self.takes, self.deadline = takes, deadline
        self.done_at: float | None = None

    def before(self, work: HostWork, vhid: VhidView) -> list[Step]:
        if not isinstance(work.action, AddAddresses):
            return []
        return [Step("commit", self._commit, self.deadline)]

    def after(self, work: HostWork, vhid: VhidView) -> list[Step]:
        return []

    async def _commit(self) -> None:
        await asyncio.sleep(self.takes)
        self.done_at = asyncio.get_running_loop().time()


def run_takeover(tmp_path: Path, effect: Commit, wait: float) -> tuple[Daemon, FakeNetlink, float]:
    netlink = FakeNetlink()
    cfg = config(tmp_path, 'vhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n')
    daemon = Daemon(cfg, FakePorts(netlink), effects=(effect,))
    return daemon, netlink, takeover(daemon, wait, settle=False)


def test_a_blocking_step_precedes_the_addresses_and_the_adverts_do_not_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = install()
    commit = Commit(takes=SLOW)
    daemon, netlink, t0 = run_takeover(tmp_path, commit, SLOW + 0.5)
    assert commit.done_at is not None
    assert commit.done_at <= added_at(netlink)
    adverts = [t - t0 for t, kind, _ in sent if kind == FakeV4.__name__]
    for i, at in enumerate(adverts[:3]):
        assert i <= at < i + ON_TIME, f"advert {i} at {at:.3f} s: {adverts}"
    stats = daemon.vhosts[("eth0", 1)].lane.stats["commit"]
    assert (stats.runs, stats.late, stats.failed) == (1, 0, 0)


def test_a_step_past_its_deadline_is_logged_counted_and_the_lane_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    install()
    deadline = 0.5
    commit = Commit(takes=SLOW, deadline=deadline)
    daemon, netlink, t0 = run_takeover(tmp_path, commit, deadline + 0.5)
    # Availability first: the addresses went on at the deadline, not after the commit.
    assert deadline <= added_at(netlink) - t0 < deadline + ON_TIME
    assert commit.done_at is None  # still running: late steps are not cancelled
    assert daemon.vhosts[("eth0", 1)].lane.stats["commit"].late == 1
    assert "carp1: commit did not finish within 0.5 s: going on without it" in caplog.messages


class Recorder:
    """A subscriber: what it was told, with the state the view showed at the time."""

    def __init__(self) -> None:
        self.seen: list[tuple[Event, State]] = []

    def notify(self, event: Event, view: NodeView) -> None:
        self.seen.append((event, view.vhid("carp1").state))


class Broken:
    def notify(self, event: Event, view: NodeView) -> None:
        raise RuntimeError("bug in a subscriber")


def test_subscribers_see_the_role_then_the_addresses_and_cannot_break_the_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    install()
    cfg = config(tmp_path, 'vhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n')
    daemon = Daemon(cfg, FakePorts(FakeNetlink()))
    recorder = Recorder()
    daemon.publisher.subscribers += [Broken(), recorder]

    async def main() -> None:
        await daemon.start()
        await daemon.settle()
        daemon.force_state("carp1", State.MASTER)
        await daemon.settle()

    asyncio.run(main())
    events = [e for e, _ in recorder.seen if isinstance(e, RoleChanged | AddressesApplied)]
    key = ("eth0", 1)
    assert [(type(e).__name__, getattr(e, "new", None)) for e in events] == [
        ("RoleChanged", State.BACKUP),
        ("AddressesApplied", None),  # the removal at start
        ("RoleChanged", State.MASTER),
        ("AddressesApplied", None),
    ]
    assert events[2] == RoleChanged(
        key,
        State.BACKUP,
        State.MASTER,
        Reason.USER_REQUESTED,
        events[2].at,  # type: ignore[union-attr]
        "carp1",  # the default name
    )
    assert events[3] == AddressesApplied(key, present=True, error=None)
    # The view handed over with the takeover already shows it.
    assert recorder.seen[-1][1] is State.MASTER
    assert daemon.vhosts[key].machine.state is State.MASTER
    assert any("subscriber Broken failed" in m for m in caplog.messages)


def test_reload_re_derives_the_effects_groups_and_the_changed_vhids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install()
    netlink = FakeNetlink()
    vhid = 'vhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n'
    before = config(tmp_path, vhid)
    after = config(tmp_path, vhid + 'groups = ["web"]\nadvskew = 50\n')
    after = after.model_copy(
        update={"global_": after.global_.model_copy(update={"hook_timeout": 7.0})}
    )
    daemon = Daemon(before, FakePorts(netlink))

    async def main() -> None:
        await daemon.start()
        daemon.force_state("carp1", State.MASTER)
        await daemon.settle()
        await daemon.reload(after)
        await daemon.settle()

    asyncio.run(main())
    hooks = [e for e in daemon.host.effects if isinstance(e, Hooks)]
    assert [h.timeout for h in hooks] == [7.0]
    assert "web" in daemon.ledger.groups
    vh = daemon.vhosts[("eth0", 1)]
    assert vh.machine.params()["advskew"] == 50
    # The changed vhid's MASTER gave its address back before the new vhid began.
    verbs = [verb for _, verb, _ in netlink.log]
    assert verbs[:3] == ["remove", "add", "remove"]


def test_adverts_sent_counts_what_the_kernel_took_not_what_was_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = install()
    cfg = config(tmp_path, 'vhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n')
    daemon = Daemon(cfg, FakePorts(FakeNetlink()))

    async def main() -> tuple[int, int]:
        await daemon.start()
        daemon.force_state("carp1", State.MASTER)  # one advert at once
        counters = daemon.vhosts[("eth0", 1)].machine.counters
        ok = counters.adverts_sent
        FakeSocket.failing.add(FakeV4.__name__)
        daemon.force_state("carp1", State.BACKUP)  # the bow-out advert fails
        daemon.force_state("carp1", State.MASTER)  # and so does this one
        return ok, counters.adverts_sent

    ok, after = asyncio.run(main())
    assert ok == len([s for s in sent if s[1] == FakeV4.__name__]) == 1
    assert after == ok
    view = daemon.vhosts[("eth0", 1)].machine.counters
    assert view.dropped["send_error"] == 2


def test_the_daemon_reaches_the_host_only_through_its_ports(tmp_path: Path) -> None:
    """start(), a link going down as the link watcher says, stop(): the vhid followed the
    link, and every socket the ports opened is closed at the end."""
    install()
    ports = FakePorts(FakeNetlink())
    daemon = Daemon(
        config(tmp_path, 'vhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n'), ports
    )

    async def main() -> list[State]:
        await daemon.start()
        states = [daemon.find("carp1").machine.state]
        ports.watcher.set("eth0", up=False)
        await ports.watcher.heard()
        states.append(daemon.find("carp1").machine.state)
        await daemon.stop()
        return states

    assert asyncio.run(main()) == [State.BACKUP, State.INIT]
    opened = [type(s).__name__ for s in FakeSocket.opened]
    assert sorted(opened) == ["FakeAnnouncer", "FakeV4", "FakeV4"]  # send, known peers
    assert all(s.closed for s in FakeSocket.opened)
    assert daemon.ledger.sources == {"carpdev eth0 down": 240}
