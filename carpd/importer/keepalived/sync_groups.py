"""vrrp_sync_group -> carpd's groups: read in two passes, the members before the
instances (which take their group from them) and the rest after (which names only the
instances that were translated)."""

from __future__ import annotations

from carpd.importer.keepalived.notify import notify
from carpd.importer.keepalived.state import RENAMED, Group, State
from carpd.importer.keepalived.unsupported import INSTANCE_NOT
from carpd.importer.keepalived.uses import TRACK_BLOCKS, track_block
from carpd.importer.parse import Node

_TRACKING_WEIGHT = ("sync_group_tracking_weight", "global_tracking")


def sync_group_members(st: State, node: Node) -> None:
    kname = node.args[0] if node.args else ""
    members: list[str] = []
    for k in node.children or ():
        if k.keyword == "group":
            members += [c.keyword for c in k.children or ()] + list(k.args)
    g = Group(node, kname, st.names.take("group", kname), members)
    g.tracking_weight = any(k.keyword in _TRACKING_WEIGHT for k in node.children or ())
    st.groups[kname] = g
    for m in members:
        st.member_of.setdefault(m, kname)


def sync_group(st: State, node: Node, known: set[str]) -> None:
    g = st.groups[node.args[0] if node.args else ""]
    if g.name != g.kname:
        st.say("note", node, f'the group is named "{g.name}" {RENAMED}')
    present = [m for m in g.members if m in known]
    for m in g.members:
        if m not in known:
            st.say("not translated", node, f"member {m}: no such vrrp_instance here")
    if not present:
        return
    st.say(
        "changed",
        node,
        f'groups = ["{g.name}"] on {", ".join(present)}: a demotion (a lost link, a '
        "tracker of the group) moves them together, but a member that stops hearing "
        "its peer's adverts takes over alone (keepalived moves the whole group)",
    )
    for k in node.children or ():
        kw = k.keyword
        if kw == "group" or kw in _TRACKING_WEIGHT:
            continue
        if kw in TRACK_BLOCKS:
            track_block(st, k, ("groups", g.name), f"vrrp_sync_group {g.kname}", None)
        elif kw.startswith("notify"):
            notify(st, k, ("group", g.name), f"sync group {g.kname}", 0, g.kname)
        elif kw == "smtp_alert":
            st.say("not translated", k, "SMTP alerts: carpd sends no mail")
        elif kw == "track_bfd":
            st.say("not translated", k, INSTANCE_NOT["track_bfd"])
        else:
            st.say("not translated", k, "not known to the importer")
