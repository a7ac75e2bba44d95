"""vrrp_instance -> [[carp]]: the vhid, its interface and addresses, the election
settings (priority, advert_int, preempt, accept), unicast peers, authentication, and
what each VRRP version means for the peers. The priority is finished by
carpd.importer.keepalived.priorities once the trackers' weights are known."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from carpd.importer.keepalived.addresses import Addresses, address
from carpd.importer.keepalived.notify import NOTIFY, notify
from carpd.importer.keepalived.state import PRIO_MAX, RENAMED, Instance, State
from carpd.importer.keepalived.unsupported import INSTANCE_NOT
from carpd.importer.keepalived.uses import TRACK_BLOCKS, track_block
from carpd.importer.keepalived.values import integer, num, number
from carpd.importer.parse import Node
from carpd.importer.toml_out import Value

_ALIASES = {"mcast_src_ip": "unicast_src_ip"}


@dataclass
class _Draft:
    """An instance while its statements are read."""

    inst: Instance
    found: Addresses = field(default_factory=Addresses)

    @property
    def carp(self) -> dict[str, Value]:
        return self.inst.carp

    @property
    def owner(self) -> str:
        return f"vrrp_instance {self.inst.kname}"


def instance(st: State, node: Node) -> None:
    d = _start(st, node)
    if d is None:
        return
    for k in node.children or ():
        kw = _ALIASES.get(k.keyword, k.keyword)
        setting = _SETTINGS.get(kw)
        if setting is not None:
            setting(st, d, k, kw)
        elif kw in INSTANCE_NOT:
            st.say("not translated", k, INSTANCE_NOT[kw])
        else:
            st.say("not translated", k, "not known to the importer")
    _finish(st, d)


def _start(st: State, node: Node) -> _Draft | None:
    """The vhid, name and carpdev; None: no vhid (keepalived refuses the instance)."""
    kname = node.args[0] if node.args else ""
    first = {k.keyword: k for k in reversed(node.children or ())}  # the first of each
    vrid = first.get("virtual_router_id")
    vhid = integer(vrid, 0) if vrid is not None else None
    if vhid is None or not 1 <= vhid <= 255:
        why = "no virtual_router_id" if vrid is None else "virtual_router_id not 1-255"
        st.say("not translated", node, f"{why}: keepalived refuses the instance too")
        return None
    name = st.names.take("carp", kname)
    if name != kname:
        st.say("note", node, f'named "{name}" {RENAMED}')
    carp: dict[str, Value] = {"name": name, "protocol": st.to, "vhid": vhid}
    iface = first.get("interface")
    if iface is not None and iface.args:
        carp["carpdev"] = iface.args[0]
    else:
        carp["carpdev"] = st.default_interface
        st.say(
            "note",
            node,
            f"no interface: keepalived's default_interface, {st.default_interface}",
        )
    origin = "vrrp_version" if st.version_node is not None else "keepalived's default"
    inst = Instance(node, kname, name, carp, 100, st.version, origin)
    inst.group = st.member_of.get(kname)
    return _Draft(inst)


def _finish(st: State, d: _Draft) -> None:
    """keepalived's defaults written out, or the instance dropped: no address."""
    inst, carp, name = d.inst, d.carp, d.inst.name
    if not d.found.items:
        st.say(
            "not translated", inst.node, "no virtual address: carpd needs at least one (addresses)"
        )
        st.names.taken["carp"].discard(name)
        st.uses = [u for u in st.uses if u.scope != ("vhids", name)]
        st.actions = [a for a in st.actions if a.items.get("vhid") != name]
        return
    carp["addresses"] = d.found.items
    carp.setdefault("preempt", True)
    if st.to != "carp":
        carp.setdefault("accept", st.strict is None)
    if inst.group is not None:
        carp["groups"] = [st.groups[inst.group].name]
    if st.to == "carp":
        carp["passfile"] = f"{name}.pass"
        if not any(k.keyword == "authentication" for k in inst.node.children or ()):
            st.say(
                "note",
                inst.node,
                f"passfile {name}.pass (beside carpd.toml): write a "
                "password of at most 19 characters in it, the same on every node",
            )
    st.instances.append(inst)


