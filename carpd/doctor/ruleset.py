"""What an nftables ruleset (``nft -j list ruleset``) does to one packet: sans-IO.

A packet is what carpd sends or receives (a CARP/VRRP advert, conntrackd's UDP on the
sync link) with the fields the doctor knows; every field it does not know is unknown.
Each base chain of the hook (every table of the packet's families, in priority order) is
walked as the kernel walks it: rules in order, ``jump`` and ``goto`` into regular chains,
``return``, then the chain's policy. A match is true, false, or unknown (a field the
packet does not know, an expression this module does not read): a drop under an unknown
match is noted, never taken as certain; an accept under one is taken as accepting (the
benefit of the doubt: no false alarm for ``ip saddr @peers accept``), and noted.

What it does not read: the ``bridge`` and ``netdev`` families, verdict maps, iptables
rules made with ``xt`` matches (iptables-nft's compatibility), and legacy iptables (not
in the nftables ruleset at all): each such expression is unknown.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Tri = bool | None  # a match: true, false, or unknown

CARP = 112  # IP protocol of CARP and VRRP (nft calls it "vrrp")
PROTOCOLS = {
    "icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51,
    "ipv6-icmp": 58, "icmpv6": 58, "ospf": 89, "vrrp": CARP, "carp": CARP, "sctp": 132,
    "udplite": 136, "dccp": 33,
}  # fmt: skip
# Transport headers whose ports the doctor knows, by the name nft gives them.
TRANSPORTS = {"tcp": 6, "udp": 17, "sctp": 132, "dccp": 33, "udplite": 136}
ICMPS = {"icmp": 1, "icmpv6": 58, "igmp": 2}
HOOK_FAMILIES = {4: ("ip", "inet"), 6: ("ip6", "inet")}
MAX_DEPTH = 16  # jumps: nft itself refuses loops

Verdict = Literal["accept", "drop", "reject", "snat", "masquerade"]


@dataclass(frozen=True)
class Packet:
    """One packet as a hook sees it; None: not known."""

    family: int  # 4 or 6
    l4proto: int
    iif: str | None = None
    oif: str | None = None
    saddr: IPAddress | None = None
    daddr: IPAddress | None = None
    sport: int | None = None
    dport: int | None = None
    pkttype: str | None = None  # "host", "multicast", "broadcast"
    ct_state: str | None = "new"  # CARP's multicast is never answered: always new


@dataclass(frozen=True)
class Rule:
    family: str
    table: str
    chain: str
    handle: int | None
    expr: tuple[Any, ...]

    def where(self) -> str:
        return f"table {self.family} {self.table} chain {self.chain} handle {self.handle}"

    def text(self) -> str:
        """The rule much as ``nft list ruleset`` shows it (enough to find it)."""
        return " ".join(_expr_text(e) for e in self.expr)

    def __str__(self) -> str:
        return f"{self.where()}: {self.text()}"


@dataclass(frozen=True)
class Chain:
    family: str
    table: str
    name: str
    hook: str | None = None
    type: str | None = None
    prio: int = 0
    policy: str = "accept"
    rules: tuple[Rule, ...] = ()

    def where(self) -> str:
        return f"table {self.family} {self.table} chain {self.name}"


@dataclass(frozen=True)
class Ruleset:
    chains: Mapping[tuple[str, str, str], Chain]
    sets: Mapping[tuple[str, str, str], tuple[Any, ...]]

    def base_chains(self, hook: str, family: int, type_: str | None = None) -> list[Chain]:
        found = [
            c
            for c in self.chains.values()
            if c.hook == hook
            and c.family in HOOK_FAMILIES[family]
            and (type_ is None or c.type == type_)
        ]
        return sorted(found, key=lambda c: c.prio)


@dataclass(frozen=True)
class Outcome:
    """What one hook did to the packet: ``verdict`` by ``rule`` (None: a chain's policy,
    ``chain``), or None: every base chain let it through. ``doubts``: rules whose match
    was unknown, passed over (a drop) or taken (an accept)."""

    verdict: Verdict | None
    rule: Rule | None = None
    chain: Chain | None = None
    doubts: tuple[Rule, ...] = field(default=())

    def what(self) -> str:
        if self.rule is not None:
            return str(self.rule)
        if self.chain is not None:
            return f"{self.chain.where()}: policy {self.chain.policy}"
        return "no rule"


def parse(document: Mapping[str, Any]) -> Ruleset:
    """``nft -j list ruleset``'s output, read into chains and sets."""
    chains: dict[tuple[str, str, str], Chain] = {}
    rules: dict[tuple[str, str, str], list[Rule]] = {}
    sets: dict[tuple[str, str, str], tuple[Any, ...]] = {}
    for item in document.get("nftables", []):
        if "chain" in item:
            c = item["chain"]
            key = (c["family"], c["table"], c["name"])
            chains[key] = Chain(
                c["family"],
                c["table"],
                c["name"],
                c.get("hook"),
                c.get("type"),
                _prio(c.get("prio", 0)),
                c.get("policy", "accept"),
            )
        elif "rule" in item:
            r = item["rule"]
            key = (r["family"], r["table"], r["chain"])
            rule = Rule(r["family"], r["table"], r["chain"], r.get("handle"), tuple(r["expr"]))
            rules.setdefault(key, []).append(rule)
        elif "set" in item or "map" in item:
            s = item.get("set") or item["map"]
            elem = s.get("elem", [])
            sets[(s["family"], s["table"], s["name"])] = tuple(elem)
    done = {
        key: Chain(
            c.family, c.table, c.name, c.hook, c.type, c.prio, c.policy, tuple(rules.get(key, []))
        )
        for key, c in chains.items()
    }
    return Ruleset(done, sets)


