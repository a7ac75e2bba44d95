"""global_defs: what becomes carpd's [global], and the node-wide defaults the instances
read (vrrp_version, vrrp_strict, default_interface)."""

from __future__ import annotations

import re
from collections.abc import Callable

from carpd.importer.keepalived.state import State
from carpd.importer.keepalived.unsupported import GLOBAL_NOT
from carpd.importer.keepalived.values import integer, num, number
from carpd.importer.parse import Node


def global_defs(st: State, node: Node) -> None:
    st.glob_node = st.glob_node or node
    for k in node.children or ():
        setting = _SETTINGS.get(k.keyword)
        if setting is not None:
            setting(st, k)
        elif k.keyword in GLOBAL_NOT:
            st.say("not translated", k, GLOBAL_NOT[k.keyword])
        else:
            st.say("not translated", k, "not known to the importer")


def _vrrp_version(st: State, k: Node) -> None:
    v = integer(k, 0)
    if v in (2, 3):
        st.version, st.version_node = v, k
    else:
        st.say("not translated", k, "not 2 or 3")


def _vrrp_strict(st: State, k: Node) -> None:
    st.strict = k
    st.say(
        "changed",
        k,
        "accept = false on every vhid (keepalived's no_accept); vrrp_strict's "
        "other refusals (authentication, unicast, vrrp_version 2) are not "
        "checked by carpd",
    )


def _router_id(st: State, k: Node) -> None:
    name = k.args[0] if k.args else ""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", name):
        st.glob["node_name"] = name
        st.say("note", k, "[global] node_name: the name status shows")
    else:
        st.say("not translated", k, "not a name carpd takes for node_name")


def _garp_refresh(st: State, k: Node) -> None:
    secs = number(k, 0)
    if secs is not None and 0 <= secs <= 86400:
        st.glob["garp_refresh"] = num(secs)
    else:
        st.say("not translated", k, "not a number of seconds in 0-86400")


def _rt_priority(st: State, k: Node) -> None:
    prio = integer(k, 0)
    if prio is not None and 1 <= prio <= 99:
        st.glob["realtime_priority"] = prio
        st.say(
            "note",
            k,
            "[global] realtime_priority: carpd's one process runs SCHED_FIFO (needs CAP_SYS_NICE)",
        )
    else:
        st.say("not translated", k, "not a priority in 1-99")


def _default_interface(st: State, k: Node) -> None:
    if k.args:
        st.default_interface = k.args[0]
        st.say("note", k, "used for the instances without interface")


_SETTINGS: dict[str, Callable[[State, Node], None]] = {
    "vrrp_version": _vrrp_version,
    "vrrp_strict": _vrrp_strict,
    "router_id": _router_id,
    "vrrp_garp_master_refresh": _garp_refresh,
    "vrrp_rt_priority": _rt_priority,
    "default_interface": _default_interface,
}
