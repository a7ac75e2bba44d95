"""virtual_ipaddress and virtual_ipaddress_excluded lines -> a vhid's addresses: one
family per instance (keepalived's rule), on the instance's interface, and what of
ip-address(8)'s options carpd does not set."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from carpd.importer.keepalived.state import State
from carpd.importer.parse import Node
from carpd.importer.toml_out import Value

# The options that take a value; any other word is a flag.
_VALUED = ("dev", "label", "scope", "brd", "broadcast", "peer", "preferred_lft", "track_group")


@dataclass
class Addresses:
    """An instance's addresses so far, and their family (its first address's)."""

    items: list[str] = field(default_factory=list)
    family: int | None = None


def address(st: State, node: Node, carp: dict[str, Value], block: str, found: Addresses) -> None:
    """Add one virtual_ipaddress line to ``found``, or say why not."""
    text = node.keyword
    try:
        addr = ipaddress.ip_interface(text)
    except ValueError:
        st.say("not translated", node, "not an address[/prefix]", keyword=block)
        return
    if found.family is not None and addr.version != found.family:
        st.say(
            "not translated",
            node,
            f"{text}: not the family of the instance's first "
            "address: keepalived ignores it too (give each family its own "
            "instance and VRID, docs/keepalived.md)",
            keyword=block,
        )
        return
    opts, flags = _options(node.args)
    dev = opts.pop("dev", None)
    if dev is not None and dev != carp["carpdev"]:
        st.say(
            "not translated",
            node,
            f"{text} dev {dev}: carpd puts a vhid's addresses "
            f"on its carpdev ({carp['carpdev']}); give {dev} a vhid of its own",
            keyword=block,
        )
        return
    found.items.append(str(addr))
    found.family = found.family or addr.version
    _say_changes(st, node, block, addr, opts, flags)


def _options(words: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """An address line's options (``dev eth1``) and flags (``home``)."""
    args = list(words)
    opts: dict[str, str] = {}
    flags: list[str] = []
    while args:
        word = args.pop(0)
        if word in _VALUED and args:
            opts[word] = args.pop(0)
        else:
            flags.append(word)
    return opts, flags


def _say_changes(
    st: State,
    node: Node,
    block: str,
    addr: ipaddress.IPv4Interface | ipaddress.IPv6Interface,
    opts: dict[str, str],
    flags: list[str],
) -> None:
    text = node.keyword
    shown = str(addr) if "/" in text else f"{text}/{addr.network.prefixlen}"
    if block == "virtual_ipaddress_excluded":
        st.say(
            "changed",
            node,
            f"{shown}: in addresses, so carpd advertises it; "
            "keepalived logs the address count of its adverts as wrong, and "
            "takes them",
            keyword=block,
        )
    if "/" not in text:
        st.say("note", node, f"{shown}: keepalived's prefix for a bare address", keyword=block)
    if opts.get("scope", "global") != "global":
        st.say(
            "changed",
            node,
            f"{text} scope {opts['scope']}: carpd adds it with scope global",
            keyword=block,
        )
    opts.pop("scope", None)
    for k, v in opts.items():
        st.say("changed", node, f"{text} {k} {v}: not set by carpd", keyword=block)
    for f in flags:
        st.say("changed", node, f"{text} {f}: not set by carpd", keyword=block)
