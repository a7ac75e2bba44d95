"""The pair, through the cluster view: what the running carpd last read of each
[[cluster.peer]] (its status's ``cluster`` report) next to this node's own status. The
vhids' settings that must match (protocol, vhid, advbase; a vhid on one node only), the
preemption (a tie; the preferred node BACKUP with preempt on; the preferred node with
preempt off) and the clock skew. A peer that does not answer is a warning: the pair
checks could not run for it.

The preferred node of a vhid is the one whose configured advskew is lower (CARP) or
priority higher (VRRPv3): the configured values, not the demoted ones it advertises now
(a demotion is the node's health, not its role in the config)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from carpd.cluster.status import NodeStatus, Unreadable, VhidStatus, read
from carpd.cluster.verdict import SKEW_WARN, Peer, peers_of
from carpd.doctor.report import Finding

CHECKS = ("pair-peer", "pair-settings", "pair-preempt", "pair-clock")


def skipped(why: str) -> Iterator[Finding]:
    for name in CHECKS:
        yield Finding(name, None, None, why)


def pair_checks(status: Mapping[str, Any]) -> Iterator[Finding]:
    report = status.get("cluster")
    if not isinstance(report, Mapping):
        yield from skipped("no [[cluster.peer]] in carpd's config: no peer to compare with")
        return
    try:
        here = read(dict(status))
    except Unreadable as e:
        yield from skipped(f"this node's own status is not understood: {e}")
        return
    answering: list[tuple[Peer, NodeStatus]] = []
    peers = peers_of(dict(status))
    for p in peers:
        if p.status is None:
            saw = (
                f"{p.name} does not answer the cluster view ({p.error}): the pair checks did "
                "not run for it"
            )
            fix = (
                f"carpctl cluster status; see that {p.name}'s carpd runs with [web] on, "
                "and that its [[cluster.peer]] url, user, passfile and certificate are its own"
            )
            yield Finding("pair-peer", p.name, None, saw, fix, warning=True)
        else:
            yield Finding("pair-peer", p.name, True, f"{p.name} answers the cluster view")
            answering.append((p, p.status))
    if not answering:
        why = "no peer read yet" if not peers else "no peer answers the cluster view"
        if not peers:
            every = report.get("interval")
            yield Finding("pair-peer", None, None, f"{why} (carpd reads each every {every} s)")
        for name in CHECKS[1:]:
            yield Finding(name, None, None, why)
        return
    for p, peer in answering:
        yield from settings(here, p.name, peer)
    for p, peer in answering:
        yield from preemption(here, p.name, peer)
    for p, _ in answering:
        yield from clock(here.node, p)


def _match(v: VhidStatus, peer: NodeStatus) -> VhidStatus | None:
    """The peer's vhid for ours: by name, as the cluster view matches them, else the only
    one with our vhid number whose name we do not have."""
    found = peer.vhid(v.name)
    if found is not None:
        return found
    same = [w for w in peer.vhosts if w.vhid == v.vhid]
    return same[0] if len(same) == 1 else None


def _pairs(here: NodeStatus, peer: NodeStatus) -> list[tuple[VhidStatus, VhidStatus]]:
    return [(v, w) for v in here.vhosts if (w := _match(v, peer)) is not None]


def _interval(v: VhidStatus, w: VhidStatus, node: str, name: str) -> str:
    key, unit = ("advbase", "") if v.protocol != "vrrp3" else ("interval", " s")
    return f"{v.name}: {key} {v.advbase:g}{unit} on {node}, {w.advbase:g}{unit} on {name}"


def settings(here: NodeStatus, name: str, peer: NodeStatus) -> Iterator[Finding]:
    """Per vhid: on both nodes, the same protocol, vhid number and advbase."""
    bad = False
    pairs = _pairs(here, peer)
    matched = {w.name for _, w in pairs}
    for v in here.vhosts:
        if _match(v, peer) is None:
            bad = True
            saw = (
                f"{v.name} (vhid {v.vhid}) is configured on {here.node} only, not on {name}: "
                f"nothing takes over its addresses when {here.node} fails"
            )
            fix = f"the same [[carp]] table (vhid {v.vhid}) on {name}, or none here"
            yield Finding("pair-settings", v.name, False, saw, fix)
    for w in peer.vhosts:
        if w.name not in matched:
            bad = True
            saw = (
                f"{w.name} (vhid {w.vhid}) is configured on {name} only, not on {here.node}: "
                f"nothing takes over its addresses when {name} fails"
            )
            fix = f"the same [[carp]] table (vhid {w.vhid}) here, or none on {name}"
            yield Finding("pair-settings", w.name, False, saw, fix)
    for v, w in pairs:
        if v.protocol != w.protocol or v.vhid != w.vhid:
            bad = True
            saw = (
                f"{v.name}: {v.protocol} vhid {v.vhid} on {here.node}, {w.protocol} vhid "
                f"{w.vhid} on {name}: the two are not one group, each hears no advert of its "
                "own kind from the other and both become MASTER"
            )
            fix = f"the same protocol and vhid for {v.name} on both nodes"
            yield Finding("pair-settings", v.name, False, saw, fix)
        elif v.advbase != w.advbase:
            bad = True
            yield _advbase(here.node, name, v, w)
    if not bad:
        saw = f"{name}: the same {len(pairs)} vhid(s), each with the same protocol and advbase"
        yield Finding("pair-settings", name, True, saw)


def _advbase(node: str, name: str, v: VhidStatus, w: VhidStatus) -> Finding:
    both = _interval(v, w, node, name)
    if v.protocol == "vrrp3":
        why = (
            "RFC 5798 says the advertisement interval must be the same on every router of "
            "the VRID (a BACKUP times the MASTER by the interval it hears)"
        )
    else:
        why = (
            f"the adverts' timing differs and so does the takeover bound (master-down "
            f"{v.down_interval:.2f} s on {node}, {w.down_interval:.2f} s on {name}), and "
            "CARP compares advbase before advskew: the lower advbase wins whatever the advskew"
        )
    fix = f"advbase = {v.advbase:g} for {v.name} on {name} (or the same other value on both)"
    return Finding("pair-settings", v.name, False, f"{both}: {why}", fix)


def _rank(v: VhidStatus) -> tuple[str, int]:
    return ("priority", v.priority) if v.protocol == "vrrp3" else ("advskew", v.advskew)


def _better(a: VhidStatus, b: VhidStatus) -> bool:
    """``a`` is preferred to ``b`` by the config: a lower advskew, a higher priority."""
    return a.priority > b.priority if a.protocol == "vrrp3" else a.advskew < b.advskew


def _untie(vhid: str, key: str, value: int) -> str:
    """A config line that breaks the tie: on the BACKUP-to-be, or on the MASTER-to-be
    when the BACKUP's side has no room left."""
    if key == "advskew":  # lower wins, 0-240 as carpd sends it
        if value < 240:
            return f"advskew = {min(value + 100, 240)} for {vhid} on the node meant to be BACKUP"
        return f"advskew = 0 for {vhid} on the node meant to be MASTER"
    if value < 254:  # higher wins; 255 is the address owner's
        return f"priority = {min(value + 50, 254)} for {vhid} on the node meant to be MASTER"
    return f"priority = 200 for {vhid} on the node meant to be BACKUP"


