"""[[action]] lists: programs run per vhid or group on role changes, in order, coalesced,
bounded, with their results in status and the event stream (real subprocesses, a fake
netlink: no network)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from fakes import FakeNetlink, FakePorts, config, install

from carpd.core.model import State
from carpd.daemon.runtime.runtime import Daemon
from carpd.daemon.seam.events import ActionRan, Event
from carpd.daemon.seam.roles import Change, HostRoles, Roles
from carpd.daemon.seam.view import NodeView, to_json

M, B, I = State.MASTER, State.BACKUP, State.INIT  # noqa: E741

# Each run appends: name phase previous state target vhid
RECORD = (
    'echo "$CARP_ACTION $CARP_PHASE $CARP_PREVIOUS_STATE $CARP_STATE $CARP_TARGET $CARP_VHID"'
    " >> {log}"
)


def test_a_group_is_master_only_while_all_of_its_vhids_are() -> None:
    host = HostRoles()
    roles = Roles({"group up": frozenset({"a", "b"}), "a": frozenset({"a"})}, host)

    def set_(vhid: str, state: State) -> list[Change]:
        host.set(vhid, state)  # the host lane's, in the takeover plan
        return roles.changed(vhid)

    assert [(c.target, c.old, c.new) for c in set_("a", B)] == [
        ("group up", I, B),
        ("a", I, B),
    ]
    assert [(c.target, c.new) for c in set_("a", M)] == [("a", M)]  # b is not
    assert [(c.target, c.new) for c in set_("b", M)] == [("group up", M)]
    assert sorted(roles.leaving("b")) == ["group up"]
    assert sorted(roles.leaving("a")) == ["a", "group up"]
    assert [(c.target, c.new) for c in set_("b", I)] == [("group up", B)]
    assert roles.leaving("b") == []
    assert host.masters() == {"a"}


def test_a_reload_reads_the_hosts_roles_so_a_master_target_is_not_new() -> None:
    host = HostRoles()
    host.set("a", M)
    host.set("b", M)
    roles = Roles({"group up": frozenset({"a", "b"})}, host)
    assert roles.state("group up") is M
    assert roles.leaving("a") == ["group up"]


class Recorder:
    def __init__(self) -> None:
        self.events: list[ActionRan] = []

    def notify(self, event: Event, view: NodeView) -> None:
        if isinstance(event, ActionRan):
            self.events.append(event)


def daemon_with(tmp_path: Path, actions: str) -> tuple[Daemon, FakeNetlink, Recorder]:
    text = (
        'name = "lan"\nvhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\ngroups = ["up"]\n'
        '[[carp]]\nname = "wan"\ncarpdev = "eth0"\nvhid = 2\npass = "x"\n'
        'addresses = ["198.51.100.100/24"]\ngroups = ["up"]\n' + actions
    )
    netlink = FakeNetlink()
    daemon = Daemon(config(tmp_path, text), FakePorts(netlink))
    recorder = Recorder()
    daemon.publisher.subscribers.append(recorder)
    return daemon, netlink, recorder


def action(name: str, target: str, on: str, command: str, timeout: float = 10.0) -> str:
    return (
        f'[[action]]\nname = "{name}"\n{target}\non = {on}\n'
        f"shell = '''{command}'''\ntimeout = {timeout}\n"
    )


async def settle(daemon: Daemon) -> None:
    await daemon.settle()
    for effect in daemon.host.effects:  # a group's own lane
        await effect.close()


def test_vhid_and_group_actions_run_on_their_edges_with_the_transition_in_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install()
    log = tmp_path / "runs"
    daemon, _, recorder = daemon_with(
        tmp_path,
        action("lan-m", 'vhid = "lan"', '["master"]', RECORD.format(log=log))
        + action("lan-b", 'vhid = "lan"', '["backup"]', RECORD.format(log=log))
        + action("up-m", 'group = "up"', '["master", "backup"]', RECORD.format(log=log)),
    )

    async def main() -> None:
        await daemon.start()
        await settle(daemon)  # at start: BACKUP, once, as keepalived's notify_backup
        daemon.force_state("lan", M)
        await settle(daemon)  # the group is not MASTER yet: wan is BACKUP
        daemon.force_state("wan", M)
        await settle(daemon)
        daemon.force_state("lan", B)
        await settle(daemon)

    asyncio.run(main())
    lines = log.read_text().splitlines()  # two queues: each in order, not with each other
    assert [line for line in lines if " lan " in line] == [
        "lan-b backup INIT BACKUP lan 1",
        "lan-m master BACKUP MASTER lan 1",
        "lan-b backup MASTER BACKUP lan 1",
    ]
    assert [line for line in lines if " group up " in line] == [
        "up-m backup INIT BACKUP group up 1",
        "up-m master BACKUP MASTER group up 2",
        "up-m backup MASTER BACKUP group up 1",
    ]
    assert all(e.outcome.status == 0 for e in recorder.events)


ENDED = 'import time; open("{}", "w").write(str(time.monotonic()))'


def test_pre_release_runs_before_the_addresses_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install()
    log = tmp_path / "runs"
    daemon, netlink, _ = daemon_with(
        tmp_path,
        action("drain", 'group = "up"', '["pre-release"]', f"sleep 0.3; {RECORD.format(log=log)}")
        + action(
            "clock",
            'group = "up"',
            '["pre-release"]',
            f"{sys.executable} -c '{ENDED.format(tmp_path / 'ended')}'",
        ),
    )

    async def main() -> None:
        await daemon.start()
        daemon.force_state("lan", M)
        daemon.force_state("wan", M)
        await settle(daemon)
        netlink.log.clear()
        daemon.force_state("wan", B)
        await settle(daemon)

    asyncio.run(main())
    assert log.read_text().splitlines() == ["drain pre-release MASTER BACKUP group up 2"]
    stats = daemon.vhosts[("eth0", 2)].lane.stats["pre-release actions"]
    assert stats.last_duration is not None and stats.last_duration >= 0.3
    # The removal waited for both (the loop's clock is time.monotonic).
    (removed,) = [at for at, verb, _ in netlink.log if verb == "remove"]
    assert removed >= float((tmp_path / "ended").read_text())


def test_a_burst_of_transitions_runs_in_order_and_the_last_state_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install()
    log = tmp_path / "runs"
    slow = f"sleep 0.3; {RECORD.format(log=log)}"
    daemon, _, recorder = daemon_with(
        tmp_path,
        action("m", 'vhid = "lan"', '["master"]', slow)
        + action("b", 'vhid = "lan"', '["backup"]', slow),
    )

    async def main() -> None:
        await daemon.start()
        await asyncio.sleep(0.05)  # the start's backup action is running
        for state in (M, B, M, B, M):  # piles up behind it
            daemon.force_state("lan", state)
            daemon.host.flush()
        await settle(daemon)

    asyncio.run(main())
    ran = [line.split()[:2] for line in log.read_text().splitlines()]
    # The running one finishes; of the five waiting, only the newest runs.
    assert ran == [["b", "backup"], ["m", "master"]]
    stats = daemon.vhosts[("eth0", 1)].lane.stats
    assert stats["master actions"].skipped + stats["backup actions"].skipped == 4
    assert [e.state for e in recorder.events] == ["BACKUP", "MASTER"]


def test_results_killed_failed_and_argv_without_a_shell_show_in_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install()
    daemon, _, recorder = daemon_with(
        tmp_path,
        action("hang", 'vhid = "lan"', '["backup"]', "echo going to hang >&2; sleep 30", 0.5)
        + action("fail", 'vhid = "lan"', '["backup"]', "echo one >&2; echo two >&2; exit 4")
        + '[[action]]\nname = "argv"\nvhid = "lan"\non = ["backup"]\n'
        + 'run = ["/bin/sh", "-c", "exit 0", "$HOME; rm -rf /"]\n',
    )

    async def main() -> None:
        await daemon.start()
        await settle(daemon)

    asyncio.run(main())
    out = {a["action"]: a for a in to_json(daemon.view())["actions"]}
    assert out["hang"]["status"] is None and out["hang"]["error"] == "killed after 0.5 s"
    assert out["hang"]["stderr"] == "going to hang"
    assert 0.5 <= out["hang"]["duration"] < 1.5
    assert (out["fail"]["status"], out["fail"]["stderr"], out["fail"]["failed"]) == (
        4,
        "one\ntwo",
        1,
    )
    assert (out["argv"]["status"], out["argv"]["failed"]) == (0, 0)  # no shell saw "$HOME; rm"
    assert [e.action for e in recorder.events] == ["hang", "fail", "argv"]  # in config order
    stats = daemon.vhosts[("eth0", 1)].lane.stats["backup actions"]
    assert stats.failed == 1 and stats.last_error == "backup actions failed: hang, fail"
