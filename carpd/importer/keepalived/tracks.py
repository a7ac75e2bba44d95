"""The tracked objects' uses -> [[track]] tables: one per object and weight, scoped to
the vhids and groups that use it; the positive weights go to the priorities."""

from __future__ import annotations

import shlex
from collections import Counter
from decimal import Decimal

from carpd.importer.keepalived.priorities import priority
from carpd.importer.keepalived.state import ROOT, State, TrackKind, Use
from carpd.importer.keepalived.values import label, num
from carpd.importer.toml_out import Table, Value


def trackers(st: State) -> list[Table]:
    """One [[track]] per tracked object and weight, scoped to what uses it; the
    positive weights added to the priorities."""
    grouped: dict[tuple[TrackKind, str, int | None], list[Use]] = {}
    for u in st.uses:
        grouped.setdefault((u.kind, u.ref, u.weight), []).append(u)
    per_object = Counter((kind, ref) for kind, ref, _ in grouped)
    bonus: dict[str, int] = {i.name: 0 for i in st.instances}
    tables: list[Table] = []
    for (kind, ref, weight), uses in grouped.items():
        wanted = ref if per_object[kind, ref] == 1 else f"{ref}-{weight or 0}"
        name = st.names.take("track", wanted)
        tables.append(_table(st, name, kind, ref, weight, uses))
        for u in uses:
            _say_tracker(st, u, kind, ref)
            if weight is not None and weight > 0:
                for m in _members(st, u):
                    if m in bonus:
                        bonus[m] += weight
    for inst in st.instances:
        priority(st, inst, bonus.get(inst.name, 0))
    return tables


def _table(
    st: State, name: str, kind: TrackKind, ref: str, weight: int | None, uses: list[Use]
) -> Table:
    items: dict[str, Value] = {"name": name, "kind": kind}
    comments = [f"{st.where(u.node)} track_{kind} {ref} of {u.owner}" for u in uses]
    items.update(_target(st, kind, ref))
    root = st.root(kind, ref)
    if root is not None:
        comments.insert(0, f"{st.where(root.node)} {ROOT[kind]} {ref}")
    if weight is None:
        comments.append(
            "keepalived weight 0 (FAULT): the default weight 2^20, priority 1 while down"
        )
    else:
        items["weight"] = abs(weight)
    vhids = sorted({u.scope[1] for u in uses if u.scope[0] == "vhids"})
    groups = sorted({u.scope[1] for u in uses if u.scope[0] == "groups"})
    if vhids:
        items["vhids"] = vhids
    if groups:
        items["groups"] = groups
    return Table("track", True, comments, items)


def _members(st: State, u: Use) -> list[str]:
    """The [[carp]] names a use's weight applies to: its vhid, or its group's."""
    if u.scope[0] == "vhids":
        return [u.scope[1]]
    return [
        i.name
        for i in st.instances
        if i.group is not None and st.groups[i.group].name == u.scope[1]
    ]


def _target(st: State, kind: TrackKind, ref: str) -> dict[str, Value]:
    if kind == "script":
        return _script(st, ref)
    if kind == "interface":
        return {"targets": ref, "interval": 0.1, "timeout": 0.1, "rise": 1, "fall": 1}
    watched = st.files[ref] if kind == "file" else st.processes[ref]
    return {"targets": str(watched.target), "interval": 1.0, "rise": 1, "fall": 1}


def _script(st: State, ref: str) -> dict[str, Value]:
    """A vrrp_script's probe, in carpd's bounds (said once per script)."""
    s = st.scripts[ref]
    timeout = s.timeout or s.interval
    interval = max(0.1, s.interval)
    said = ref in st.said
    st.said.add(ref)
    if interval != s.interval and not said:
        st.say(
            "changed",
            s.node,
            f"{ref}: interval {num(Decimal(str(s.interval)))}: carpd probes every 0.1 s at most",
            keyword="vrrp_script",
        )
    if timeout > interval:
        timeout = interval
    if s.timeout > interval and not said:
        st.say(
            "changed",
            s.node,
            f"{ref}: timeout {num(Decimal(str(s.timeout)))} is "
            f"the interval, {num(Decimal(str(interval)))}: a carpd probe ends "
            "before the next one starts",
            keyword="vrrp_script",
        )
    return {
        "targets": shlex.join(s.argv),
        "interval": interval,
        "timeout": timeout,
        "rise": s.rise,
        "fall": s.fall,
    }


def _say_tracker(st: State, u: Use, kind: TrackKind, ref: str) -> None:
    key = f"track_{kind}"
    if u.weight is None:
        st.say(
            "changed",
            u.node,
            f"{ref}: weight 0: keepalived puts {u.owner} in FAULT "
            "(no adverts, no addresses) while it is down; carpd demotes it to "
            "priority 1: it still advertises, and stays MASTER when no other node "
            "is up",
            keyword=key,
        )
    if kind == "interface":
        st.say(
            "note",
            u.node,
            f"{ref}: read every 0.1 s (keepalived: at once, from netlink)",
            keyword=key,
        )
    watched = st.files.get(ref) if kind == "file" else st.processes.get(ref)
    if kind in ("file", "process") and watched is not None:
        for node, what in watched.extra:
            st.say("changed", node, f"{ref}: {what}", keyword=label(node))
        watched.extra = []
    if st.to == "carp" and u.weight is not None:
        st.say(
            "changed",
            u.node,
            f"{ref}: weight {u.weight}: in CARP a demotion is "
            "compared before advskew: while it is down this node loses to every node "
            "that is less demoted, whatever their priorities",
            keyword=key,
        )
