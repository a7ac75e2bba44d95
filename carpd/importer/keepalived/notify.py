"""notify, notify_master, notify_backup, notify_fault, notify_stop -> [[action]]s that run
the script when keepalived would have, with keepalived's arguments."""

from __future__ import annotations

import shlex
from typing import Literal

from carpd.importer.keepalived.state import State
from carpd.importer.keepalived.unsupported import INSTANCE_NOT
from carpd.importer.keepalived.values import command
from carpd.importer.parse import Node
from carpd.importer.toml_out import Table, Value

# The CARP_STATE each notify_* runs for (notify_fault and notify_stop: a MASTER's INIT).
NOTIFY = {
    "notify_master": "MASTER",
    "notify_backup": "BACKUP",
    "notify_fault": "INIT",
    "notify_stop": "INIT",
}


def notify(
    st: State,
    node: Node,
    target: tuple[Literal["vhid", "group"], str],
    owner: str,
    priority: int,
    kname: str,
) -> None:
    kw = node.keyword
    argv = command(node.args)
    if not argv:
        st.say("not translated", node, "no script")
        return
    phase = NOTIFY.get(kw)
    suffix = kw.removeprefix("notify_")
    name = st.names.take("action", f"{target[1][: 14 - len(suffix)]}-{suffix}")
    items: dict[str, Value] = {"name": name, target[0]: target[1]}
    if kw == "notify_master":
        items.update(on=["master"], run=argv)
    elif kw == "notify":
        _with_arguments(st, node, items, argv, target, priority, kname)
    elif phase is not None:
        _on_backup(st, node, items, argv, phase)
    else:
        st.say("not translated", node, INSTANCE_NOT.get(kw, "not known to the importer"))
        st.names.taken["action"].discard(name)
        return
    st.actions.append(Table("action", True, [f"{st.where(node)} {kw} of {owner}"], items))


def _with_arguments(
    st: State,
    node: Node,
    items: dict[str, Value],
    argv: list[str],
    target: tuple[Literal["vhid", "group"], str],
    priority: int,
    kname: str,
) -> None:
    """notify: the script with INSTANCE|GROUP NAME STATE PRIORITY; a vhid's priority is
    appended once the trackers' weights are known."""
    kind = "GROUP" if target[0] == "group" else "INSTANCE"
    prio = priority if target[0] == "vhid" else 0
    items["on"] = ["master", "backup"]
    items["shell"] = (
        'case "$CARP_STATE" in INIT) s=FAULT ;; *) s="$CARP_STATE" ;; esac; '
        f'exec {shlex.join(argv)} {kind} {shlex.quote(kname)} "$s" '
    )
    if target[0] == "group":
        items["shell"] = f"{items['shell']}0"
    else:
        st.pending_priority.append((items, target[1], prio))
    passed = "0" if target[0] == "group" else "the priority with every tracker up"
    st.say(
        "changed",
        node,
        f"run with {kind} {kname} MASTER|BACKUP|FAULT and {passed}, keepalived's "
        "order (keepalived passes the current priority); STOP is never passed (a "
        "stopping MASTER passes FAULT, a BACKUP nothing)",
    )


def _on_backup(st: State, node: Node, items: dict[str, Value], argv: list[str], phase: str) -> None:
    """notify_backup, notify_fault, notify_stop: on backup, for the one CARP_STATE."""
    items["on"] = ["backup"]
    items["shell"] = f'[ "$CARP_STATE" = {phase} ] || exit 0; exec {shlex.join(argv)}'
    if node.keyword == "notify_backup":
        st.say(
            "note",
            node,
            "runs on leaving MASTER and once at start (CARP_STATE "
            "BACKUP), not when a vhid comes back from INIT",
        )
    else:
        st.say(
            "changed",
            node,
            "runs when a MASTER goes to INIT (its link lost, "
            "carpctl down, carpd stopping); a BACKUP that loses its link runs "
            "nothing",
        )
