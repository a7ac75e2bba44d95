"""An instance's priority once its trackers' positive weights are known (added to it,
capped at 254) -> priority or advskew, and its [[carp]] table put in carpd's order."""

from __future__ import annotations

from carpd.importer.keepalived.state import PRIO_MAX, Instance, State

# The keys of a [[carp]] table, in the order the output shows them.
_ORDER = (
    "name",
    "protocol",
    "vhid",
    "carpdev",
    "priority",
    "advskew",
    "advbase",
    "preempt",
    "accept",
    "vmac",
    "peers",
    "srcip",
    "addresses",
    "garp_refresh",
    "groups",
    "passfile",
)


def priority(st: State, inst: Instance, bonus: int) -> None:
    total = _total(st, inst, bonus)
    if st.to == "carp":
        inst.carp["advskew"] = PRIO_MAX - total
    else:
        inst.carp["priority"] = total
    for items, target, _ in st.pending_priority:
        if target == inst.name:
            items["shell"] = f"{items['shell']}{total}"
    inst.carp.setdefault("advbase", 1)  # keepalived's advert_int default
    ordered = {k: inst.carp[k] for k in _ORDER if k in inst.carp}
    inst.carp.clear()
    inst.carp.update(ordered)
    if st.to == "carp":
        st.say(
            "note",
            inst.node,
            f"advskew = {PRIO_MAX - total}: 254 - priority "
            f"({total}) keeps the order of every node's priorities",
            keyword="priority",
        )


def _total(st: State, inst: Instance, bonus: int) -> int:
    """The priority while every tracker is up, at most 254."""
    total = inst.priority + bonus
    if total > PRIO_MAX:
        st.say(
            "changed",
            inst.node,
            f"priority {inst.priority} + {bonus} of positive "
            f"weights is over 254: {PRIO_MAX}; keepalived caps the sum after the "
            "failed trackers' weights are taken, carpd before",
            keyword="priority",
        )
        return PRIO_MAX
    if bonus:
        st.say(
            "note",
            inst.node,
            f"{total}: priority {inst.priority} and {bonus} of "
            "positive weights while every tracker is up (each tracker takes its "
            "weight back while it is down)",
            keyword="priority",
        )
    return total
