"""The pair's verdict, from this node's status and what it last read of each peer (its
``cluster`` report): per vhid, every node's state side by side; one MASTER, two (split
brain) or none; and what would happen if this node failed now. Pure: carpctl, the page
and the drill all read it from the same status JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from carpd.cluster.status import NodeStatus, Unreadable, VhidStatus, read

SKEW_WARN = 5.0  # seconds of clock skew between nodes that make journals hard to follow


@dataclass(frozen=True)
class Member:
    node: str
    here: bool  # this node
    answering: bool
    vhid: VhidStatus | None  # None: not configured there (or not answering)
    demoted: int = 0
    maintenance: bool = False

    def to_json(self) -> dict[str, Any]:
        v = self.vhid
        return {
            "node": self.node,
            "here": self.here,
            "answering": self.answering,
            "state": v.state if v else None,
            "advbase": v.advbase if v else None,
            "advskew": v.advskew_sent if v and v.protocol != "vrrp3" else None,
            "priority": v.priority_sent if v and v.protocol == "vrrp3" else None,
            "demotion": v.demotion if v else None,
            "maintenance": self.maintenance,
        }


@dataclass(frozen=True)
class Row:
    name: str
    vhid: int
    members: tuple[Member, ...]
    verdict: str  # "ok", "split-brain", "no-master", "unknown"
    text: str
    if_failed: list[str] = field(default_factory=list)  # if this node failed now
    successor: str | None = None  # the node that would take over

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "vhid": self.vhid,
            "nodes": [m.to_json() for m in self.members],
            "verdict": self.verdict,
            "text": self.text,
            "if_this_node_failed": self.if_failed,
            "successor": self.successor,
        }


@dataclass(frozen=True)
class Peer:
    name: str
    answering: bool
    error: str | None
    checked: float | None
    clock_skew: float | None
    status: NodeStatus | None


def peers_of(status: dict[str, Any]) -> list[Peer]:
    found = []
    report = status.get("cluster")
    for p in report.get("peers", []) if isinstance(report, dict) else []:
        node = None
        error = p.get("error")
        if p.get("status") is not None:
            try:
                node = read(p["status"])
            except Unreadable as e:
                error = str(e)
        found.append(
            Peer(str(p.get("name")), node is not None, error, p.get("checked"),
                 p.get("clock_skew"), node)
        )  # fmt: skip
    return found


def build(status: dict[str, Any]) -> dict[str, Any]:
    """The cluster view from this node's status JSON (with its ``cluster`` report)."""
    here = read(status)
    peers = peers_of(status)
    rows = [row(here, v, peers) for v in here.vhosts]
    return {
        "node": here.node,
        "peers": [
            {
                "name": p.name,
                "answering": p.answering,
                "error": p.error,
                "checked": p.checked,
                "clock_skew": p.clock_skew,
                "maintenance": p.status.maintenance if p.status else None,
                "demotion": p.status.demoted if p.status else None,
            }
            for p in peers
        ],
        "vhids": [r.to_json() for r in rows],
        "verdict": "ok" if rows and all(r.verdict == "ok" for r in rows) else _worst(rows),
    }


def _worst(rows: list[Row]) -> str:
    for v in ("split-brain", "no-master", "unknown"):
        if any(r.verdict == v for r in rows):
            return v
    return "unknown" if not rows else "ok"


