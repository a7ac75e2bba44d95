"""carpctl doctor's nftables evaluation (carpd.doctor.ruleset) on `nft -j list ruleset`
documents: what a ruleset does to a CARP advert or to conntrackd's UDP, walked as the
kernel walks it, with the matches it cannot read left unknown rather than guessed."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

from carpd.doctor.ruleset import CARP, Outcome, Packet, evaluate, parse

V4_IN = Packet(4, CARP, iif="eth0", daddr=ipaddress.ip_address("224.0.0.18"), pkttype="multicast")
V6_IN = Packet(6, CARP, iif="eth0", daddr=ipaddress.ip_address("ff02::12"), pkttype="multicast")
V4_OUT = Packet(
    4,
    CARP,
    oif="eth0",
    saddr=ipaddress.ip_address("192.0.2.1"),
    daddr=ipaddress.ip_address("224.0.0.18"),
)


def meta(key: str, right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": {"meta": {"key": key}}, "right": right}}


def payload(proto: str, field: str, right: Any, op: str = "==") -> dict[str, Any]:
    left = {"payload": {"protocol": proto, "field": field}}
    return {"match": {"op": op, "left": left, "right": right}}


def document(
    *chains: tuple[str, str | None, str | None, str, list[list[dict[str, Any]]]],
    family: str = "inet",
    table: str = "fw",
    sets: dict[str, list[Any]] | None = None,
) -> dict[str, Any]:
    """(name, hook or None, type, policy, rules) per chain, as nft -j prints them."""
    items: list[dict[str, Any]] = [{"metainfo": {"json_schema_version": 1}}]
    items.append({"table": {"family": family, "name": table, "handle": 1}})
    for name, elems in (sets or {}).items():
        items.append({"set": {"family": family, "table": table, "name": name, "elem": elems}})
    handle = 10
    for prio, (name, type_, hook, policy, rules) in enumerate(chains):
        chain: dict[str, Any] = {"family": family, "table": table, "name": name, "handle": 1}
        if hook is not None:
            chain.update(type=type_, hook=hook, prio=prio, policy=policy)
        items.append({"chain": chain})
        for expr in rules:
            handle += 1
            items.append(
                {
                    "rule": {
                        "family": family,
                        "table": table,
                        "chain": name,
                        "handle": handle,
                        "expr": expr,
                    }
                }
            )
    return {"nftables": items}


ACCEPT: dict[str, Any] = {"accept": None}
DROP: dict[str, Any] = {"drop": None}
STATE = {"ct": {"key": "state"}}
ESTABLISHED = [{"match": {"op": "in", "left": STATE, "right": ["established", "related"]}}, ACCEPT]


def test_an_input_policy_drop_with_no_accept_for_protocol_112_drops_both_families() -> None:
    rs = parse(document(("input", "filter", "input", "drop", [ESTABLISHED])))
    for packet in (V4_IN, V6_IN):
        o = evaluate(rs, "input", packet)
        assert o.verdict == "drop" and o.rule is None
        assert o.what() == "table inet fw chain input: policy drop"
    # The way out is another hook: nothing there.
    assert evaluate(rs, "output", V4_OUT).verdict is None


def test_an_accept_for_protocol_112_by_any_of_its_spellings_lets_adverts_in() -> None:
    for rule in (
        [meta("l4proto", "vrrp"), ACCEPT],
        [meta("l4proto", {"set": ["tcp", "vrrp"]}), ACCEPT],
        [meta("iifname", "eth*"), ACCEPT],
        [meta("pkttype", "multicast"), ACCEPT],
    ):
        rs = parse(document(("input", "filter", "input", "drop", [ESTABLISHED, rule])))
        assert evaluate(rs, "input", V4_IN).verdict is None, rule
    only_v4 = [payload("ip", "protocol", "vrrp"), ACCEPT]
    rs = parse(document(("input", "filter", "input", "drop", [only_v4])))
    assert evaluate(rs, "input", V4_IN).verdict is None
    assert evaluate(rs, "input", V6_IN).verdict == "drop"  # ip protocol: IPv4 only


def test_an_accept_on_another_interface_does_not_count() -> None:
    rule = [meta("iifname", "eth1"), meta("l4proto", "vrrp"), ACCEPT]
    rs = parse(document(("input", "filter", "input", "drop", [rule])))
    assert evaluate(rs, "input", V4_IN).verdict == "drop"


def test_an_explicit_drop_of_the_group_is_named_by_its_handle_before_a_later_accept() -> None:
    rules = [
        [payload("ip", "daddr", {"prefix": {"addr": "224.0.0.0", "len": 4}}), DROP],
        [meta("l4proto", "vrrp"), ACCEPT],
    ]
    rs = parse(document(("input", "filter", "input", "accept", rules)))
    o = evaluate(rs, "input", V4_IN)
    assert o.verdict == "drop" and o.rule is not None and o.rule.handle == 11
    assert str(o.rule) == "table inet fw chain input handle 11: ip daddr 224.0.0.0/4 drop"
    assert evaluate(rs, "input", V6_IN).verdict is None  # an IPv4 match


def test_a_reject_of_ff02_12_and_a_range_are_found() -> None:
    reject = [payload("ip6", "daddr", "ff02::12"), {"reject": None}]
    ranged = [payload("ip", "daddr", {"range": ["224.0.0.1", "224.0.0.20"]}), DROP]
    rs = parse(document(("input", "filter", "input", "accept", [reject, ranged])))
    assert evaluate(rs, "input", V6_IN).verdict == "reject"
    assert evaluate(rs, "input", V4_IN).verdict == "drop"


def test_drops_of_other_protocols_leave_adverts_alone() -> None:
    rules = [
        [payload("tcp", "dport", 22), DROP],
        [payload("ip", "protocol", "vrrp", op="!="), DROP],
        [meta("l4proto", "ipv6-icmp"), DROP],
        [payload("udp", "dport", {"set": [53, 123]}), DROP],
    ]
    rs = parse(document(("input", "filter", "input", "accept", rules)))
    assert evaluate(rs, "input", V4_IN).verdict is None
    assert evaluate(rs, "input", V6_IN).verdict is None


def test_jump_return_and_goto_are_followed() -> None:
    drops = ("carp", None, None, "", [[DROP]])
    returns = ("other", None, None, "", [[{"return": None}]])
    jump = [meta("l4proto", "vrrp"), {"jump": {"target": "carp"}}]
    rs = parse(document(("input", "filter", "input", "accept", [jump]), drops))
    o = evaluate(rs, "input", V4_IN)
    assert o.verdict == "drop" and o.rule is not None and o.rule.chain == "carp"
    to_other = [meta("l4proto", "vrrp"), {"jump": {"target": "other"}}]
    rs = parse(document(("input", "filter", "input", "drop", [to_other, [ACCEPT]]), returns))
    assert evaluate(rs, "input", V4_IN).verdict is None  # back from "other", then accepted
    goto = [meta("l4proto", "vrrp"), {"goto": {"target": "other"}}]
    rs = parse(document(("input", "filter", "input", "drop", [goto, [ACCEPT]]), returns))
    assert evaluate(rs, "input", V4_IN).verdict == "drop"  # goto: no way back, the policy


def test_an_accept_ends_only_its_own_base_chain() -> None:
    """As in the kernel: a later base chain on the same hook still sees the packet."""
    rs = parse(
        document(
            ("first", "filter", "input", "accept", [[meta("l4proto", "vrrp"), ACCEPT]]),
            ("second", "filter", "input", "drop", []),
        )
    )
    o = evaluate(rs, "input", V4_IN)
    assert o.verdict == "drop" and o.chain is not None and o.chain.name == "second"


def test_an_unknown_match_never_makes_a_drop_certain_and_is_noted() -> None:
    """The source of a multicast advert is a peer the doctor does not know: a drop by
    source is a doubt; an accept by source is taken, and noted."""
    drop_src = [payload("ip", "saddr", {"prefix": {"addr": "198.51.100.0", "len": 24}}), DROP]
    rs = parse(document(("input", "filter", "input", "accept", [drop_src])))
    o = evaluate(rs, "input", V4_IN)
    assert o.verdict is None and [r.handle for r in o.doubts] == [11]
    accept_peers = [payload("ip", "protocol", "vrrp"), payload("ip", "saddr", "@peers"), ACCEPT]
    rs = parse(
        document(
            ("input", "filter", "input", "drop", [accept_peers]), sets={"peers": ["192.0.2.2"]}
        )
    )
    o = evaluate(rs, "input", V4_IN)
    assert o.verdict is None and len(o.doubts) == 1
    from_peer = Packet(4, CARP, iif="eth0", saddr=ipaddress.ip_address("192.0.2.2"))
    assert evaluate(rs, "input", from_peer).doubts == ()  # known: in the set
    stranger = Packet(4, CARP, iif="eth0", saddr=ipaddress.ip_address("192.0.2.9"))
    assert evaluate(rs, "input", stranger).verdict == "drop"


def test_masquerade_on_the_carpdev_rewrites_adverts_unless_they_are_accepted_first() -> None:
    masq = [meta("oifname", "eth0"), {"masquerade": None}]
    doc = document(("postrouting", "nat", "postrouting", "accept", [masq]), family="ip")
    o = evaluate(parse(doc), "postrouting", V4_OUT, "nat")
    assert o.verdict == "masquerade" and o.rule is not None
    assert o.rule.text() == 'oifname "eth0" masquerade'
    # Another family's chain, or filter chains only: not this one.
    assert evaluate(parse(doc), "postrouting", V4_OUT, "filter").verdict is None
    exempt = [payload("ip", "protocol", "vrrp"), ACCEPT]
    doc = document(("postrouting", "nat", "postrouting", "accept", [exempt, masq]), family="ip")
    assert evaluate(parse(doc), "postrouting", V4_OUT, "nat").verdict is None
    lan_only = [
        meta("oifname", "wan0"),
        payload("ip", "saddr", {"prefix": {"addr": "192.0.2.0", "len": 24}}),
        {"snat": {"addr": "198.51.100.1"}},
    ]
    doc = document(("postrouting", "nat", "postrouting", "accept", [lan_only]), family="ip")
    assert evaluate(parse(doc), "postrouting", V4_OUT, "nat").verdict is None
    all_of_lan = [payload("ip", "saddr", {"prefix": {"addr": "192.0.2.0", "len": 24}})]
    doc = document(
        ("postrouting", "nat", "postrouting", "accept", [[*all_of_lan, {"snat": {"addr": "x"}}]]),
        family="ip",
    )
    assert evaluate(parse(doc), "postrouting", V4_OUT, "nat").verdict == "snat"


def test_conntrackds_port_on_the_sync_link() -> None:
    allow = [meta("iifname", "sync0"), payload("udp", "dport", 3780), ACCEPT]
    rs = parse(document(("input", "filter", "input", "drop", [ESTABLISHED, allow])))
    peer, me = ipaddress.ip_address("203.0.113.2"), ipaddress.ip_address("203.0.113.1")
    sync = Packet(4, 17, iif="sync0", saddr=peer, daddr=me, dport=3780, pkttype="host")
    assert evaluate(rs, "input", sync).verdict is None
    other_port = Packet(4, 17, iif="sync0", saddr=peer, daddr=me, dport=3781, pkttype="host")
    assert evaluate(rs, "input", other_port).verdict == "drop"
    # Only established: conntrackd's first datagram after a restart is new.
    rs = parse(document(("input", "filter", "input", "drop", [ESTABLISHED])))
    assert evaluate(rs, "input", sync).verdict == "drop"


# `nft -j list ruleset` of nftables 1.0.6 (Debian 12) for a ruleset with a set, a jump, a
# reject, a prefix and a nat table: parse() reads what nft really prints.
CAPTURED = Path(__file__).parent / "data" / "nft_ruleset_1.0.6.json"


def test_a_captured_ruleset() -> None:
    rs = parse(json.loads(CAPTURED.read_text()))
    v4 = evaluate(rs, "input", V4_IN)
    assert v4.verdict == "drop" and v4.rule is not None and v4.rule.handle == 6
    v6 = evaluate(rs, "input", V6_IN)
    assert v6.verdict == "reject" and v6.rule is not None and v6.rule.handle == 7
    nat = evaluate(rs, "postrouting", V4_OUT, "nat")
    assert nat.verdict == "masquerade" and nat.rule is not None and nat.rule.handle == 2
    sync = Packet(4, 17, iif="sync7", dport=3780, pkttype="host")
    assert evaluate(rs, "input", sync).verdict is None
    # Unicast from the peer in @peers (through the jump to "sub" and back): accepted.
    two, one = ipaddress.ip_address("192.0.2.2"), ipaddress.ip_address("192.0.2.1")
    peer = Packet(4, CARP, iif="eth0", saddr=two, daddr=one, pkttype="host")
    assert evaluate(rs, "input", peer) == Outcome(None)
    stranger = Packet(4, CARP, iif="eth0", saddr=one, daddr=two, pkttype="host")
    assert evaluate(rs, "input", stranger).verdict == "drop"