def _prio(value: object) -> int:
    """A chain's priority: a number (nft -j prints the standard names as numbers)."""
    return value if isinstance(value, int) else 0


def evaluate(ruleset: Ruleset, hook: str, packet: Packet, type_: str | None = None) -> Outcome:
    """Every base chain of ``hook`` for ``packet``'s family, in priority order: the first
    drop or reject ends it (an accept ends only its own base chain, as in the kernel)."""
    doubts: list[Rule] = []
    for chain in ruleset.base_chains(hook, packet.family, type_):
        outcome = _walk(ruleset, chain, packet, doubts, 0)
        if outcome is None:  # fell off the end: the policy
            if chain.policy == "drop":
                return Outcome("drop", None, chain, tuple(doubts))
            continue
        if outcome.verdict in ("drop", "reject", "snat", "masquerade"):
            return Outcome(outcome.verdict, outcome.rule, chain, tuple(doubts))
    return Outcome(None, None, None, tuple(doubts))


def _walk(
    ruleset: Ruleset, chain: Chain, packet: Packet, doubts: list[Rule], depth: int
) -> Outcome | None:
    """A verdict, or None: the chain returned (or ended)."""
    if depth > MAX_DEPTH:
        return None
    for rule in chain.rules:
        matched = _rule_matches(ruleset, rule, packet)
        if matched is False:
            continue
        verdict = _verdict(rule)
        if verdict is None:
            continue
        kind, target = verdict
        if kind in ("jump", "goto"):
            sub = ruleset.chains.get((chain.family, chain.table, target or ""))
            result = _walk(ruleset, sub, packet, doubts, depth + 1) if sub else None
            if result is not None:
                if matched is None and result.verdict != "accept":
                    doubts.append(rule)
                    continue
                return result
            if kind == "goto" and matched is True:
                return None
            continue
        if kind == "return":
            if matched is True:
                return None
            continue
        if kind in ("accept", "drop", "reject", "snat", "masquerade"):
            if matched is None:
                doubts.append(rule)
                if kind != "accept":
                    continue
            return Outcome(kind, rule)  # type: ignore[arg-type]
    return None


def _verdict(rule: Rule) -> tuple[str, str | None] | None:
    """The rule's terminal statement (the last one that decides), if any."""
    for e in rule.expr:
        for key in ("accept", "drop", "reject", "return", "snat", "masquerade"):
            if key in e:
                return key, None
        for key in ("jump", "goto"):
            if key in e:
                return key, e[key].get("target")
    return None


def _rule_matches(ruleset: Ruleset, rule: Rule, packet: Packet) -> Tri:
    """All of the rule's matches, three-valued: one false makes it false."""
    result: Tri = True
    for e in rule.expr:
        if "match" in e:
            m = _match(ruleset, rule, e["match"], packet)
        elif any(k in e for k in ("limit", "quota", "xt", "vmap", "fib", "osf", "synproxy")):
            m = None  # matches some packets, or one this module does not read
        else:
            continue  # counter, log, meta set, ...: no condition
        if m is False:
            return False
        if m is None:
            result = None
    return result


class _NoMatch:
    """A field of a header the packet does not have (``tcp dport`` on CARP): the
    expression's implicit dependency fails, so the match is false whatever its op."""


NO = _NoMatch()


def _field(left: Any, packet: Packet) -> object:
    """The value of ``left`` for the packet: a value, None (unknown) or NO."""
    if not isinstance(left, Mapping):
        return None
    if "meta" in left:
        key = left["meta"].get("key")
        values: dict[str, object] = {
            "iifname": packet.iif,
            "iif": packet.iif,
            "oifname": packet.oif,
            "oif": packet.oif,
            "l4proto": packet.l4proto,
            "nfproto": "ipv4" if packet.family == 4 else "ipv6",
            "protocol": "ip" if packet.family == 4 else "ip6",
            "pkttype": packet.pkttype,
        }
        return values.get(key)
    if "ct" in left:
        return packet.ct_state if left["ct"].get("key") == "state" else None
    if "payload" in left:
        p = left["payload"]
        proto, name = p.get("protocol"), p.get("field")
        if proto in ("ip", "ip6"):
            if (proto == "ip") != (packet.family == 4):
                return NO
            if name in ("protocol", "nexthdr"):
                return packet.l4proto
            if name in ("saddr", "daddr"):
                return getattr(packet, name)
            return None
        if proto in TRANSPORTS:
            if packet.l4proto != TRANSPORTS[proto]:
                return NO
            return getattr(packet, name) if name in ("sport", "dport") else None
        if proto in ICMPS:
            return NO if packet.l4proto != ICMPS[proto] else None
        if proto == "th":
            is_transport = packet.l4proto in TRANSPORTS.values()
            if is_transport and name in ("sport", "dport"):
                return getattr(packet, name)
            return None
    return None