def row(here: NodeStatus, mine: VhidStatus, peers: list[Peer]) -> Row:
    members = [Member(here.node, True, True, mine, here.demoted, here.maintenance)]
    for p in peers:
        v = p.status.vhid(mine.name) if p.status else None
        members.append(
            Member(p.name, False, p.answering, v, p.status.demoted if p.status else 0,
                   bool(p.status and p.status.maintenance))
        )  # fmt: skip
    masters = [m.node for m in members if m.vhid and m.vhid.state == "MASTER"]
    silent = [m.node for m in members if not m.answering]
    if len(masters) > 1:
        verdict, text = "split-brain", f"split brain: {' and '.join(masters)} are all MASTER"
    elif masters and silent:
        verdict, text = "unknown", f"{masters[0]} is MASTER; not answering: {', '.join(silent)}"
    elif masters:
        verdict, text = "ok", f"{masters[0]} is MASTER"
    elif silent:
        verdict, text = "unknown", f"no MASTER here; not answering: {', '.join(silent)}"
    else:
        verdict, text = "no-master", "no node is MASTER"
    failed, successor = if_failed(here, mine, peers)
    return Row(mine.name, mine.vhid, tuple(members), verdict, text, failed, successor)


def if_failed(
    here: NodeStatus, mine: VhidStatus, peers: list[Peer]
) -> tuple[list[str], str | None]:
    """What would happen to this vhid if this node failed now, one sentence each."""
    if mine.state != "MASTER":
        return [f"nothing: {here.node} is not MASTER of {mine.name}"], None
    ready = []
    for p in peers:
        v = p.status.vhid(mine.name) if p.status else None
        if p.status is None or v is None:
            continue
        if v.state == "BACKUP" and v.enabled and v.link_up is not False:
            ready.append((p, v))
    if not ready:
        return [f"no node would take over {mine.name}: no answering peer is BACKUP of it"], None
    # The first backup whose master-down interval ends takes over; a better one may then
    # preempt it.
    first = min(ready, key=lambda pv: pv[1].down_interval)
    best = first
    for pv in ready:
        if pv[1].preempt and pv[1].beats(best[1]):
            best = pv
    p, v = best
    assert p.status is not None
    after = f"{v.down_interval:.2f} s (its master-down interval)"
    out = [f"{p.name} takes over {mine.name} after {after}"]
    if best is not first:
        out[0] += f", {first[0].name} first, until {p.name} preempts it"
    out.append(_connections(here, p.status))
    out.append(_health(p.status))
    out.append(_config(here))
    return out, p.name


def _connections(here: NodeStatus, peer: NodeStatus) -> str:
    ours, theirs = here.state_sync, peer.state_sync
    if ours is None:
        return "connections: no state sync here ([conntrackd] off): they would be lost"
    if theirs is None:
        return f"connections: LOST: {peer.node} has no state sync"
    if theirs.running is False:
        return f"connections: LOST: {peer.node}'s conntrackd does not answer"
    if theirs.bulk != "done":
        return f"connections: at risk: {peer.node}'s bulk resync is {theirs.bulk}"
    if theirs.stall:
        return f"connections: at risk: {peer.node}'s state sync is stalled ({theirs.stall})"
    have = theirs.stats.external if theirs.stats else None
    want = ours.stats.internal if ours.stats else None
    if have is None or want is None:
        return f"connections: {peer.node} is in sync (counts not read yet)"
    share = f" ({100 * have / want:.0f}%)" if want else ""
    return f"connections: {peer.node} has {have} of our {want}{share}"


def _health(peer: NodeStatus) -> str:
    problems = []
    if peer.maintenance:
        problems.append("in maintenance mode")
    if peer.demoted:
        problems.append(f"demoted by {peer.demoted}")
    if peer.services is not None and not peer.services.healthy:
        problems.append(f"failing checks: {', '.join(peer.services.failed)}")
    return f"health: {peer.node} is " + ("; ".join(problems) if problems else "healthy")


def _config(here: NodeStatus) -> str:
    c = here.config_sync
    if c is None:
        return "config: never compared (carpctl sync status)"
    if c.error:
        return f"config: not compared: {c.error}"
    if c.same:
        return f"config: the same (checked {c.checked})"
    differ = [*c.differ, *c.only_here, *c.only_peer]
    return f"config: DIFFERS: {', '.join(differ[:5])}{' ...' if len(differ) > 5 else ''}"
