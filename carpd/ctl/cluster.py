"""`carpctl cluster status`: the pair side by side, from this node's carpd (which reads
its peers again first, each read bounded by [cluster] timeout)."""

from __future__ import annotations

from typing import Any

EXIT_OK, EXIT_PROBLEM = 0, 4


def text(view: dict[str, Any]) -> str:
    """The cluster view as carpctl prints it: peers, then each vhid's row and what would
    happen if this node failed now."""
    out = [f"cluster of {view['node']} (here)"]
    if not view["peers"]:
        out.append("  no [[cluster.peer]] configured: only this node is shown")
    for p in view["peers"]:
        if p["answering"]:
            skew = p.get("clock_skew")
            clock = f", clock {skew:+.1f} s" if skew is not None else ""
            extra = ", MAINTENANCE" if p.get("maintenance") else ""
            demoted = f", demoted by {p['demotion']}" if p.get("demotion") else ""
            out.append(f"  {p['name']}: answering{clock}{extra}{demoted}")
        else:
            out.append(f"  {p['name']}: NOT ANSWERING: {p.get('error')}")
    for v in view["vhids"]:
        out.append("")
        out.append(f"{v['name']} (vhid {v['vhid']}): {v['verdict'].upper()}: {v['text']}")
        for m in v["nodes"]:
            out.append("  " + member(m))
        for line in v["if_this_node_failed"]:
            out.append(f"  if {view['node']} failed now: {line}")
    return "\n".join(out)


def member(m: dict[str, Any]) -> str:
    name = m["node"] + (" (here)" if m["here"] else "")
    if not m["answering"]:
        return f"{name:<20} not answering"
    if m["state"] is None:
        return f"{name:<20} not configured there"
    rank = f"advskew {m['advskew']}" if m["advskew"] is not None else f"priority {m['priority']}"
    demoted = f", demotion {m['demotion']}" if m["demotion"] else ""
    return f"{name:<20} {m['state']:<7} advbase {m['advbase']:g}, {rank}{demoted}"


def exit_status(view: dict[str, Any]) -> int:
    return EXIT_OK if view["verdict"] == "ok" else EXIT_PROBLEM