def versions(st: State) -> None:
    """VRRPv2 instances: the keepalived peers must speak VRRPv3 to this node."""
    if st.to == "carp":
        return
    for inst in st.instances:
        if inst.version != 2:
            continue
        st.say(
            "changed",
            inst.node,
            f"{inst.kname} speaks VRRPv2 ({inst.version_from}); "
            "carpd speaks VRRPv3: set vrrp_version 3 on the keepalived nodes "
            "(global_defs) before this node joins them, or convert the whole "
            "cluster with --to carp",
            keyword="vrrp_version",
        )


# -- the election ---------------------------------------------------------------------


def _priority(st: State, d: _Draft, k: Node, kw: str) -> None:
    p = integer(k, 0)
    if p is None or not 1 <= p <= 255:
        st.say("not translated", k, "not 1-255: keepalived's default 100 is used")
    elif p == 255:
        d.inst.priority = PRIO_MAX
        st.say(
            "changed",
            k,
            "255 (the address owner) is 254 in carpd: it "
            "waits the skew time before taking over, and weights apply",
        )
    else:
        d.inst.priority = p


def _advert_int(st: State, d: _Draft, k: Node, kw: str) -> None:
    secs = number(k, 0)
    if secs is None or secs <= 0:
        st.say("not translated", k, "not a number of seconds")
    else:
        d.carp["advbase"] = _advbase(st, k, secs)


def _advbase(st: State, node: Node, secs: Decimal) -> Value:
    """advert_int as the target protocol can send it (rounded up, and said)."""
    if st.to == "carp":
        whole = max(1, min(255, math.ceil(secs)))
        if whole != secs:
            st.say(
                "changed",
                node,
                f"advbase = {whole}: CARP's adverts go every 1-255 whole seconds",
            )
        return whole
    if secs * 100 != int(secs * 100) or not 0.01 <= secs <= 40.95:
        cs = max(1, min(4095, math.ceil(secs * 100)))
        st.say(
            "changed",
            node,
            f"advbase = {num(Decimal(cs) / 100)}: VRRPv3's "
            "interval is 0.01-40.95 s in steps of 0.01",
        )
        return num(Decimal(cs) / 100)
    return num(secs)


def _version(st: State, d: _Draft, k: Node, kw: str) -> None:
    v = integer(k, 0)
    if v in (2, 3):
        d.inst.version, d.inst.version_from = v, "version"
    else:
        st.say("not translated", k, "not 2 or 3")


def _state(st: State, d: _Draft, k: Node, kw: str) -> None:
    state = k.args[0] if k.args else ""
    st.say(
        "note",
        k,
        f"{state}: a start hint; carpd starts every vhid as "
        "BACKUP and priority and preempt decide who is MASTER",
    )


def _preempt(st: State, d: _Draft, k: Node, kw: str) -> None:
    d.carp["preempt"] = kw == "preempt"


def _accept(st: State, d: _Draft, k: Node, kw: str) -> None:
    if st.to == "carp":
        st.say("note", k, "a CARP MASTER always accepts on its addresses")
    else:
        d.carp["accept"] = kw == "accept"


def _strict_mode(st: State, d: _Draft, k: Node, kw: str) -> None:
    on = not k.args or k.args[0] in ("on", "true", "yes")
    if on and st.to != "carp":
        d.carp.setdefault("accept", False)
        st.say(
            "changed",
            k,
            "accept = false; strict mode's other refusals are not checked by carpd",
        )


# -- the network ----------------------------------------------------------------------


def _virtual_ipaddress(st: State, d: _Draft, k: Node, kw: str) -> None:
    for a in k.children or ():
        address(st, a, d.carp, kw, d.found)


def _unicast_peer(st: State, d: _Draft, k: Node, kw: str) -> None:
    peers = []
    for peer in k.children or ():
        try:
            peers.append(str(ipaddress.ip_address(peer.keyword)))
        except ValueError:
            st.say("not translated", peer, "not an address")
            continue
        if peer.args:
            st.say(
                "changed",
                peer,
                f"{' '.join(peer.args)}: carpd takes a peer's "
                "adverts only with TTL 255 (peers_routed: any)",
            )
    if peers:
        d.carp["peers"] = peers


