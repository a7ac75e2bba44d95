"""The objects instances and sync groups track, defined at the top level: vrrp_script,
track_file (vrrp_track_file) and vrrp_track_process, with keepalived's defaults."""

from __future__ import annotations

from collections.abc import Callable

from carpd.importer.keepalived.state import Script, State, Watched
from carpd.importer.keepalived.unsupported import GLOBAL_NOT
from carpd.importer.keepalived.values import command, integer, number
from carpd.importer.parse import Node


def vrrp_script(st: State, node: Node) -> None:
    name = node.args[0] if node.args else ""
    s = Script(node, [])
    for k in node.children or ():
        kw = k.keyword
        if kw == "script":
            s.argv = command(k.args)
        elif kw in ("interval", "timeout"):
            secs = number(k, 0)
            if secs is None or secs < 0:
                st.say("not translated", k, "not a number of seconds")
                continue
            setattr(s, kw, float(secs) or 1.0)  # 0 is 1 s in keepalived
        elif kw in ("rise", "fall"):
            n = integer(k, 0)
            if n is None or n < 1:
                st.say("not translated", k, "not a count of 1 or more")
                continue
            setattr(s, kw, n)
        elif kw == "weight":
            w = integer(k, 0)
            if w is None or not -253 <= w <= 253:
                st.say("not translated", k, "not a weight in -253..253")
                continue
            s.weight = w
            s.reverse = k.args[1:2] == ("reverse",)
        elif kw == "user":
            st.say("not translated", k, GLOBAL_NOT["script_user"])
        elif kw == "init_fail":
            st.say("changed", k, "carpd's first result counts at once, pass or fail")
        else:
            st.say("not translated", k, "not known to the importer")
    if not s.argv:
        st.say("not translated", node, "no script: keepalived removes it too")
        return
    st.scripts[name] = s


def track_file(st: State, node: Node) -> None:
    w = _watched(st, node, 1, "file", _file_line)  # keepalived's default weight: 1
    if w is not None:
        st.files[node.args[0] if node.args else ""] = w


def track_process(st: State, node: Node) -> None:
    w = _watched(st, node, 0, "process", _process_line)
    if w is None:
        return
    if w.target is not None and len(w.target) > 15 and "/" not in w.target:
        w.extra.append((node, "the kernel's name (comm) of a process is at most 15 characters"))
    st.processes[node.args[0] if node.args else ""] = w


def _watched(
    st: State, node: Node, weight: int, what: str, line: Callable[[State, Watched, Node], bool]
) -> Watched | None:
    """A track_file's or vrrp_track_process's lines, each read by ``line`` (False: not
    known); None: it names nothing to watch."""
    w = Watched(node, None, weight)
    for k in node.children or ():
        if not line(st, w, k):
            st.say("not translated", k, "not known to the importer")
    if w.target is None:
        st.say("not translated", node, f"no {what}")
        return None
    return w


def _file_line(st: State, w: Watched, k: Node) -> bool:
    if k.keyword == "file" and k.args:
        w.target = k.args[0]
    elif k.keyword == "weight":
        _weight(st, w, k)
    elif k.keyword == "init_file":
        w.extra.append((k, "carpd does not create the file"))
    else:
        return False
    return True


def _process_line(st: State, w: Watched, k: Node) -> bool:
    kw = k.keyword
    if kw == "process" and k.args:
        w.target = k.args[0]
        if len(k.args) > 1:
            w.extra.append((k, "carpd matches the process name only, not its arguments"))
    elif kw == "weight":
        if _weight(st, w, k) and k.args[1:2] == ("reverse",):
            w.extra.append((k, "carpd has no reverse weight"))
    elif kw == "quorum":
        if integer(k, 0) != 1:
            w.extra.append((k, "carpd counts a process up while one runs"))
    elif kw in ("quorum_max", "param_match", "full_command"):
        w.extra.append((k, "carpd counts a process up while one with its name runs"))
    elif kw in ("delay", "terminate_delay", "fork_delay"):
        w.extra.append((k, "carpd reads /proc every second (rise 1, fall 1)"))
    else:
        return False
    return True


def _weight(st: State, w: Watched, k: Node) -> bool:
    """A file's or a process's weight: whether it was taken."""
    n = integer(k, 0)
    if n is None or not -254 <= n <= 254:
        st.say("not translated", k, "not a weight in -254..254")
        return False
    w.weight = n
    return True