def preemption(here: NodeStatus, name: str, peer: NodeStatus) -> Iterator[Finding]:
    """Per vhid on both nodes (the same protocol): a tie; the preferred node BACKUP of a
    MASTER with preempt on; the preferred node with preempt off."""
    bad = False
    pairs = [(v, w) for v, w in _pairs(here, peer) if v.protocol == w.protocol]
    for v, w in pairs:
        key, mine = _rank(v)
        theirs = _rank(w)[1]
        if mine == theirs:
            bad = True
            decides = "the config does not say"
            if key == "advskew" and v.advbase != w.advbase:
                decides = "only the advbase mismatch decides now, and once it is fixed nothing says"
            saw = (
                f"{v.name}: {key} {mine} on both {here.node} and {name}: a tie, so {decides} "
                "which node is MASTER (whichever became MASTER first keeps it; when both are "
                "MASTER at once, their addresses decide)"
            )
            yield Finding("pair-preempt", v.name, False, saw, _untie(v.name, key, mine))
            continue
        nodes = ((here.node, v, here), (name, w, peer))
        (best, bv, bs), (other, ov, _) = nodes if _better(v, w) else nodes[::-1]
        held = []
        if bs.maintenance:
            held.append("maintenance mode")
        if bv.demotion:
            held.append(f"demotion {bv.demotion}")
        if bv.state == "BACKUP" and ov.state == "MASTER" and bv.preempt and held:
            pass  # demoted: preemption works as meant (the demotion has its own findings)
        elif bv.state == "BACKUP" and ov.state == "MASTER" and bv.preempt:
            bad = True
            now = "not held back now: a takeover under way"
            saw = (
                f"{v.name}: {best} is BACKUP with preempt on and the better {key} "
                f"({_rank(bv)[1]} against MASTER {other}'s {_rank(ov)[1]}): it takes the role "
                f"at once whenever it can ({now}), each time"
            )
            fix = (
                f"if {other} is meant to be MASTER, give it the better {key}; if {best} is, "
                f"see what holds it back (carpctl status on {best})"
            )
            yield Finding("pair-preempt", v.name, False, saw, fix)
        elif not bv.preempt:
            bad = True
            saw = (
                f"{v.name}: {best} has the better {key} ({_rank(bv)[1]} against {other}'s "
                f"{_rank(ov)[1]}) but preempt off: after a failover to {other} it never takes "
                f"the role back (now {best} is {bv.state}, {other} {ov.state})"
            )
            fix = f"preempt = true in {v.name}'s [[carp]] table on {best}"
            yield Finding("pair-preempt", v.name, False, saw, fix)
    if not bad:
        saw = (
            f"{name}: on {len(pairs)} vhid(s) the config prefers one node (a better advskew "
            "or priority), and it preempts"
        )
        yield Finding("pair-preempt", name, True, saw)


def clock(node: str, p: Peer) -> Iterator[Finding]:
    skew = p.clock_skew
    if skew is None:
        yield Finding("pair-clock", p.name, None, f"{p.name} sent no Date header: skew unknown")
    elif abs(skew) > SKEW_WARN:
        saw = (
            f"{p.name}'s clock is {skew:+.1f} s off {node}'s (from its HTTP Date header, "
            f"+-1 s), more than {SKEW_WARN:g} s: the two nodes' journals and logs cannot be "
            "compared line by line"
        )
        fix = "NTP on both nodes (timedatectl set-ntp true, or chrony), then timedatectl on each"
        yield Finding("pair-clock", p.name, False, saw, fix)
    else:
        saw = f"{p.name}'s clock is {skew:+.1f} s off {node}'s (+-1 s): within {SKEW_WARN:g} s"
        yield Finding("pair-clock", p.name, True, saw)
