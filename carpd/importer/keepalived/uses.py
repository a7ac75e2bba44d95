"""track_script, track_interface, track_file, track_process in an instance or a sync
group: each tracked object with the weight keepalived would give it, or why it is left
out (keepalived ignores the same lines, or carpd cannot do what they ask)."""

from __future__ import annotations

from carpd.importer.keepalived.state import ROOT, Instance, Scope, State, TrackKind, Use
from carpd.importer.parse import Node

TRACK_BLOCKS: dict[str, TrackKind] = {
    "track_script": "script",
    "track_interface": "interface",
    "track_file": "file",
    "track_process": "process",
}


def track_block(st: State, block: Node, scope: Scope, owner: str, inst: Instance | None) -> None:
    kind = TRACK_BLOCKS[block.keyword]
    for k in block.children or ():
        weight = _weight(st, block.keyword, k, kind, inst)
        if weight is not None:
            st.uses.append(Use(kind, k.keyword, weight if weight else None, k, scope, owner))


def _weight(st: State, key: str, k: Node, kind: TrackKind, inst: Instance | None) -> int | None:
    """The weight of one tracked object (0: FAULT); None: not tracked, and said why."""
    ref = k.keyword
    given = _given(st, key, k, kind)
    if given is None:
        return None
    weight, reverse = given
    if reverse:
        st.say("not translated", k, f"{ref}: carpd has no reverse weight", keyword=key)
        return None
    group = inst.group if inst is not None else None
    if group is not None and weight and not st.groups[group].tracking_weight:
        # keepalived ignores the weights of a sync group member's trackers (and the
        # line itself for a script, a process, a file given a weight)
        if kind in ("script", "process") or (kind == "file" and k.args):
            st.say(
                "not translated",
                k,
                f"{ref}: a weighted tracker of an instance "
                "in a sync group: keepalived ignores it too (unless "
                "sync_group_tracking_weight)",
                keyword=key,
            )
            return None
        weight = 0
    if kind == "file" and weight:
        st.say(
            "not translated",
            k,
            f"{ref}: keepalived adds the file's number times "
            f"{weight} to the priority; carpd's file tracker is up on 0 and down "
            "on anything else (weight 0 only)",
            keyword=key,
        )
        return None
    return weight


def _given(st: State, key: str, k: Node, kind: TrackKind) -> tuple[int, bool] | None:
    """The weight and reverse of a tracking line (else the object's own); None: the
    line is one keepalived ignores, and said so."""
    ref, args = k.keyword, list(k.args)
    root = st.root(kind, ref)
    if kind != "interface" and root is None:
        st.say(
            "not translated",
            k,
            f"{ref}: no such {ROOT[kind]}: keepalived ignores it too",
            keyword=key,
        )
        return None
    weight = root.weight if root is not None else 0  # an interface: 0 unless given
    reverse = kind == "script" and st.scripts[ref].reverse
    if not args:
        return weight, reverse
    if args[0] != "weight":
        st.say("not translated", k, f"{ref} {' '.join(args)}: keepalived ignores it too", key)
        return None
    try:
        weight = int(args[1])
    except (IndexError, ValueError):
        st.say(
            "not translated",
            k,
            f"{ref}: weight without a number: keepalived ignores it too",
            keyword=key,
        )
        return None
    if kind in ("script", "interface"):
        weight = max(-253, min(253, weight))
    return weight, args[3:4] == ["reverse"]
