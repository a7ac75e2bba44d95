"""Demotion: how much less attractive as MASTER this node is, and why (spec section 5).

Two kinds of contribution, as on the BSDs:

- node-wide sources, FreeBSD/OPNsense style: a carpdev down, advert send errors, failed
  service checks (2^20), maintenance mode, start-up. Each is one named amount.
- interface groups, OpenBSD style: every vhid is in group ``carp`` and in the groups its
  config names; each group has a demote count in 0..255 that ``carpdemote`` adjusts.

A vhid's demotion is the node-wide sum plus the sum of its groups' counts. On the wire
it goes into the demote byte (OpenBSD, capped at 255) and is added to the sent advskew
(capped at 240 as FreeBSD does), so every kind of peer sees it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

GROUP_DEMOTE_MAX = 255  # the OpenBSD kernel keeps a group's count in 0..255
CARPDEMOTE_STEP_MAX = 128  # what OpenBSD's ifconfig accepts for one carpdemote change
DEMOTE_BYTE_MAX = 255
MAX_SKEW = 240  # FreeBSD's CARP_MAXSKEW: a demoted advskew is capped here
DEFAULT_GROUP = "carp"

# The ledger's named node-wide sources (a carpdev's is ifdown_source(name)); /metrics
# shows each known one, at 0 when it does not demote, so alert rules need no absent().
MAINTENANCE = "maintenance"
SERVICES = "service disruption"
STARTUP = "startup"
SENDERR = "send errors"
STATE_SYNC = "state sync"
ADDRESSES = "addresses lost"  # a MASTER whose addresses cannot be put back


def ifdown_source(carpdev: str) -> str:
    return f"carpdev {carpdev} down"


def group_source(group: str) -> str:
    """How a group's carpdemote count is named among a vhid's demotion reasons."""
    return f"group {group}"


class DemoteRangeError(ValueError):
    """A group adjustment that would leave 0..255, or an unknown group."""


def demote_byte(total: int) -> int:
    return min(total, DEMOTE_BYTE_MAX)


def demoted_advskew(advskew: int, total: int) -> int:
    """advskew + demotion, capped at 240, never below the configured advskew."""
    if total <= 0:
        return advskew
    return max(advskew, min(advskew + total, MAX_SKEW))


@dataclass
class Demotion:
    """The node's demotion ledger. Pure bookkeeping: no clock, no I/O."""

    sources: dict[str, int] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=lambda: {DEFAULT_GROUP: 0})
    # Sources that demote some vhids only (a [[track]] with vhids or groups): reason ->
    # (the vhids' names, the groups, the amount).
    scoped: dict[str, tuple[frozenset[str], frozenset[str], int]] = field(default_factory=dict)

    def set_scoped(
        self, reason: str, vhids: Iterable[str], groups: Iterable[str], amount: int
    ) -> bool:
        """Set (or clear, with 0) a source that demotes only ``vhids`` and the members of
        ``groups``; True if anything changed."""
        old = self.scoped.get(reason)
        new = (frozenset(vhids), frozenset(groups), amount)
        if amount:
            self.scoped[reason] = new
        else:
            self.scoped.pop(reason, None)
        return (old[2] if old else 0) != amount or (amount != 0 and old != new)

    def set_source(self, reason: str, amount: int) -> bool:
        """Set (or clear, with 0) one node-wide source; True if anything changed."""
        old = self.sources.get(reason, 0)
        if amount:
            self.sources[reason] = amount
        else:
            self.sources.pop(reason, None)
        return old != amount

    def declare_groups(self, names: Iterable[str]) -> None:
        """The groups are now these and ``carp``: new ones start at 0, those that remain
        keep their counts, and those no vhid is in any more are gone (as on OpenBSD, where
        a group ends with its last member)."""
        wanted = {DEFAULT_GROUP, *names}
        self.groups = {name: self.groups.get(name, 0) for name in sorted(wanted)}

    def adjust_group(self, name: str, delta: int) -> int:
        """OpenBSD's ``ifconfig -g NAME [-]carpdemote N``: add delta, stay in 0..255."""
        if name not in self.groups:
            known = ", ".join(sorted(self.groups))
            raise DemoteRangeError(f"no interface group {name!r} (groups: {known})")
        new = self.groups[name] + delta
        if not 0 <= new <= GROUP_DEMOTE_MAX:
            raise DemoteRangeError(
                f"group {name}: demote count {self.groups[name]} {'+' if delta >= 0 else '-'} "
                f"{abs(delta)} would leave the allowed range 0-{GROUP_DEMOTE_MAX}"
            )
        self.groups[name] = new
        return new

    def reasons(self, groups: Iterable[str], name: str | None = None) -> list[tuple[str, int]]:
        """What makes up the demotion of the vhid ``name`` in ``groups``: (reason,
        amount), largest first."""
        parts = [(reason, amount) for reason, amount in self.sources.items() if amount]
        unique = dict.fromkeys(groups)
        parts += [(group_source(g), self.groups.get(g, 0)) for g in unique if self.groups.get(g)]
        parts += [
            (reason, amount)
            for reason, (vhids, scoped_groups, amount) in self.scoped.items()
            if amount and (name in vhids or not scoped_groups.isdisjoint(unique))
        ]
        return sorted(parts, key=lambda p: (-p[1], p[0]))

    def total(self, groups: Iterable[str], name: str | None = None) -> int:
        return sum(amount for _, amount in self.reasons(groups, name))
