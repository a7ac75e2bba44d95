"""`carpctl drill`: a rehearsed failover. Seed 004: "if you never use your secondary
system, you don't know if you have a backup".

Checks first (refused with the reason when one fails), then hands the vhids over
gracefully (maintenance for all of them, `down` for some), verifies on the peer that it
is MASTER of each, keeps its addresses and committed the connections, runs the user's
checks, holds, hands back (or stays) and verifies again. A failed verification rolls
back at once. Every step is timed; the report goes to the terminal, this node's
state_dir (`carpctl drill --last`, the metrics), both nodes' sync journals and the
event stream.

The peer is read through this node's carpd ([cluster], `status` with ``fresh``), and
asked to step aside for a hand-back only when this node does not preempt (through its
page's API, with the [[cluster.peer]] user, as its maintenance button)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carpd.cluster.status import NodeStatus, VhidStatus, read
from carpd.cluster.verdict import peers_of
from carpd.config.model import ClusterPeer, Config

POLL = 0.2  # seconds between two looks at the nodes while waiting for a state
MARGIN = 2.0  # beyond a protocol bound: the peer's next read, a busy machine
COMMAND_TIMEOUT = 60.0  # a --check or --peer-check
PROBE_TIMEOUT = 1.0  # one run of the --probe command
PROBE_EVERY = 0.2
# After the drill the probe runs on until it passes once (a hand-back can cost the probe
# in flight), at most this long: an outage still going then is reported as one.
PROBE_RECOVERY = 3.0


class Refusal(Exception):
    """A check before the drill failed: nothing was changed."""


class Failed(Exception):
    """A verification failed during the drill: rolled back."""


@dataclass
class Step:
    name: str
    at: float  # seconds since the drill began
    took: float
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.name,
            "at": round(self.at, 3),
            "took": round(self.took, 3),
            "ok": self.ok,
            "detail": self.detail,
        }


@dataclass
class Options:
    vhids: tuple[str, ...] = ()  # empty: every vhid (maintenance)
    group: str | None = None
    peer: str | None = None
    hold: float = 10.0
    stay: bool = False
    checks: tuple[str, ...] = ()
    peer_checks: tuple[str, ...] = ()
    probe: str | None = None
    message: str | None = None


class Probe:
    """The user's probe command, run every PROBE_EVERY seconds in a thread: the longest
    time it failed in a row is the outage a client saw."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.results: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._ending = threading.Event()  # the drill is over: on until one passes
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._ending.set()
        self._thread.join(PROBE_RECOVERY)
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                ok = subprocess.run(
                    ["sh", "-c", self.command], capture_output=True, timeout=PROBE_TIMEOUT
                ).returncode == 0  # fmt: skip
            except subprocess.TimeoutExpired:
                ok = False
            self.results.append((t, ok))
            if ok and self._ending.is_set():
                return  # the client is served again after the drill
            self._stop.wait(max(0.0, PROBE_EVERY - (time.monotonic() - t)))

    def summary(self) -> dict[str, Any]:
        longest, down_since = 0.0, None
        for t, ok in self.results:
            if not ok and down_since is None:
                down_since = t
            elif ok and down_since is not None:
                longest, down_since = max(longest, t - down_since), None
        if down_since is not None and self.results:
            longest = max(longest, self.results[-1][0] - down_since)
        failed = sum(1 for _, ok in self.results if not ok)
        return {
            "command": self.command,
            "probes": len(self.results),
            "failed": failed,
            "outage": round(longest, 3),
            "recovered": bool(self.results) and self.results[-1][1],
        }


