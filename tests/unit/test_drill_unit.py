"""`carpctl drill` without namespaces: the Drill (carpd.ctl.drill) against a scripted
pair (this node's status JSON with its ``cluster`` report, as carpd shows them, changed
by the control requests the drill makes), its Probe, its report in state_dir, the
daemon's DrillRecord (status, /metrics), the peer's journal (`sync serve`'s "record" and
`carpctl sync log`) and the "drill" event."""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from fakes import FakeNetlink, FakePorts, install
from fakes import config as daemon_config

from carpd.cluster.client import Seen
from carpd.cluster.status import read
from carpd.config import load_config
from carpd.config.model import Config
from carpd.ctl import drill
from carpd.ctl import main as ctl
from carpd.daemon.observers import eventstream
from carpd.daemon.observers.cluster import ClusterReport
from carpd.daemon.observers.drill import DrillRecord
from carpd.daemon.runtime.runtime import Daemon
from carpd.daemon.seam.events import DrillDone, Event
from carpd.daemon.seam.view import NodeView
from carpd.daemon.service import commands
from carpd.daemon.service.control import Refused
from carpd.sync.agent import Agent
from carpd.sync.agent import Refused as AgentRefused
from carpd.sync.scope import Scope

ADVBASE = 0.1  # the fakes' advertisement interval: a failing wait stays short
PEER_SKEW = 100  # the peer's advskew: its master-down interval is 3 x advbase + 100/256
SLACK = 1.0  # beyond a bound: a busy machine's scheduling and the last poll
SSH_CONNECTION = "198.51.100.7 50022 192.0.2.2 22"

# --- status JSON as carpd shows it (carpctl status --json, its peers' /api/status) -----