def _srcip(st: State, d: _Draft, k: Node, kw: str) -> None:
    try:
        ip = ipaddress.ip_address(k.args[0] if k.args else "")
    except ValueError:
        st.say("not translated", k, "not an address")
        return
    if ip.version == 4:
        d.carp["srcip"] = str(ip)
    else:
        st.say(
            "not translated",
            k,
            "carpd sends IPv6 adverts from the carpdev's link-local address",
        )


def _use_vmac(st: State, d: _Draft, k: Node, kw: str) -> None:
    d.carp["vmac"] = True
    st.say(
        "note",
        k,
        f'the macvlan is named "{d.inst.name}" (the [[carp]] name) with '
        "VRRP's MAC 00:00:5e:00:01:<vrid>",
    )


def _use_vmac_addr(st: State, d: _Draft, k: Node, kw: str) -> None:
    st.say("not translated", k, "carpd's macvlan always has VRRP's MAC")


def _garp_refresh(st: State, d: _Draft, k: Node, kw: str) -> None:
    secs = number(k, 0)
    if secs is None or not 0 <= secs <= 86400:
        st.say("not translated", k, "not seconds in 0-86400")
    else:
        d.carp["garp_refresh"] = num(secs)


# -- authentication, trackers, notify ---------------------------------------------------


def _authentication(st: State, d: _Draft, k: Node, kw: str) -> None:
    kids = {c.keyword: c for c in k.children or ()}
    auth = kids.get("auth_type")
    what = auth.args[0] if auth is not None and auth.args else "PASS"
    if st.to == "carp":
        where = kids.get("auth_pass")
        source = (
            f"the auth_pass of {st.where(where)}"
            if where is not None and what == "PASS"
            else "a new password"
        )
        st.say(
            "note",
            k,
            f"passfile {d.inst.name}.pass (beside carpd.toml): write "
            f"{source} in it (at most 19 characters), the same on every node; CARP "
            "signs every advert with it (HMAC-SHA1)",
            keyword="authentication",
        )
        return
    st.say(
        "not translated",
        k,
        f"{what}: VRRPv3 has no authentication (carpd and "
        "keepalived alike); --to carp signs the adverts with a password",
        keyword="authentication",
    )


def _track(st: State, d: _Draft, k: Node, kw: str) -> None:
    track_block(st, k, ("vhids", d.inst.name), d.owner, d.inst)


def _notify(st: State, d: _Draft, k: Node, kw: str) -> None:
    notify(st, k, ("vhid", d.inst.name), d.owner, d.inst.priority, d.inst.kname)


def _read_elsewhere(st: State, d: _Draft, k: Node, kw: str) -> None:
    """Read by _start (virtual_router_id, interface), or nothing to do."""


_Setting = Callable[[State, _Draft, Node, str], None]
_SETTINGS: dict[str, _Setting] = {
    "virtual_router_id": _read_elsewhere,
    "interface": _read_elsewhere,
    "no_virtual_ipaddress": _read_elsewhere,
    "priority": _priority,
    "advert_int": _advert_int,
    "version": _version,
    "state": _state,
    "nopreempt": _preempt,
    "preempt": _preempt,
    "accept": _accept,
    "no_accept": _accept,
    "strict_mode": _strict_mode,
    "virtual_ipaddress": _virtual_ipaddress,
    "virtual_ipaddress_excluded": _virtual_ipaddress,
    "unicast_peer": _unicast_peer,
    "unicast_src_ip": _srcip,
    "use_vmac": _use_vmac,
    "use_vmac_addr": _use_vmac_addr,
    "garp_master_refresh": _garp_refresh,
    "authentication": _authentication,
    **dict.fromkeys(TRACK_BLOCKS, _track),
    **dict.fromkeys([*NOTIFY, "notify"], _notify),
}