@dataclass
class Drill:
    config: Config
    status: Callable[[], dict[str, Any]]  # this node's carpd: its status, peers read now
    control: Callable[[dict[str, Any]], dict[str, Any]]  # a control request; its result
    opts: Options
    steps: list[Step] = field(default_factory=list)
    start: float = field(default_factory=time.monotonic)
    handed: list[str] = field(default_factory=list)  # what rollback must undo

    def __post_init__(self) -> None:
        # carpd refusing a request (an unknown group) or gone (its socket) is a refusal
        # before anything was handed over, and a failure, rolled back, after.
        self.status = self._guarded(self.status)
        self.control = self._guarded(self.control)

    def _guarded(self, fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        def call(*args: Any) -> dict[str, Any]:
            try:
                return fn(*args)
            except (Refusal, Failed):
                raise
            except Exception as e:
                raise (Failed if self.handed else Refusal)(f"carpd: {e}") from None

        return call

    # -- steps ----------------------------------------------------------------------

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[list[str]]:
        """One timed step; its detail is what the block appends. An exception marks it
        failed (with its text) and goes on up."""
        t = time.monotonic()
        detail: list[str] = []
        try:
            yield detail
        except (Refusal, Failed) as e:
            self._add(name, t, False, str(e))
            raise
        self._add(name, t, True, "; ".join(detail))

    def _add(self, name: str, t: float, ok: bool, detail: str) -> None:
        self.steps.append(Step(name, t - self.start, time.monotonic() - t, ok, detail))

    # -- the nodes --------------------------------------------------------------------

    def nodes(self) -> tuple[NodeStatus, NodeStatus, ClusterPeer]:
        """This node and the peer, read now."""
        status = self.status()
        here = read(status)
        peers = peers_of(status)
        chosen = [p for p in self.config.cluster.peer if self.opts.peer in (None, p.name)]
        if not chosen:
            raise Refusal(
                "no [[cluster.peer]] to drill with" if self.opts.peer is None
                else f"no [[cluster.peer]] named {self.opts.peer!r}"
            )  # fmt: skip
        if len(chosen) > 1:
            names = ", ".join(p.name for p in chosen)
            raise Refusal(f"several peers ({names}): name one with --peer")
        peer_cfg = chosen[0]
        seen = next((p for p in peers if p.name == peer_cfg.name), None)
        if seen is None or seen.status is None:
            why = seen.error if seen is not None else "not read yet"
            raise Refusal(f"{peer_cfg.name} does not answer: {why}")
        return here, seen.status, peer_cfg

    def scope(self, here: NodeStatus) -> list[VhidStatus]:
        if self.opts.group is not None:
            names = [v["name"] for v in self._members(self.opts.group)]
            if not names:
                raise Refusal(f"group {self.opts.group!r} has no vhids")
        else:
            names = list(self.opts.vhids) or [v.name for v in here.vhosts]
        found = []
        for name in names:
            v = here.vhid(name)
            if v is None:
                raise Refusal(f"no vhid {name!r} on this node")
            found.append(v)
        return found

    def _members(self, group: str) -> list[dict[str, Any]]:
        result = self.control({"command": "group", "group": group})
        return [{"name": n} for n in result.get("members", [])]

    # -- the drill ----------------------------------------------------------------------

    def preflight(self) -> tuple[NodeStatus, NodeStatus, ClusterPeer, list[VhidStatus]]:
        with self.step("checks before the drill") as said:
            here, peer, peer_cfg = self.nodes()
            vhids = self.scope(here)
            problems = []
            if here.maintenance:
                problems.append(f"{here.node} is in maintenance mode already")
            if peer.maintenance:
                problems.append(f"{peer.node} is in maintenance mode")
            if peer.demoted:
                why = ", ".join(f"{k} {v}" for k, v in peer.demotion.items() if v)
                problems.append(f"{peer.node} is demoted by {peer.demoted} ({why})")
            if peer.services is not None and not peer.services.healthy:
                problems.append(f"{peer.node}'s checks fail: {', '.join(peer.services.failed)}")
            for v in vhids:
                theirs = peer.vhid(v.name)
                if v.state != "MASTER":
                    problems.append(f"{here.node} is not MASTER of {v.name} ({v.state})")
                if theirs is None:
                    problems.append(f"{peer.node} has no vhid {v.name}")
                elif theirs.state != "BACKUP":
                    problems.append(f"{peer.node} is {theirs.state} of {v.name}, not BACKUP")
            problems += self._state_sync(here, peer)
            config = here.config_sync
            if config is not None and not config.same:
                what = config.error or ", ".join([*config.differ, *config.only_here,
                                                  *config.only_peer][:5])  # fmt: skip
                problems.append(f"the configs differ ({what}): carpctl sync status")
            if problems:
                raise Refusal("; ".join(problems))
            said.append(f"{peer.node} answers and is healthy")
            said.append("vhids " + ", ".join(v.name for v in vhids))
            if here.state_sync is not None:
                said.append("state sync in sync")
            said.append(
                "configs never compared ([sync]: carpctl sync status)" if config is None
                else f"configs the same (checked {config.checked})"
            )  # fmt: skip
        return here, peer, peer_cfg, vhids

    @staticmethod
    def _state_sync(here: NodeStatus, peer: NodeStatus) -> list[str]:
        if here.state_sync is None:
            return []
        s = peer.state_sync
        if s is None:
            return [f"{peer.node} has no state sync"]
        if s.running is not True:
            return [f"{peer.node}'s conntrackd does not answer"]
        if s.bulk != "done":
            return [f"{peer.node}'s bulk resync is {s.bulk}"]
        if s.stall:
            return [f"{peer.node}'s state sync is stalled: {s.stall}"]
        return []

    def hand_over(self, here: NodeStatus, vhids: list[VhidStatus]) -> None:
        with self.step("hand over") as said:
            if self.opts.vhids or self.opts.group:
                for v in vhids:
                    self.control({"command": "down", "name": v.name})
                    self.handed.append(v.name)
                said.append("down: " + ", ".join(v.name for v in vhids))
            else:
                self.control({"command": "maintenance", "on": True})
                self.handed.append("maintenance")
                said.append(f"{here.node} in maintenance mode")

    def wait_for(
        self, what: str, bound: float, done: Callable[[NodeStatus, NodeStatus], str | None]
    ) -> tuple[NodeStatus, NodeStatus]:
        """Until ``done`` (this node and the peer, read now) says what it saw, or Failed
        after ``bound`` seconds with what was seen last."""
        deadline = time.monotonic() + bound
        last = "nothing read"
        while True:
            try:
                here, peer, _ = self.nodes()
            except Refusal as e:
                last = str(e)
            else:
                seen = done(here, peer)
                if seen is not None:
                    return here, peer
                last = self._states(here, peer)
            if time.monotonic() > deadline:
                raise Failed(f"{what}: not within {bound:.1f} s; last seen: {last}")
            time.sleep(POLL)

    def _names(self, vhids: list[VhidStatus]) -> list[str]:
        return [v.name for v in vhids]

    @staticmethod
    def _states(here: NodeStatus, peer: NodeStatus) -> str:
        def one(n: NodeStatus) -> str:
            return f"{n.node} " + ", ".join(
                f"{v.name} {v.state}" + (f" (commits {v.commit.runs})" if v.commit else "")
                for v in n.vhosts
            )

        return f"{one(here)}; {one(peer)}"

    def verify_on(
        self, step: str, owner: str, vhids: list[VhidStatus], before: dict[str, int], bound: float
    ) -> None:
        """``owner`` ("peer" or "here") is MASTER of each vhid, keeps its addresses and
        (with state sync) committed the connections once more since ``before``."""
        names = self._names(vhids)

        def check(here: NodeStatus, peer: NodeStatus) -> str | None:
            node = peer if owner == "peer" else here
            other = here if owner == "peer" else peer
            for name in names:
                mine, theirs = node.vhid(name), other.vhid(name)
                if mine is None or mine.state != "MASTER":
                    return None
                if theirs is not None and theirs.state == "MASTER":
                    return None
                if node.state_sync is not None and here.state_sync is not None:
                    c = mine.commit
                    if c is None or c.runs <= before.get(name, 0):
                        return None
            return "ok"

        with self.step(step) as said:
            here, peer = self.wait_for(step, bound, check)
            node = peer if owner == "peer" else here
            problems = []
            if node.addresses_demoted:
                problems.append(
                    f"{node.node} could not keep its addresses: {node.addresses_demoted}"
                )
            for name in names:
                v = node.vhid(name)
                c = v.commit if v else None
                if c is not None and c.last_error:
                    problems.append(f"{node.node}'s conntrackd commit for {name} failed: "
                                    f"{c.last_error}")  # fmt: skip
            if problems:
                raise Failed("; ".join(problems))
            said.append(f"{node.node} is MASTER of {', '.join(names)} and keeps the addresses")
            if node.state_sync is not None and here.state_sync is not None:
                said.append(f"{node.node} committed the connections (conntrackd)")

    def run_checks(self) -> None:
        for cmd in self.opts.checks:
            with self.step(f"check here: {cmd}") as said:
                said.append(_run(["sh", "-c", cmd]))
        sync = self.config.sync
        for cmd in self.opts.peer_checks:
            with self.step(f"check on the peer: {cmd}") as said:
                if sync.peer is None:
                    raise Failed("--peer-check runs over [sync]'s ssh: sync.peer is not set")
                argv = [*sync.ssh, "-o", "BatchMode=yes", "--", sync.peer, cmd]
                said.append(_run(argv))

    def hand_back(self, here: NodeStatus, peer_cfg: ClusterPeer, vhids: list[VhidStatus]) -> None:
        with self.step("hand back") as said:
            self.undo()
            said.append("left maintenance mode" if not self.opts.vhids and not self.opts.group
                        else "up: " + ", ".join(self._names(vhids)))  # fmt: skip
            if not all(v.preempt for v in vhids):
                # This node would not take the role back by itself: the peer steps aside.
                said.append(f"{peer_cfg.name} steps aside (maintenance on, then off)")
                self._peer_maintenance(peer_cfg, True)
                try:
                    bound = max(v.down_interval for v in vhids) + MARGIN
                    self.wait_for(
                        "this node MASTER again", bound, lambda h, _: self._all_master(h, vhids)
                    )
                finally:
                    self._peer_maintenance(peer_cfg, False)

    @staticmethod
    def _all_master(node: NodeStatus, vhids: list[VhidStatus]) -> str | None:
        ok = all((v := node.vhid(x.name)) is not None and v.state == "MASTER" for x in vhids)
        return "ok" if ok else None

    def _peer_maintenance(self, peer: ClusterPeer, on: bool) -> None:
        from carpd.cluster.client import PeerClient, PeerError

        async def ask() -> None:
            client = PeerClient(peer, self.config.cluster.timeout)
            try:
                await client.maintenance(on)
            finally:
                await client.close()

        try:
            asyncio.run(ask())
        except PeerError as e:
            raise Failed(f"{peer.name}: maintenance {'on' if on else 'off'}: {e}") from None

    def undo(self) -> None:
        """Whatever the drill changed on this node, back as it was."""
        while self.handed:
            what = self.handed.pop()
            if what == "maintenance":
                self.control({"command": "maintenance", "on": False})
            else:
                self.control({"command": "up", "name": what})

    def run(self) -> dict[str, Any]:
        result, why = "passed", None
        wall = time.time()
        probe = Probe(self.opts.probe) if self.opts.probe else None
        peer_name = None
        try:
            here, peer, peer_cfg, vhids = self.preflight()
            peer_name = peer.node
            with probe if probe is not None else contextlib.nullcontext():
                try:
                    self.drill(here, peer, peer_cfg, vhids)
                except Failed as e:
                    result, why = "failed", str(e)
                    try:
                        with self.step("roll back") as said:
                            self.undo()
                            said.append("left maintenance mode / vhids up again")
                    except Failed as undone:  # said in the step; the report still goes out
                        why += f"; and the roll back failed: {undone}"
        except Refusal as e:
            result, why = "refused", str(e)
            named = [p.name for p in self.config.cluster.peer if self.opts.peer in (None, p.name)]
            peer_name = named[0] if len(named) == 1 else None
        return {
            "result": result,
            "why": why,
            "started": wall,
            "finished": time.time(),
            "node": self._node_name(),
            "peer": peer_name or self.opts.peer,
            "scope": self._scope_text(),
            "stay": self.opts.stay,
            "hold": self.opts.hold,
            "message": self.opts.message,
            "steps": [s.to_json() for s in self.steps],
            "probe": probe.summary() if probe is not None else None,
        }

    def _scope_text(self) -> str:
        if self.opts.group:
            return f"group {self.opts.group}"
        return ", ".join(self.opts.vhids) if self.opts.vhids else "every vhid"

    def _node_name(self) -> str:
        import socket

        return self.config.global_.node_name or socket.gethostname()

    def drill(
        self, here: NodeStatus, peer: NodeStatus, peer_cfg: ClusterPeer, vhids: list[VhidStatus]
    ) -> None:
        names = self._names(vhids)
        peer_commits = {
            n: (v.commit.runs if (v := peer.vhid(n)) and v.commit else 0) for n in names
        }
        my_commits = {n: (v.commit.runs if (v := here.vhid(n)) and v.commit else 0) for n in names}
        theirs = [v for n in names if (v := peer.vhid(n)) is not None]
        # Graceful: the peer takes over on this node's next advert (preempt), else after
        # its master-down interval; its status is read again within MARGIN.
        over = max(v.advbase for v in vhids) + max(v.down_interval for v in theirs) + MARGIN
        self.hand_over(here, vhids)
        self.verify_on("the peer took over", "peer", vhids, peer_commits, over)
        self.run_checks()
        with self.step(f"hold {self.opts.hold:g} s") as said:
            time.sleep(self.opts.hold)
            self.verify_still(names)
            said.append(f"{peer.node} still MASTER of {', '.join(names)}")
        if self.opts.stay:
            with self.step("stay") as said:
                said.append(f"{peer.node} stays MASTER; this node stays "
                            + ("in maintenance mode" if "maintenance" in self.handed
                               else "down for " + ", ".join(names)))  # fmt: skip
                self.handed.clear()
            return
        self.hand_back(here, peer_cfg, vhids)
        back = max(v.advbase for v in theirs) + max(v.down_interval for v in vhids) + MARGIN
        self.verify_on("this node took back", "here", vhids, my_commits, back)

    def verify_still(self, names: list[str]) -> None:
        here, peer, _ = self.nodes()
        lost = [n for n in names if (v := peer.vhid(n)) is None or v.state != "MASTER"]
        if lost:
            raise Failed(f"{peer.node} lost {', '.join(lost)} while holding: "
                         f"{self._states(here, peer)}")  # fmt: skip


def _run(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise Failed(f"still running after {COMMAND_TIMEOUT:g} s") from None
    except OSError as e:
        raise Failed(f"cannot run {shlex.join(argv)}: {e.strerror}") from None
    tail = (r.stdout + r.stderr).strip()[-300:]
    if r.returncode != 0:
        raise Failed(f"exit {r.returncode}" + (f": {tail}" if tail else ""))
    return "exit 0"


# -- where the report goes ------------------------------------------------------------


def last_path(state_dir: Path) -> Path:
    return state_dir / "drill" / "last.json"


def save(state_dir: Path, report: dict[str, Any]) -> None:
    """state_dir/drill/last.json, atomically, with the last success carried over."""
    path = last_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    previous = load(state_dir) or {}
    success = report["finished"] if report["result"] == "passed" else previous.get("last_success")
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        json.dump({**report, "last_success": success}, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(last_path(state_dir).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def exclusive(state_dir: Path) -> Iterator[None]:
    """One drill at a time on this node."""
    path = state_dir / "drill" / "lock"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Refusal("another drill is running on this node") from None
        yield
    finally:
        os.close(fd)


def summary(report: dict[str, Any]) -> str:
    out = f"drill {report['result']}"
    if report.get("why"):
        out += f": {report['why']}"
    probe = report.get("probe")
    if probe:
        out += f" (probe outage {probe['outage']:.2f} s, {probe['failed']} of "
        out += f"{probe['probes']} failed)"
    return out


def text(report: dict[str, Any]) -> str:
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(report["started"]))
    lines = [f"drill of {report['node']} with {report['peer']}, {started}: {report['scope']}"]
    for s in report["steps"]:
        mark = "ok" if s["ok"] else "FAILED"
        lines.append(f"  {s['at']:7.2f} s  {s['step']}: {mark} ({s['took']:.2f} s)"
                     + (f": {s['detail']}" if s["detail"] else ""))  # fmt: skip
    probe = report.get("probe")
    if probe:
        lines.append(
            f"  client-visible outage ({probe['command']}): {probe['outage']:.2f} s; "
            f"{probe['failed']} of {probe['probes']} probes failed"
        )
    lines.append(summary(report))
    return "\n".join(lines)