def vhost(
    state: str, *, name: str = "lan", vhid: int = 1, advskew: int = 0, commits: int = 1,
    preempt: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """One entry of status "vhosts" (the keys the drill reads, and some it does not)."""
    return {
        "name": name,
        "vhid": vhid,
        "carpdev": "eth0",
        "state": state,
        "protocol": "carp",
        "advbase": ADVBASE,
        "advskew": advskew,
        "advskew_sent": advskew,
        "demotion": 0,
        "preempt": preempt,
        "enabled": True,
        "link_up": True,
        "addresses": ["192.0.2.100/24"],
        "history": [],
        "host_steps": [
            {
                "name": "conntrackd commit",
                "runs": commits,
                "failed": 0,
                "late": 0,
                "skipped": 0,
                "last_duration": 0.01,
                "last_error": None,
            },
        ],
    }


def sync_state(**more: Any) -> dict[str, Any]:
    return {"running": True, "bulk": "done", "link": "up", "stall": None, "demoted_by": [],
            "stats": {"internal": 20, "external": 20}, **more}  # fmt: skip


def config_sync(**more: Any) -> dict[str, Any]:
    return {"peer": "192.0.2.2", "checked": "2026-12-06T13:00:00+0000", "in_sync": True,
            "differ": [], "only_here": [], "only_peer": [], "error": None, **more}  # fmt: skip


def node(name: str, *vhosts: dict[str, Any], **more: Any) -> dict[str, Any]:
    """A node's status JSON, as carpd.daemon.seam.view.to_json gives it."""
    return {
        "node": name,
        "pid": 4242,
        "maintenance": False,
        "demotion": {},
        "services": {"healthy": True, "failed": [], "results": []},
        "vhosts": list(vhosts),
        "state_sync": sync_state(),
        "config_sync": config_sync(),
        "addresses": {"demoted": None},
        **more,
    }


def seen(name: str, status: dict[str, Any] | None, error: str | None = None) -> Seen:
    """What PeerClient.status gives: its answer read, or None with why."""
    got = read(status) if status is not None else None
    return Seen(name, f"https://192.0.2.{name[1:]}:8473", time.time(), got, error, 0.01, 0.0)


class Pair:
    """This node (n1) and its peer (n2), as this node's carpd shows them, changed by the
    control requests the drill makes as the pair would change: maintenance on or a vhid
    down hands it to the peer (unless ``takes_over`` is false), maintenance off or up
    takes it back (this node preempts). The new MASTER's conntrackd commit counts
    ``commit_after`` status reads later (never, with None)."""

    def __init__(
        self,
        here: dict[str, Any] | None = None,
        peer: dict[str, Any] | None = None,
        *,
        takes_over: bool = True,
        commit_after: int | None = 0,
    ) -> None:
        self.here = here or node("n1", vhost("MASTER"))
        self.peer = peer or node("n2", vhost("BACKUP", advskew=PEER_SKEW))
        self.seen: list[Callable[[], Seen]] = [lambda: seen("n2", self.peer)]
        self.takes_over = takes_over
        self.commit_after = commit_after
        self.groups: dict[str, list[str]] = {}
        self.requests: list[dict[str, Any]] = []
        self.reads = 0
        self.read_at: list[int] = []  # the status reads before each request
        self.commits: list[tuple[int, dict[str, Any]]] = []  # (at read, its vhost)

    def status(self) -> dict[str, Any]:
        self.reads += 1
        for at, v in [c for c in self.commits if c[0] <= self.reads]:
            v["host_steps"][0]["runs"] += 1
            self.commits.remove((at, v))
        report = ClusterReport(5.0, tuple(s() for s in self.seen)).to_json()
        return copy.deepcopy({**self.here, "cluster": report})

    def control(self, req: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(req)
        self.read_at.append(self.reads)
        command = req["command"]
        every = [v["name"] for v in self.here["vhosts"]]
        if command == "group":
            return {"group": req["group"], "demote": 0, "members": self.groups[req["group"]]}
        if command == "maintenance":
            self.here["maintenance"] = req["on"]
            self._move(every, to_peer=req["on"])
        elif command in ("down", "up"):
            self._vhost(self.here, req["name"])["enabled"] = command == "up"
            self._move([req["name"]], to_peer=command == "down")
        return {}

    @staticmethod
    def _vhost(status: dict[str, Any], name: str) -> dict[str, Any]:
        found: dict[str, Any] = next(v for v in status["vhosts"] if v["name"] == name)
        return found

    def _move(self, names: list[str], to_peer: bool) -> None:
        for name in names:
            mine, theirs = self._vhost(self.here, name), self._vhost(self.peer, name)
            if to_peer and not self.takes_over:
                mine["state"] = "BACKUP"  # it steps back; the peer never takes it
                continue
            winner, loser = (theirs, mine) if to_peer else (mine, theirs)
            winner["state"], loser["state"] = "MASTER", "BACKUP"
            if self.commit_after is not None:
                self.commits.append((self.reads + self.commit_after, winner))

    def handing(self) -> list[dict[str, Any]]:
        """The requests that change something (all but reads)."""
        return [r for r in self.requests if r["command"] != "group"]


def config(
    tmp_path: Path, peers: tuple[str, ...] = ("n2",), sync_peer: str | None = None
) -> Config:
    (tmp_path / "peer.pass").write_text("cluster-pw\n")
    text = f'[global]\nnode_name = "n1"\nstate_dir = "{tmp_path}/state"\n'
    if sync_peer is not None:
        text += f'[sync]\npeer = "{sync_peer}"\n'
    text += "[cluster]\n"
    for p in peers:
        text += (f'[[cluster.peer]]\nname = "{p}"\nurl = "https://192.0.2.{p[1:]}:8473"\n'
                 'passfile = "peer.pass"\n')  # fmt: skip
    text += '[[carp]]\nname = "lan"\nvhid = 1\ncarpdev = "eth0"\npass = "x"\n'
    text += 'addresses = ["192.0.2.100/24"]\n'
    path = tmp_path / "carpd.toml"
    path.write_text(text)
    return load_config(path)


def run(tmp_path: Path, pair: Pair, **opts: Any) -> dict[str, Any]:
    peers = opts.pop("peers", ("n2",))
    opts.setdefault("hold", 0)
    d = drill.Drill(config(tmp_path, peers), pair.status, pair.control, drill.Options(**opts))
    return d.run()


def steps(report: dict[str, Any]) -> list[tuple[str, bool]]:
    return [(s["step"], s["ok"]) for s in report["steps"]]


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """A short margin and poll: a wait that fails fails within a second or two."""
    monkeypatch.setattr(drill, "MARGIN", 0.3)
    monkeypatch.setattr(drill, "POLL", 0.02)


ON = {"command": "maintenance", "on": True}
OFF = {"command": "maintenance", "on": False}
PASSED = [
    ("checks before the drill", True),
    ("hand over", True),
    ("the peer took over", True),
    ("hold 0 s", True),
    ("hand back", True),
    ("this node took back", True),
]

# --- the checks before the drill: each refusal, nothing changed ------------------------


def _peer(pair: Pair, **more: Any) -> None:
    pair.peer.update(more)


def _silent(pair: Pair) -> None:
    pair.seen = [lambda: seen("n2", None, "no answer within 2 s")]


def _sync(pair: Pair, **more: Any) -> None:
    pair.peer["state_sync"] = sync_state(**more)


def _n3(pair: Pair) -> None:
    pair.seen.append(lambda: seen("n3", node("n3", vhost("BACKUP", advskew=200))))


REFUSALS: list[tuple[str, Callable[[Pair], None], dict[str, Any], str]] = [
    ("peer-silent", _silent, {}, "n2 does not answer: no answer within 2 s"),
    ("peer-never-read", lambda p: setattr(p, "seen", []), {}, "n2 does not answer: not read yet"),
    ("peer-maintenance", lambda p: _peer(p, maintenance=True), {}, "n2 is in maintenance mode"),
    ("here-maintenance", lambda p: p.here.update(maintenance=True), {},
     "n1 is in maintenance mode already"),
    ("peer-demoted", lambda p: _peer(p, demotion={"services": 1, "link": 0, "conntrackd": 2}),
     {}, "n2 is demoted by 3 (services 1, conntrackd 2)"),
    ("peer-checks-fail", lambda p: _peer(p, services={"healthy": False, "failed": ["web", "dns"]}),
     {}, "n2's checks fail: web, dns"),
    ("here-not-master", lambda p: p.here.update(vhosts=[vhost("BACKUP")]), {},
     "n1 is not MASTER of lan (BACKUP)"),
    ("peer-not-backup", lambda p: _peer(p, vhosts=[vhost("INIT", advskew=PEER_SKEW)]), {},
     "n2 is INIT of lan, not BACKUP"),
    ("peer-without-the-vhid", lambda p: _peer(p, vhosts=[]), {}, "n2 has no vhid lan"),
    ("peer-no-state-sync", lambda p: _peer(p, state_sync=None), {}, "n2 has no state sync"),
    ("conntrackd-down", lambda p: _sync(p, running=False), {},
     "n2's conntrackd does not answer"),
    ("bulk-not-done", lambda p: _sync(p, bulk="running"), {}, "n2's bulk resync is running"),
    ("stalled", lambda p: _sync(p, stall="no progress for 30 s"), {},
     "n2's state sync is stalled: no progress for 30 s"),
    ("configs-differ", lambda p: p.here.update(config_sync=config_sync(
        differ=["/etc/nftables.conf"], only_peer=["/etc/carpd/checks/web"])), {},
     "the configs differ (/etc/nftables.conf, /etc/carpd/checks/web): carpctl sync status"),
    ("several-peers", _n3, {"peers": ("n2", "n3")},
     "several peers (n2, n3): name one with --peer"),
    ("unknown-peer", lambda p: None, {"peer": "n9"}, "no [[cluster.peer]] named 'n9'"),
    ("unknown-vhid", lambda p: None, {"vhids": ("wan",)}, "no vhid 'wan' on this node"),
    ("empty-group", lambda p: p.groups.update(carp=[]), {"group": "carp"},
     "group 'carp' has no vhids"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "opts", "why"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_a_failed_check_before_the_drill_refuses_it_and_changes_nothing(
    tmp_path: Path, change: Callable[[Pair], None], opts: dict[str, Any], why: str
) -> None:
    pair = Pair()
    change(pair)
    report = run(tmp_path, pair, **opts)
    assert report["result"] == "refused", report
    assert report["why"] is not None and why in report["why"], report["why"]
    assert steps(report) == [("checks before the drill", False)]
    assert report["steps"][0]["detail"] == report["why"]
    assert pair.handing() == []  # nothing handed over
    assert report["peer"] == (None if "peers" in opts else opts.get("peer", "n2"))


def test_every_problem_found_is_named_in_one_refusal(tmp_path: Path) -> None:
    pair = Pair()
    _peer(pair, maintenance=True, services={"healthy": False, "failed": ["web"]})
    report = run(tmp_path, pair)
    assert report["why"] == "n2 is in maintenance mode; n2's checks fail: web"


def test_a_named_peer_is_drilled_among_several(tmp_path: Path) -> None:
    pair = Pair()
    _n3(pair)
    report = run(tmp_path, pair, peer="n2", peers=("n2", "n3"))
    assert (report["result"], report["peer"]) == ("passed", "n2"), report


# --- the drill ---------------------------------------------------------------------------


def test_a_passed_drill_hands_over_verifies_holds_and_hands_back(tmp_path: Path) -> None:
    pair = Pair()
    report = run(tmp_path, pair, message="monthly")
    assert report["result"] == "passed" and report["why"] is None, report
    assert steps(report) == PASSED
    assert pair.handing() == [ON, OFF]
    assert (report["node"], report["peer"], report["scope"]) == ("n1", "n2", "every vhid")
    assert (report["message"], report["stay"], report["probe"]) == ("monthly", False, None)
    details = {s["step"]: s["detail"] for s in report["steps"]}
    assert details["the peer took over"] == (
        "n2 is MASTER of lan and keeps the addresses; n2 committed the connections (conntrackd)"
    )
    assert details["hand back"] == "left maintenance mode"
    assert not pair.here["maintenance"] and pair.here["vhosts"][0]["state"] == "MASTER"
    assert report["started"] <= report["finished"]
    assert drill.summary(report) == "drill passed"
    assert drill.text(report).endswith("drill passed")


def test_stay_leaves_the_peer_master_and_this_node_in_maintenance(tmp_path: Path) -> None:
    pair = Pair()
    report = run(tmp_path, pair, stay=True)
    assert report["result"] == "passed", report
    assert steps(report) == [*PASSED[:4], ("stay", True)]
    assert pair.handing() == [ON]  # never handed back
    assert pair.here["maintenance"] and pair.peer["vhosts"][0]["state"] == "MASTER"
    assert report["steps"][-1]["detail"] == ("n2 stays MASTER; this node stays in maintenance mode")


def test_a_failed_check_rolls_back_at_once(tmp_path: Path) -> None:
    pair = Pair()
    report = run(tmp_path, pair, checks=("true", "echo no such service; false"), hold=30)
    assert report["result"] == "failed", report
    assert report["why"] == "exit 1: no such service"
    assert steps(report) == [
        *PASSED[:3],
        ("check here: true", True),
        ("check here: echo no such service; false", False),
        ("roll back", True),
    ]
    assert pair.handing() == [ON, OFF]  # maintenance off asked: rolled back
    assert report["finished"] - report["started"] < 30  # no hold of 30 s
    assert drill.summary(report) == "drill failed: exit 1: no such service"


def test_a_peer_that_never_takes_over_fails_within_the_bound_and_rolls_back(
    tmp_path: Path, quick: None
) -> None:
    pair = Pair(takes_over=False)
    report = run(tmp_path, pair)
    # The peer takes over on this node's next advert or after its master-down interval;
    # its status is read again within MARGIN.
    bound = ADVBASE + (3 * ADVBASE + PEER_SKEW / 256) + drill.MARGIN
    assert report["result"] == "failed", report
    assert steps(report) == [*PASSED[:2], ("the peer took over", False), ("roll back", True)]
    waited = report["steps"][2]
    assert bound <= waited["took"] < bound + SLACK, (waited, bound)
    assert report["why"] == (
        f"the peer took over: not within {bound:.1f} s; last seen: "
        "n1 lan BACKUP (commits 1); n2 lan BACKUP (commits 1)"
    )
    assert pair.handing() == [ON, OFF]
    assert not pair.here["maintenance"]


def test_vhid_hands_over_with_down_and_back_with_up(tmp_path: Path) -> None:
    here = node("n1", vhost("MASTER"), vhost("MASTER", name="wan", vhid=2))
    peer = node("n2", vhost("BACKUP", advskew=PEER_SKEW),
                vhost("BACKUP", name="wan", vhid=2, advskew=PEER_SKEW))  # fmt: skip
    pair = Pair(here, peer)
    report = run(tmp_path, pair, vhids=("wan",))
    assert report["result"] == "passed", report
    assert steps(report) == PASSED
    assert pair.handing() == [{"command": "down", "name": "wan"}, {"command": "up", "name": "wan"}]
    assert report["scope"] == "wan"
    assert report["steps"][1]["detail"] == "down: wan"
    assert report["steps"][4]["detail"] == "up: wan"
    # lan was never handed over.
    assert [v["state"] for v in pair.peer["vhosts"]] == ["BACKUP", "BACKUP"]


def test_a_group_hands_over_its_members_with_down(tmp_path: Path) -> None:
    here = node("n1", vhost("MASTER"), vhost("MASTER", name="wan", vhid=2))
    peer = node("n2", vhost("BACKUP", advskew=PEER_SKEW),
                vhost("BACKUP", name="wan", vhid=2, advskew=PEER_SKEW))  # fmt: skip
    pair = Pair(here, peer)
    pair.groups["uplink"] = ["wan"]
    report = run(tmp_path, pair, group="uplink")
    assert report["result"] == "passed", report
    assert pair.handing() == [{"command": "down", "name": "wan"}, {"command": "up", "name": "wan"}]
    assert report["scope"] == "group uplink"


def test_a_failed_vhid_drill_rolls_back_with_up(tmp_path: Path) -> None:
    pair = Pair()
    report = run(tmp_path, pair, vhids=("lan",), checks=("false",))
    assert report["result"] == "failed" and report["why"] == "exit 1", report
    assert pair.handing() == [{"command": "down", "name": "lan"}, {"command": "up", "name": "lan"}]
    assert pair.here["vhosts"][0]["enabled"]


def test_the_takeover_waits_for_the_peers_conntrackd_commit(tmp_path: Path, quick: None) -> None:
    later = 5  # the peer is MASTER at once; its commit counts 5 status reads later
    pair = Pair(commit_after=later)
    report = run(tmp_path, pair)
    assert report["result"] == "passed", report
    handed, back = pair.read_at  # status reads before maintenance on, and off
    assert back >= handed + later, pair.read_at


def test_the_takeover_fails_without_a_commit_when_both_nodes_sync_state(
    tmp_path: Path, quick: None
) -> None:
    pair = Pair(commit_after=None)
    report = run(tmp_path, pair)
    assert report["result"] == "failed", report
    assert steps(report)[2:] == [("the peer took over", False), ("roll back", True)]
    assert "n2 lan MASTER (commits 1)" in str(report["why"])
    assert pair.handing() == [ON, OFF]


def test_without_state_sync_here_no_commit_is_waited_for(tmp_path: Path) -> None:
    pair = Pair(node("n1", vhost("MASTER"), state_sync=None), commit_after=None)
    report = run(tmp_path, pair)
    assert report["result"] == "passed", report
    detail = report["steps"][2]["detail"]
    assert detail == "n2 is MASTER of lan and keeps the addresses"


def test_a_peer_that_cannot_keep_its_addresses_fails_the_takeover(tmp_path: Path) -> None:
    pair = Pair(peer=node("n2", vhost("BACKUP", advskew=PEER_SKEW),
                          addresses={"demoted": "192.0.2.100/24: EEXIST"}))  # fmt: skip
    report = run(tmp_path, pair)
    assert report["result"] == "failed", report
    assert report["why"] == "n2 could not keep its addresses: 192.0.2.100/24: EEXIST"
    assert pair.handing() == [ON, OFF]


# --- the probe ----------------------------------------------------------------------------


def scripted(results: list[tuple[float, bool]]) -> dict[str, Any]:
    p = drill.Probe("curl -fsS http://192.0.2.100/")
    p.results = results
    return p.summary()


def test_probe_summary_is_the_longest_failure_in_a_row() -> None:
    s = scripted([(0.0, True), (0.2, False), (0.4, False), (0.6, True), (0.8, False),
                  (1.0, True), (1.2, True)])  # fmt: skip
    assert s == {"command": "curl -fsS http://192.0.2.100/", "probes": 7, "failed": 3,
                 "outage": 0.4, "recovered": True}  # fmt: skip


def test_probe_summary_of_an_outage_that_never_ends_is_not_recovered() -> None:
    s = scripted([(0.0, True), (0.2, False), (0.4, False), (1.4, False)])
    assert (s["failed"], s["outage"], s["recovered"]) == (3, 1.2, False)
    assert scripted([]) == {"command": "curl -fsS http://192.0.2.100/", "probes": 0,
                            "failed": 0, "outage": 0.0, "recovered": False}  # fmt: skip


@pytest.mark.parametrize(("command", "ok"), [("true", True), ("false", False)])
def test_a_real_probe_runs_its_command_until_stopped(
    command: str, ok: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(drill, "PROBE_RECOVERY", 0.0)  # stopped at once, failing or not
    with drill.Probe(command) as probe:
        deadline = time.monotonic() + 10 * drill.PROBE_EVERY + SLACK
        while len(probe.results) < 3:  # three runs: it goes on, every PROBE_EVERY
            assert time.monotonic() < deadline, probe.results
            time.sleep(drill.PROBE_EVERY / 4)
    n = len(probe.results)
    time.sleep(2 * drill.PROBE_EVERY)
    assert len(probe.results) == n  # stopped on leaving
    assert all(r == ok for _, r in probe.results)
    times = [t for t, _ in probe.results]
    assert all(b - a >= drill.PROBE_EVERY * 0.9 for a, b in itertools.pairwise(times))
    s = probe.summary()
    assert (s["probes"], s["failed"], s["recovered"]) == (n, 0 if ok else n, ok)


def test_a_probe_failing_as_the_drill_ends_runs_on_until_it_passes(tmp_path: Path) -> None:
    """A hand-back can cost the probe in flight: the drill's report must not end on it
    (an outage of 0 s, not recovered) but on the first pass after it."""
    runs = tmp_path / "runs"
    command = f"echo x >> {runs}; [ $(wc -l < {runs}) -ge 4 ]"  # fails 3 times, then passes
    with drill.Probe(command) as probe:
        pass  # the drill ends at once, its probe failing
    assert [ok for _, ok in probe.results] == [False, False, False, True]
    s = probe.summary()
    assert (s["failed"], s["recovered"]) == (3, True)
    assert s["outage"] >= 3 * drill.PROBE_EVERY * 0.9


def test_a_drill_with_a_probe_reports_its_outage(tmp_path: Path) -> None:
    report = run(tmp_path, Pair(), probe="true")
    assert report["result"] == "passed"
    probe = report["probe"]
    assert probe["command"] == "true" and probe["probes"] >= 1
    assert (probe["failed"], probe["outage"], probe["recovered"]) == (0, 0.0, True)
    assert "client-visible outage (true): 0.00 s" in drill.text(report)


# --- the report in state_dir ------------------------------------------------------------


def report_of(result: str, finished: float, **more: Any) -> dict[str, Any]:
    return {"result": result, "why": None if result == "passed" else "exit 1",
            "started": finished - 5, "finished": finished, "node": "n1", "peer": "n2",
            "scope": "every vhid", "stay": False, "hold": 0, "message": None, "steps": [],
            "probe": None, **more}  # fmt: skip


def test_save_carries_the_last_success_over_to_a_later_failure(tmp_path: Path) -> None:
    assert drill.load(tmp_path) is None
    drill.save(tmp_path, report_of("passed", 1_765_000_000.0))
    assert drill.load(tmp_path) == {**report_of("passed", 1_765_000_000.0),
                                    "last_success": 1_765_000_000.0}  # fmt: skip
    drill.save(tmp_path, report_of("failed", 1_765_000_100.0))
    last = drill.load(tmp_path)
    assert last is not None
    assert (last["result"], last["finished"], last["last_success"]) == (
        "failed", 1_765_000_100.0, 1_765_000_000.0,
    )  # fmt: skip
    drill.save(tmp_path, report_of("passed", 1_765_000_200.0))
    assert (drill.load(tmp_path) or {})["last_success"] == 1_765_000_200.0
    assert sorted(p.name for p in (tmp_path / "drill").iterdir()) == ["last.json"]


def test_a_first_drill_that_fails_has_no_last_success(tmp_path: Path) -> None:
    drill.save(tmp_path, report_of("refused", 1_765_000_000.0))
    assert (drill.load(tmp_path) or {}).get("last_success", "absent") is None


@pytest.mark.parametrize("text", ['{"result": "passed", "fini', "[1, 2]", '"passed"', ""])
def test_load_of_a_torn_or_foreign_file_is_none(tmp_path: Path, text: str) -> None:
    drill.last_path(tmp_path).parent.mkdir()
    drill.last_path(tmp_path).write_text(text)
    assert drill.load(tmp_path) is None


def test_only_one_drill_at_a_time(tmp_path: Path) -> None:
    with (
        drill.exclusive(tmp_path),
        pytest.raises(drill.Refusal, match="another drill is running on this node"),
        drill.exclusive(tmp_path),
    ):
        pytest.fail("a second drill ran")
    with drill.exclusive(tmp_path):  # free again once the first is done
        pass


# --- the daemon's DrillRecord: status and /metrics ------------------------------------------


def record_of(tmp_path: Path) -> DrillRecord:
    record = DrillRecord()
    asyncio.run(record.reconfigure(config(tmp_path)))
    return record


def write_last(tmp_path: Path, data: Any, mtime: float | None = None) -> None:
    path = drill.last_path(tmp_path / "state")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def test_drill_record_reads_last_json_and_samples_it(tmp_path: Path) -> None:
    record = record_of(tmp_path)
    assert record.report() is None  # no drill yet
    write_last(tmp_path, {**report_of("failed", 1_765_000_100.0), "last_success": 1.765e9})
    got = record.report()
    assert got is not None
    assert got.to_json() == {"result": "failed", "why": "exit 1", "finished": 1_765_000_100.0,
                             "last_success": 1.765e9, "peer": "n2"}  # fmt: skip
    assert got.lines() == ["drill: last one failed: exit 1 (carpctl drill --last)"]
    assert {s.name: (s.kind, s.value) for s in got.samples()} == {
        "carpd_drill_last_result": ("gauge", 0),
        "carpd_drill_last_timestamp_seconds": ("gauge", 1_765_000_100.0),
        "carpd_drill_last_success_timestamp_seconds": ("gauge", 1.765e9),
    }
    write_last(tmp_path, {**report_of("passed", 1_765_000_200.0), "last_success": None})
    got = record.report()
    assert got is not None and got.result == "passed"
    assert {s.name: s.value for s in got.samples()} == {
        "carpd_drill_last_result": 1,
        "carpd_drill_last_timestamp_seconds": 1_765_000_200.0,
    }  # no success known: no sample rather than a made-up time


def test_drill_record_caches_by_mtime(tmp_path: Path) -> None:
    record = record_of(tmp_path)
    write_last(tmp_path, report_of("passed", 1_765_000_000.0), mtime=1_765_000_000)
    first = record.report()
    assert first is not None and first.result == "passed"
    # Another report with the same mtime: the cached one (the file is not read again).
    write_last(tmp_path, report_of("failed", 1_765_000_100.0), mtime=1_765_000_000)
    assert record.report() is first
    os.utime(drill.last_path(tmp_path / "state"), (1_765_000_100, 1_765_000_100))
    now = record.report()
    assert now is not None and now.result == "failed"
    drill.last_path(tmp_path / "state").unlink()
    assert record.report() is None


@pytest.mark.parametrize(
    "data",
    [
        report_of("rigged", 1_765_000_000.0),
        {**report_of("passed", 1_765_000_000.0), "finished": "soon"},
        {**report_of("passed", 1_765_000_000.0), "finished": [1]},
        {"result": "passed"},
        ["passed", 1_765_000_000.0],
        "passed",
    ],
    ids=["unknown-result", "finished-text", "finished-list", "no-finished", "a-list", "a-string"],
)
def test_drill_record_refuses_a_hostile_file(tmp_path: Path, data: Any) -> None:
    record = record_of(tmp_path)
    write_last(tmp_path, data)
    assert record.report() is None


def test_drill_record_cuts_a_huge_why_and_ignores_a_bad_success(tmp_path: Path) -> None:
    record = record_of(tmp_path)
    write_last(tmp_path, {**report_of("failed", 1_765_000_000.0), "why": "x" * 100_000,
                          "peer": "p" * 1000, "last_success": "yesterday"})  # fmt: skip
    got = record.report()
    assert got is not None
    assert got.why == "x" * 500 and got.peer == "p" * 64 and got.last_success is None
    assert "carpd_drill_last_success_timestamp_seconds" not in {s.name for s in got.samples()}


# --- the peer's journal: `sync serve`'s record, `carpctl sync log` ------------------------


DRILL: dict[str, Any] = {
    "result": "passed",
    "why": None,
    "scope": "every vhid",
    "steps": [],
    "probe": None,
}


def agent(tmp_path: Path) -> Agent:
    return Agent(tmp_path / "state", 5.0, Scope([]), environ={"SSH_CONNECTION": SSH_CONNECTION})


def test_record_appends_the_drill_with_the_ssh_identity(tmp_path: Path) -> None:
    a = agent(tmp_path)
    claimed = {"user": "alice", "from": "n1", "to": "n2", "explanation": "monthly drill",
               "drill": DRILL, "files": "not claimed by a drill", "result": "forged",
               "ssh": "forged", "at": "forged"}  # fmt: skip
    assert a.handle({"op": "record", "record": claimed}) == {}
    (entry,) = a.journal.records()
    assert entry["result"] == "drill passed"  # this node's word, not the claim's
    assert entry["ssh"] == {"connection": SSH_CONNECTION}
    assert entry["at"] != "forged"
    assert (entry["user"], entry["from"], entry["to"], entry["drill"]) == (
        "alice", "n1", "n2", DRILL,
    )  # fmt: skip


@pytest.mark.parametrize(
    "claimed",
    [{"user": "alice"}, {"drill": None}, {"drill": "passed"}, {"drill": {"result": 1}}],
    ids=["none", "null", "a-string", "result-not-text"],
)
def test_a_record_without_a_drill_report_is_refused(
    tmp_path: Path, claimed: dict[str, Any]
) -> None:
    a = agent(tmp_path)
    with pytest.raises(AgentRefused, match="a record needs a drill report"):
        a.handle({"op": "record", "record": claimed})
    assert a.journal.records() == []


def test_sync_log_shows_a_drill_record_as_a_drill(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path, sync_peer="root@n1")
    a = agent(tmp_path)
    a.handle({"op": "record", "record": {"user": "alice", "from": "n1", "to": "n2",
                                         "explanation": "monthly drill",
                                         "drill": {**DRILL, "result": "failed"}}})  # fmt: skip
    assert ctl.main(["sync", "--config", str(cfg.source), "log"]) == 0
    out, err = capsys.readouterr()
    (entry,) = a.journal.records()
    assert err == ""
    assert out.splitlines() == [
        f"{entry['at']} alice (ssh from {SSH_CONNECTION}) drill n1 -> n2: drill failed",
        "    monthly drill",
    ]


# --- the event: carpd's drill-done ------------------------------------------------------------


class Recorder:
    """A subscriber of the daemon's events: each as the event stream shows it."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def notify(self, event: Event, view: NodeView) -> None:
        self.lines.append(eventstream.to_json(event, view))


def daemon(tmp_path: Path) -> tuple[Daemon, Recorder]:
    install()
    text = 'name = "lan"\nvhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n'
    d = Daemon(daemon_config(tmp_path, text), FakePorts(FakeNetlink()))
    recorder = Recorder()
    d.publisher.subscribers.append(recorder)
    return d, recorder


def test_drill_done_publishes_a_drill_event(tmp_path: Path) -> None:
    d, recorder = daemon(tmp_path)
    summary = "drill failed: exit 1" + "x" * 2000
    assert commands.handlers(d)["drill-done"]({"result": "failed", "summary": summary}) == {}
    (line,) = recorder.lines
    assert set(line) == {"event", "at", "result", "summary"}
    assert (line["event"], line["result"]) == ("drill", "failed")
    assert line["summary"] == summary[:1000]
    time.strptime(line["at"][:19], "%Y-%m-%dT%H:%M:%S")


def test_the_drill_event_as_the_stream_shows_it() -> None:
    # A drill names no vhid: the daemon's view is not read for it.
    line = eventstream.to_json(DrillDone("passed", "drill passed"), cast(NodeView, None))
    assert {k: v for k, v in line.items() if k != "at"} == {
        "event": "drill", "result": "passed", "summary": "drill passed",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("req", "why"),
    [
        ({"result": "rigged", "summary": "x"}, "result 'rigged': allowed are passed, failed"),
        ({"result": "passed"}, "'summary' must be a str"),
        ({"result": 1, "summary": "x"}, "'result' must be a str"),
    ],
)
def test_drill_done_refuses_an_unknown_result(
    tmp_path: Path, req: dict[str, Any], why: str
) -> None:
    d, recorder = daemon(tmp_path)
    with pytest.raises(Refused, match=why):
        commands.drill_done(d, req)
    assert recorder.lines == []


def test_the_summary_names_the_probes_outage() -> None:
    probe = {"command": "true", "probes": 10, "failed": 2, "outage": 0.41, "recovered": True}
    report = report_of("failed", 1_765_000_000.0, probe=probe)
    assert drill.summary(report) == "drill failed: exit 1 (probe outage 0.41 s, 2 of 10 failed)"


class Broken(Pair):
    """carpd refuses ``refuse`` requests, and its status breaks once this node is in
    maintenance mode (``status_breaks``), as carpctl's callables raise."""

    def __init__(self, refuse: str | None = None, status_breaks: bool = False) -> None:
        super().__init__()
        self.refuse, self.status_breaks = refuse, status_breaks

    def status(self) -> dict[str, Any]:
        if self.status_breaks and self.here.get("maintenance"):
            raise RuntimeError("carpd went away")
        return super().status()

    def control(self, req: dict[str, Any]) -> dict[str, Any]:
        if req["command"] == self.refuse:
            self.requests.append(req)
            raise RuntimeError(f"no interface group {req.get('group')!r}")
        return super().control(req)


def test_carpd_refusing_a_request_before_the_hand_over_is_a_refusal(tmp_path: Path) -> None:
    pair = Broken(refuse="group")
    report = run(tmp_path, pair, group="nosuch")
    assert report["result"] == "refused", report
    assert report["why"] == "carpd: no interface group 'nosuch'"
    assert pair.handing() == []


def test_carpd_failing_after_the_hand_over_rolls_back(tmp_path: Path) -> None:
    pair = Broken(status_breaks=True)
    report = run(tmp_path, pair)
    assert report["result"] == "failed", report
    assert report["why"] == "carpd: carpd went away"
    assert [(r["command"], r.get("on")) for r in pair.handing()] == [
        ("maintenance", True),
        ("maintenance", False),
    ]
    assert steps(report)[-1] == ("roll back", True)