def _match(ruleset: Ruleset, rule: Rule, m: Mapping[str, Any], packet: Packet) -> Tri:
    value = _field(m.get("left"), packet)
    if value is NO:
        return False
    if value is None:
        return None
    op, right = m.get("op", "=="), m.get("right")
    if isinstance(right, str) and right.startswith("@"):
        right = {"set": list(ruleset.sets.get((rule.family, rule.table, right[1:]), ()))}
    if op in ("==", "in"):
        return _contains(right, value)
    if op == "!=":
        found = _contains(right, value)
        return None if found is None else not found
    return None  # <, >, bit masks: not read


def _contains(right: Any, value: object) -> Tri:
    """Whether ``value`` is (in) ``right``: a value, a list, a set, a prefix, a range."""
    if isinstance(right, Mapping) and "set" in right:
        right = right["set"]
    if isinstance(right, list):
        results = [_contains(r, value) for r in right]
        if any(r is True for r in results):
            return True
        return None if any(r is None for r in results) else False
    if isinstance(right, Mapping):
        if "elem" in right:  # a set element with a timeout or a comment
            return _contains(right["elem"].get("val"), value)
        if "prefix" in right:
            return _in_network(value, f"{right['prefix']['addr']}/{right['prefix']['len']}")
        if "range" in right:
            low, high = right["range"]
            return _in_range(value, low, high)
        return None
    return _equal(right, value)


def _equal(right: object, value: object) -> Tri:
    if isinstance(value, str) and isinstance(right, str):  # an interface name, a keyword
        if right.endswith("*") and not right.endswith("\\*"):
            return value.startswith(right[:-1])
        return value == right
    if isinstance(value, int) and not isinstance(value, bool):
        number = PROTOCOLS.get(right) if isinstance(right, str) else right
        if isinstance(right, str) and number is None:
            return _service_port(right, value)
        return number == value
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        try:
            return ipaddress.ip_address(str(right)) == value
        except ValueError:
            return None
    return None


def _service_port(name: str, value: int) -> Tri:
    """A port nft printed by its name (``ssh``): unknown unless it is a number."""
    return int(name) == value if name.isdigit() else None


def _in_network(value: object, network: str) -> Tri:
    if not isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return None
    try:
        return value in ipaddress.ip_network(network, strict=False)
    except (ValueError, TypeError):
        return None


def _in_range(value: object, low: object, high: object) -> Tri:
    try:
        if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            return ipaddress.ip_address(str(low)) <= value <= ipaddress.ip_address(str(high))  # type: ignore[operator]
        if isinstance(value, int):
            return int(str(low)) <= value <= int(str(high))
    except (ValueError, TypeError):
        return None
    return None


def _expr_text(e: Mapping[str, Any]) -> str:
    if "match" in e:
        m = e["match"]
        op = "" if m.get("op") in ("==", "in") else f"{m.get('op')} "
        left, right = m.get("left"), m.get("right")
        key = left.get("meta", {}).get("key") if isinstance(left, Mapping) else None
        if key in ("iifname", "oifname", "iif", "oif") and isinstance(right, str):
            return f'{key} {op}"{right}"'  # as nft lists it
        return f"{_left_text(left)} {op}{_right_text(right)}"
    for key in ("accept", "drop", "return", "masquerade"):
        if key in e:
            return key
    if "reject" in e:
        return "reject"
    if "snat" in e:
        return f"snat to {_right_text((e['snat'] or {}).get('addr', '?'))}"
    for key in ("jump", "goto"):
        if key in e:
            return f"{key} {e[key].get('target')}"
    if "counter" in e:
        return "counter"
    return next(iter(e), "?") if e else "?"


def _left_text(left: Any) -> str:
    if isinstance(left, Mapping):
        if "meta" in left:
            return f"meta {left['meta'].get('key')}"
        if "ct" in left:
            return f"ct {left['ct'].get('key')}"
        if "payload" in left:
            p = left["payload"]
            return f"{p.get('protocol', 'raw')} {p.get('field', '?')}"
    return str(left)


def _right_text(right: Any) -> str:
    if isinstance(right, Mapping):
        if "set" in right:
            return "{ " + ", ".join(_right_text(r) for r in right["set"]) + " }"
        if "prefix" in right:
            return f"{right['prefix']['addr']}/{right['prefix']['len']}"
        if "range" in right:
            return "-".join(map(str, right["range"]))
        return str(right)
    if isinstance(right, list):
        return ",".join(_right_text(r) for r in right)
    return str(right)
