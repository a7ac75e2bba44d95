"""keepalived.conf (as carpd.importer.parse reads it) to a carpd.toml and a report.

What keepalived does, as its sources say (keepalived 2.3: vrrp_parser.c, vrrp_track.c,
vrrp_ipaddress.c, vrrp_notify.c, trackers/track_file.c), and what it becomes here:

- ``vrrp_instance`` -> ``[[carp]]``. VRRPv3 (``protocol = "vrrp3"``) by default, so a
  converted node goes on electing with a keepalived node; keepalived's default is
  VRRPv2 (``vrrp_version 2``), which carpd does not speak: the output is VRRPv3 anyway
  and the report says the keepalived peers need ``vrrp_version 3`` (or the whole cluster
  ``--to carp``). ``priority`` stays (255, the address owner, becomes 254); keepalived's
  defaults are written out: ``advbase`` (advert_int 1), ``preempt = true`` (keepalived
  preempts unless ``nopreempt``), ``accept`` (on unless ``vrrp_strict``/``no_accept``).
- A bare virtual address is /32 (/128), on the instance's interface; one of the other
  family is ignored, as keepalived ignores it ("address family must match").
- Trackers (``track_script``, ``track_interface``, ``track_file``, ``track_process``) ->
  ``[[track]]`` scoped with ``vhids`` (in an instance) or ``groups`` (in a sync group),
  one per tracked object and weight. keepalived's weights: W > 0 adds W to the priority
  while the object is up, W < 0 subtracts -W while it is down, 0 puts the instance in
  FAULT while it is down; the effective priority is kept in 1..254. carpd's weight is
  a demotion while down (VRRPv3: priority - demotion, at least 1). So W > 0 becomes
  ``priority + W`` and a tracker of weight W, W < 0 a tracker of weight -W (both exact
  while the priority stays under 254), and 0 a tracker of the default weight 2^20:
  priority 1, which still advertises and stays MASTER when no other node is up, where
  keepalived's FAULT stops advertising and removes the addresses (reported).
  keepalived's rise/fall/interval/timeout defaults (1, 1, 1 s, the interval) are
  written out: carpd's differ.
- ``notify_master`` -> an ``[[action]]`` on master; ``notify_backup``, ``notify_fault``
  and ``notify_stop`` -> actions on backup that run only for the state keepalived ran
  them for (``CARP_STATE`` BACKUP, INIT); ``notify`` -> an action that runs the script
  with keepalived's arguments: ``INSTANCE|GROUP NAME MASTER|BACKUP|FAULT PRIORITY``.
- ``--to carp``: ``protocol = "carp"``, ``advskew = 254 - priority`` (priority 1..254
  to advskew 253..0: the order of every node's priorities is kept, with no clipping),
  ``advbase`` the advert interval rounded up to whole seconds, a ``passfile``.
"""

from __future__ import annotations

import ipaddress
import math
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal

from carpd.importer.parse import Node
from carpd.importer.report import Kind, Report
from carpd.importer.toml_out import Document, Table, Value

Target = Literal["vrrp3", "carp"]
PRIO_MAX = 254  # keepalived keeps the effective priority in 1..254 (255: the owner)
FAULT = "fault"  # a weight 0: keepalived's FAULT; here carpd's default weight (2^20)
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")

# Statements with no equivalent, and what to say about them.
_TOP_NOT: dict[str, str] = {
    "virtual_server": "LVS load balancing: carpd has none ([[pool]] shares one address "
    "between nodes another way; run ipvsadm or keepalived's checker apart)",
    "virtual_server_group": "LVS load balancing: carpd has none",
    "static_ipaddress": "static addresses: configure them with the system's network configuration",
    "static_routes": "static routes: configure them with the system's network configuration",
    "static_rules": "static rules: configure them with the system's network configuration",
    "bfd_instance": "keepalived's own BFD: carpd's [[track]] kind bfd reads BIRD or FRR",
    "linkbeat_interfaces": "carpd watches links through netlink",
    "garp_group": "carpd announces on takeover ([global] garp_refresh repeats it)",
    "net_namespace": "carpd runs in the namespace it is started in",
    "net_namespace_ipvs": "LVS: carpd has none",
    "instance": "carpd has no instance name",
    "use_pid_dir": "carpd writes no pid file",
    "child_wait_time": "no equivalent",
}
_GLOBAL_NOT: dict[str, str] = {
    "notification_email": "SMTP alerts: carpd sends no mail (carpctl events, /metrics)",
    "notification_email_from": "SMTP alerts: carpd sends no mail (carpctl events, /metrics)",
    "smtp_server": "SMTP alerts: carpd sends no mail (carpctl events, /metrics)",
    "smtp_helo_name": "SMTP alerts: carpd sends no mail",
    "smtp_connect_timeout": "SMTP alerts: carpd sends no mail",
    "smtp_alert": "SMTP alerts: carpd sends no mail",
    "smtp_alert_vrrp": "SMTP alerts: carpd sends no mail",
    "smtp_alert_checker": "SMTP alerts: carpd sends no mail",
    "enable_snmp_vrrp": "SNMP: carpd has /metrics (Prometheus) instead",
    "enable_snmp_keepalived": "SNMP: carpd has /metrics (Prometheus) instead",
    "enable_snmp_rfcv2": "SNMP: carpd has /metrics (Prometheus) instead",
    "enable_snmp_rfcv3": "SNMP: carpd has /metrics (Prometheus) instead",
    "enable_snmp_checker": "SNMP: carpd has /metrics (Prometheus) instead",
    "enable_traps": "SNMP: carpd has /metrics (Prometheus) instead",
    "snmp_socket": "SNMP: carpd has /metrics (Prometheus) instead",
    "script_user": "carpd runs [[track]] scripts and [[action]]s as its own user (root)",
    "enable_script_security": "carpd has no such check of who may write the scripts",
    "notify_fifo": "carpctl events streams every transition as JSON lines",
    "vrrp_notify_fifo": "carpctl events streams every transition as JSON lines",
    "vrrp_mcast_group4": "carpd sends to 224.0.0.18 (VRRP's group)",
    "vrrp_mcast_group6": "carpd sends to ff02::12 (VRRP's group)",
    "vrrp_garp_master_delay": "carpd announces once on taking over ([global] garp_refresh "
    "repeats it)",
    "vrrp_garp_master_repeat": "carpd announces once on taking over",
    "vrrp_garp_master_refresh_repeat": "carpd announces once per refresh",
    "vrrp_garp_lower_prio_delay": "carpd announces once on taking over",
    "vrrp_garp_lower_prio_repeat": "carpd announces once on taking over",
    "vrrp_garp_interval": "carpd paces its own announcements",
    "vrrp_gna_interval": "carpd paces its own announcements",
    "vrrp_iptables": "carpd keeps its own nftables table only for accept = false",
    "vrrp_ipsets": "carpd keeps its own nftables table only for accept = false",
    "nftables": "carpd keeps its own nftables table only for accept = false",
    "checker_rt_priority": "LVS checkers: carpd has none",
    "lvs_flush": "LVS: carpd has none",
    "lvs_sync_daemon": "LVS: carpd has none",
    "lvs_timeouts": "LVS: carpd has none",
}
_INSTANCE_NOT: dict[str, str] = {
    "preempt_delay": "carpd has no preempt delay; its start-up demotion holds a starting "
    "node back until its service checks have run once",
    "garp_master_delay": "carpd announces once on taking over (garp_refresh repeats it)",
    "garp_master_repeat": "carpd announces once on taking over",
    "garp_master_refresh_repeat": "carpd announces once per refresh",
    "garp_lower_prio_delay": "carpd announces once on taking over",
    "garp_lower_prio_repeat": "carpd announces once on taking over",
    "smtp_alert": "SMTP alerts: carpd sends no mail",
    "virtual_routes": "routes that follow the role: use an [[action]] (or [[follow]])",
    "virtual_rules": "rules that follow the role: use an [[action]]",
    "lvs_sync_daemon_interface": "LVS: carpd has none",
    "mcast_dst_ip": "carpd sends to VRRP's own group",
    "track_bfd": "keepalived's own BFD: carpd's [[track]] kind bfd reads BIRD or FRR",
    "vmac_xmit_base": "carpd sends the adverts of a vmac vhid as it always does "
    "(docs/addresses.md)",
    "use_ipvlan": "carpd's virtual MAC is a macvlan (vmac = true)",
    "unicast_ttl": "carpd sends unicast adverts with TTL 255",
    "debug": "carpd's [global] log_level is node-wide",
    "notify_deleted": "carpd has no DELETED state",
    "notify_master_rx_lower_pri": "no equivalent",
    "notify_priority_changes": "no equivalent",
    "promote_secondaries": "no equivalent",
    "dont_track_primary": "carpd always watches its carpdev's link (a lost link: INIT "
    "and a demotion)",
    "skip_check_adv_addr": "no equivalent",
    "native_ipv6": "no equivalent",
    "lower_prio_no_advert": "no equivalent",
    "higher_prio_send_advert": "no equivalent",
    "kernel_rx_buf_size": "no equivalent",
    "linkbeat_use_polling": "carpd watches links through netlink",
    "vrf": "carpd runs the vhid in the namespace it is started in",
}
_SETTING_ALIASES = {"mcast_src_ip": "unicast_src_ip"}


@dataclass
class _Script:
    node: Node
    argv: list[str]
    interval: float = 1.0
    timeout: float = 0.0  # 0: the interval, as keepalived
    weight: int = 0
    reverse: bool = False
    rise: int = 1
    fall: int = 1


@dataclass
class _Watched:
    """A track_file or vrrp_track_process: what it watches, and its default weight."""

    node: Node
    target: str | None
    weight: int
    extra: list[tuple[Node, str]] = field(default_factory=list)


@dataclass
class _Use:
    """One tracked object used by an instance or a sync group, with its weight."""

    kind: Literal["script", "interface", "file", "process"]
    ref: str
    weight: int | None  # None: FAULT
    node: Node
    scope: tuple[Literal["vhids", "groups"], str]
    owner: str  # the instance or group, for the report


@dataclass
class _Instance:
    node: Node
    kname: str
    name: str
    carp: dict[str, Value]
    priority: int
    version: int
    version_from: str
    group: str | None = None


@dataclass
class _Group:
    node: Node
    kname: str
    name: str
    members: list[str]
    tracking_weight: bool = False


class _Names:
    """carpd names: 1-15 of letters, digits, '.', '_', '-', unique in their table."""

    def __init__(self) -> None:
        self.taken: dict[str, set[str]] = {}

    def take(self, table: str, wanted: str) -> str:
        base = _SAFE.sub("-", wanted)[:15] or table
        taken = self.taken.setdefault(table, set())
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base[: 15 - len(str(n)) - 1]}-{n}"
        taken.add(name)
        return name


@dataclass
class Translation:
    document: Document
    report: Report


def translate(nodes: Sequence[Node], source: Path, *, to: Target = "vrrp3") -> Translation:
    """carpd.toml for keepalived's statements read from ``source`` (the file imported,
    for the report's paths and the header), and what could not be carried over."""
    return _Translator(source, to).run(nodes)


class _Translator:
    def __init__(self, source: Path, to: Target) -> None:
        self.source, self.to = source, to
        self.report = Report(source.parent)
        self.names = _Names()
        self.glob: dict[str, Value] = {}
        self.glob_node: Node | None = None
        self.version = 2  # keepalived's default
        self.version_node: Node | None = None
        self.strict: Node | None = None
        self.default_interface = "eth0"
        self.scripts: dict[str, _Script] = {}
        self.files: dict[str, _Watched] = {}
        self.processes: dict[str, _Watched] = {}
        self.groups: dict[str, _Group] = {}
        self.member_of: dict[str, str] = {}
        self.instances: list[_Instance] = []
        self.uses: list[_Use] = []
        self.actions: list[Table] = []
        # [[action]]s of notify whose last argument is the priority, known at the end
        self.pending_priority: list[tuple[dict[str, Value], str, int]] = []
        self.said: set[str] = set()  # the vrrp_scripts whose own findings are reported

    def say(self, kind: Kind, node: Node, what: str, keyword: str | None = None) -> None:
        self.report.add(kind, node.file, node.line, keyword or _label(node), what)

    # -- the whole file -------------------------------------------------------------

    def run(self, nodes: Sequence[Node]) -> Translation:
        later: list[Node] = []
        for n in nodes:  # what instances refer to comes first, wherever it is
            if n.keyword == "global_defs":
                self.global_defs(n)
            elif n.keyword == "vrrp_script":
                self.vrrp_script(n)
            elif n.keyword in ("track_file", "vrrp_track_file"):
                self.track_file(n)
            elif n.keyword == "vrrp_track_process":
                self.track_process(n)
            else:
                later.append(n)
        for n in later:
            if n.keyword == "vrrp_sync_group":
                self.sync_group_members(n)
        for n in later:
            if n.keyword == "vrrp_instance":
                self.instance(n)
        known = {i.kname for i in self.instances}
        for n in later:
            if n.keyword == "vrrp_sync_group":
                self.sync_group(n, known)
            elif n.keyword == "vrrp_instance":
                pass
            elif n.keyword in _TOP_NOT:
                self.say("not translated", n, _TOP_NOT[n.keyword])
            else:
                self.say("not translated", n, "not known to the importer")
        self.versions()
        tracks = self.trackers()
        return Translation(self.document(tracks), self.report)

    def document(self, tracks: list[Table]) -> Document:
        doc = Document(
            header=[
                f"carpd.toml from {self.source.name} (carpd import keepalived"
                + (" --to carp" if self.to == "carp" else "")
                + ").",
                "What was not carried over, or changed, is in the report (stderr).",
            ]
        )
        if self.glob and self.glob_node is not None:
            where = f"{self.report.shown(self.glob_node.file)}:{self.glob_node.line}"
            doc.tables.append(Table("global", False, [f"{where} global_defs"], self.glob))
        for inst in self.instances:
            where = f"{self.report.shown(inst.node.file)}:{inst.node.line}"
            comments = [f"{where} vrrp_instance {inst.kname}"]
            doc.tables.append(Table("carp", True, comments, inst.carp))
        doc.tables += tracks + self.actions
        return doc

    # -- global_defs ----------------------------------------------------------------

    def global_defs(self, node: Node) -> None:
        self.glob_node = self.glob_node or node
        for k in node.children or ():
            kw = k.keyword
            if kw == "vrrp_version":
                v = _int(k, 0)
                if v in (2, 3):
                    self.version, self.version_node = v, k
                else:
                    self.say("not translated", k, "not 2 or 3")
            elif kw == "vrrp_strict":
                self.strict = k
                self.say(
                    "changed",
                    k,
                    "accept = false on every vhid (keepalived's no_accept); vrrp_strict's "
                    "other refusals (authentication, unicast, vrrp_version 2) are not "
                    "checked by carpd",
                )
            elif kw == "router_id":
                name = k.args[0] if k.args else ""
                if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", name):
                    self.glob["node_name"] = name
                    self.say("note", k, "[global] node_name: the name status shows")
                else:
                    self.say("not translated", k, "not a name carpd takes for node_name")
            elif kw == "vrrp_garp_master_refresh":
                secs = _number(k, 0)
                if secs is not None and 0 <= secs <= 86400:
                    self.glob["garp_refresh"] = _num(secs)
                else:
                    self.say("not translated", k, "not a number of seconds in 0-86400")
            elif kw == "vrrp_rt_priority":
                prio = _int(k, 0)
                if prio is not None and 1 <= prio <= 99:
                    self.glob["realtime_priority"] = prio
                    self.say(
                        "note",
                        k,
                        "[global] realtime_priority: carpd's one process runs SCHED_FIFO "
                        "(needs CAP_SYS_NICE)",
                    )
                else:
                    self.say("not translated", k, "not a priority in 1-99")
            elif kw == "default_interface":
                if k.args:
                    self.default_interface = k.args[0]
                    self.say("note", k, "used for the instances without interface")
            elif kw in _GLOBAL_NOT:
                self.say("not translated", k, _GLOBAL_NOT[kw])
            else:
                self.say("not translated", k, "not known to the importer")

    # -- what instances track -------------------------------------------------------

    def vrrp_script(self, node: Node) -> None:
        name = node.args[0] if node.args else ""
        s = _Script(node, [])
        for k in node.children or ():
            kw = k.keyword
            if kw == "script":
                s.argv = _command(k.args)
            elif kw in ("interval", "timeout"):
                secs = _number(k, 0)
                if secs is None or secs < 0:
                    self.say("not translated", k, "not a number of seconds")
                    continue
                setattr(s, kw, float(secs) or 1.0)  # 0 is 1 s in keepalived
            elif kw in ("rise", "fall"):
                n = _int(k, 0)
                if n is None or n < 1:
                    self.say("not translated", k, "not a count of 1 or more")
                    continue
                setattr(s, kw, n)
            elif kw == "weight":
                w = _int(k, 0)
                if w is None or not -253 <= w <= 253:
                    self.say("not translated", k, "not a weight in -253..253")
                    continue
                s.weight = w
                s.reverse = k.args[1:2] == ("reverse",)
            elif kw == "user":
                self.say("not translated", k, _GLOBAL_NOT["script_user"])
            elif kw == "init_fail":
                self.say("changed", k, "carpd's first result counts at once, pass or fail")
            else:
                self.say("not translated", k, "not known to the importer")
        if not s.argv:
            self.say("not translated", node, "no script: keepalived removes it too")
            return
        self.scripts[name] = s

    def track_file(self, node: Node) -> None:
        name = node.args[0] if node.args else ""
        w = _Watched(node, None, 1)  # keepalived's default weight for a file is 1
        for k in node.children or ():
            if k.keyword == "file" and k.args:
                w.target = k.args[0]
            elif k.keyword == "weight":
                n = _int(k, 0)
                if n is None or not -254 <= n <= 254:
                    self.say("not translated", k, "not a weight in -254..254")
                else:
                    w.weight = n
            elif k.keyword == "init_file":
                w.extra.append((k, "carpd does not create the file"))
            else:
                self.say("not translated", k, "not known to the importer")
        if w.target is None:
            self.say("not translated", node, "no file")
            return
        self.files[name] = w

    def track_process(self, node: Node) -> None:
        name = node.args[0] if node.args else ""
        w = _Watched(node, None, 0)
        for k in node.children or ():
            kw = k.keyword
            if kw == "process" and k.args:
                w.target = k.args[0]
                if len(k.args) > 1:
                    w.extra.append((k, "carpd matches the process name only, not its arguments"))
            elif kw == "weight":
                n = _int(k, 0)
                if n is None or not -254 <= n <= 254:
                    self.say("not translated", k, "not a weight in -254..254")
                else:
                    w.weight = n
                    if k.args[1:2] == ("reverse",):
                        w.extra.append((k, "carpd has no reverse weight"))
            elif kw == "quorum":
                if _int(k, 0) != 1:
                    w.extra.append((k, "carpd counts a process up while one runs"))
            elif kw in ("quorum_max", "param_match", "full_command"):
                w.extra.append((k, "carpd counts a process up while one with its name runs"))
            elif kw in ("delay", "terminate_delay", "fork_delay"):
                w.extra.append((k, "carpd reads /proc every second (rise 1, fall 1)"))
            else:
                self.say("not translated", k, "not known to the importer")
        if w.target is None:
            self.say("not translated", node, "no process")
            return
        if len(w.target) > 15 and "/" not in w.target:
            w.extra.append((node, "the kernel's name (comm) of a process is at most 15 characters"))
        self.processes[name] = w

    # -- sync groups ----------------------------------------------------------------

    def sync_group_members(self, node: Node) -> None:
        kname = node.args[0] if node.args else ""
        members: list[str] = []
        for k in node.children or ():
            if k.keyword == "group":
                members += [c.keyword for c in k.children or ()] + list(k.args)
        g = _Group(node, kname, self.names.take("group", kname), members)
        g.tracking_weight = any(
            k.keyword in ("sync_group_tracking_weight", "global_tracking")
            for k in node.children or ()
        )
        self.groups[kname] = g
        for m in members:
            self.member_of.setdefault(m, kname)

    def sync_group(self, node: Node, known: set[str]) -> None:
        g = self.groups[node.args[0] if node.args else ""]
        if g.name != g.kname:
            self.say(
                "note",
                node,
                f'the group is named "{g.name}" (carpd names: 1-15 of '
                "letters, digits, '.', '_', '-')",
            )
        present = [m for m in g.members if m in known]
        for m in g.members:
            if m not in known:
                self.say("not translated", node, f"member {m}: no such vrrp_instance here")
        if not present:
            return
        self.say(
            "changed",
            node,
            f'groups = ["{g.name}"] on {", ".join(present)}: a demotion (a lost link, a '
            "tracker of the group) moves them together, but a member that stops hearing "
            "its peer's adverts takes over alone (keepalived moves the whole group)",
        )
        for k in node.children or ():
            kw = k.keyword
            if kw == "group" or kw in ("sync_group_tracking_weight", "global_tracking"):
                continue
            if kw in ("track_script", "track_interface", "track_file", "track_process"):
                self.track_block(k, ("groups", g.name), f"vrrp_sync_group {g.kname}", None)
            elif kw.startswith("notify"):
                self.notify(k, ("group", g.name), f"sync group {g.kname}", 0, g.kname)
            elif kw == "smtp_alert":
                self.say("not translated", k, "SMTP alerts: carpd sends no mail")
            elif kw == "track_bfd":
                self.say("not translated", k, _INSTANCE_NOT["track_bfd"])
            else:
                self.say("not translated", k, "not known to the importer")

    # -- instances ------------------------------------------------------------------

    def instance(self, node: Node) -> None:
        kname = node.args[0] if node.args else ""
        kids = node.children or ()
        first = {k.keyword: k for k in reversed(kids)}  # the first of each
        vrid = first.get("virtual_router_id")
        vhid = _int(vrid, 0) if vrid is not None else None
        if vhid is None or not 1 <= vhid <= 255:
            why = "no virtual_router_id" if vrid is None else "virtual_router_id not 1-255"
            self.say("not translated", node, f"{why}: keepalived refuses the instance too")
            return
        name = self.names.take("carp", kname)
        if name != kname:
            self.say(
                "note",
                node,
                f"named \"{name}\" (carpd names: 1-15 of letters, digits, '.', '_', '-')",
            )
        carp: dict[str, Value] = {"name": name, "protocol": self.to, "vhid": vhid}
        iface = first.get("interface")
        if iface is not None and iface.args:
            carp["carpdev"] = iface.args[0]
        else:
            carp["carpdev"] = self.default_interface
            self.say(
                "note",
                node,
                f"no interface: keepalived's default_interface, {self.default_interface}",
            )
        origin = "vrrp_version" if self.version_node is not None else "keepalived's default"
        inst = _Instance(node, kname, name, carp, 100, self.version, origin)
        inst.group = self.member_of.get(kname)
        addresses: list[str] = []
        family: int | None = None
        owner = f"vrrp_instance {kname}"
        for k in kids:
            kw = _SETTING_ALIASES.get(k.keyword, k.keyword)
            if kw in ("virtual_router_id", "interface"):
                continue
            elif kw == "priority":
                p = _int(k, 0)
                if p is None or not 1 <= p <= 255:
                    self.say("not translated", k, "not 1-255: keepalived's default 100 is used")
                elif p == 255:
                    inst.priority = PRIO_MAX
                    self.say(
                        "changed",
                        k,
                        "255 (the address owner) is 254 in carpd: it "
                        "waits the skew time before taking over, and weights apply",
                    )
                else:
                    inst.priority = p
            elif kw == "advert_int":
                secs = _number(k, 0)
                if secs is None or secs <= 0:
                    self.say("not translated", k, "not a number of seconds")
                else:
                    carp["advbase"] = self.advbase(k, secs)
            elif kw == "version":
                v = _int(k, 0)
                if v in (2, 3):
                    inst.version, inst.version_from = v, "version"
                else:
                    self.say("not translated", k, "not 2 or 3")
            elif kw == "state":
                state = k.args[0] if k.args else ""
                self.say(
                    "note",
                    k,
                    f"{state}: a start hint; carpd starts every vhid as "
                    "BACKUP and priority and preempt decide who is MASTER",
                )
            elif kw == "nopreempt":
                carp["preempt"] = False
            elif kw == "preempt":
                carp["preempt"] = True
            elif kw in ("accept", "no_accept"):
                if self.to == "carp":
                    self.say("note", k, "a CARP MASTER always accepts on its addresses")
                else:
                    carp["accept"] = kw == "accept"
            elif kw == "strict_mode":
                on = not k.args or k.args[0] in ("on", "true", "yes")
                if on and self.to != "carp":
                    carp.setdefault("accept", False)
                    self.say(
                        "changed",
                        k,
                        "accept = false; strict mode's other refusals are not checked by carpd",
                    )
            elif kw in ("virtual_ipaddress", "virtual_ipaddress_excluded"):
                for a in k.children or ():
                    fam = self.address(a, carp, kw, addresses, family)
                    if fam is not None:
                        family = family or fam
            elif kw == "no_virtual_ipaddress":
                pass
            elif kw == "unicast_peer":
                peers = []
                for peer in k.children or ():
                    try:
                        peers.append(str(ipaddress.ip_address(peer.keyword)))
                    except ValueError:
                        self.say("not translated", peer, "not an address")
                        continue
                    if peer.args:
                        self.say(
                            "changed",
                            peer,
                            f"{' '.join(peer.args)}: carpd takes a peer's "
                            "adverts only with TTL 255 (peers_routed: any)",
                        )
                if peers:
                    carp["peers"] = peers
            elif kw == "unicast_src_ip":
                self.srcip(k, carp)
            elif kw == "use_vmac":
                carp["vmac"] = True
                self.say(
                    "note",
                    k,
                    f'the macvlan is named "{name}" (the [[carp]] name) with '
                    "VRRP's MAC 00:00:5e:00:01:<vrid>",
                )
            elif kw == "use_vmac_addr":
                self.say("not translated", k, "carpd's macvlan always has VRRP's MAC")
            elif kw == "garp_master_refresh":
                secs = _number(k, 0)
                if secs is None or not 0 <= secs <= 86400:
                    self.say("not translated", k, "not seconds in 0-86400")
                else:
                    carp["garp_refresh"] = _num(secs)
            elif kw == "authentication":
                self.authentication(k, inst)
            elif kw in ("track_script", "track_interface", "track_file", "track_process"):
                self.track_block(k, ("vhids", name), owner, inst)
            elif kw in _NOTIFY or kw == "notify":
                self.notify(k, ("vhid", name), owner, inst.priority, kname)
            elif kw in _INSTANCE_NOT:
                self.say("not translated", k, _INSTANCE_NOT[kw])
            else:
                self.say("not translated", k, "not known to the importer")
        if not addresses:
            self.say(
                "not translated", node, "no virtual address: carpd needs at least one (addresses)"
            )
            self.names.taken["carp"].discard(name)
            self.uses = [u for u in self.uses if u.scope != ("vhids", name)]
            self.actions = [a for a in self.actions if a.items.get("vhid") != name]
            return
        carp["addresses"] = addresses
        carp.setdefault("preempt", True)
        if self.to != "carp":
            accept = self.strict is None
            carp.setdefault("accept", accept)
        if inst.group is not None:
            carp["groups"] = [self.groups[inst.group].name]
        if self.to == "carp":
            carp["passfile"] = f"{name}.pass"
            if not any(k.keyword == "authentication" for k in kids):
                self.say(
                    "note",
                    node,
                    f"passfile {name}.pass (beside carpd.toml): write a "
                    "password of at most 19 characters in it, the same on every node",
                )
        self.instances.append(inst)

    def advbase(self, node: Node, secs: Decimal) -> Value:
        if self.to == "carp":
            whole = max(1, min(255, math.ceil(secs)))
            if whole != secs:
                self.say(
                    "changed",
                    node,
                    f"advbase = {whole}: CARP's adverts go every 1-255 whole seconds",
                )
            return whole
        if secs * 100 != int(secs * 100) or not 0.01 <= secs <= 40.95:
            cs = max(1, min(4095, math.ceil(secs * 100)))
            self.say(
                "changed",
                node,
                f"advbase = {_num(Decimal(cs) / 100)}: VRRPv3's "
                "interval is 0.01-40.95 s in steps of 0.01",
            )
            return _num(Decimal(cs) / 100)
        return _num(secs)

    def address(
        self,
        node: Node,
        carp: dict[str, Value],
        block: str,
        addresses: list[str],
        family: int | None,
    ) -> int | None:
        """Add one virtual_ipaddress line to ``addresses``: its family, or None."""
        text = node.keyword
        try:
            addr = ipaddress.ip_interface(text)
        except ValueError:
            self.say("not translated", node, "not an address[/prefix]", keyword=block)
            return None
        if family is not None and addr.version != family:
            self.say(
                "not translated",
                node,
                f"{text}: not the family of the instance's first "
                "address: keepalived ignores it too (give each family its own "
                "instance and VRID, docs/keepalived.md)",
                keyword=block,
            )
            return None
        args = list(node.args)
        opts: dict[str, str] = {}
        flags: list[str] = []
        while args:
            word = args.pop(0)
            if (
                word
                in (
                    "dev",
                    "label",
                    "scope",
                    "brd",
                    "broadcast",
                    "peer",
                    "preferred_lft",
                    "track_group",
                )
                and args
            ):
                opts[word] = args.pop(0)
            else:
                flags.append(word)
        dev = opts.pop("dev", None)
        if dev is not None and dev != carp["carpdev"]:
            self.say(
                "not translated",
                node,
                f"{text} dev {dev}: carpd puts a vhid's addresses "
                f"on its carpdev ({carp['carpdev']}); give {dev} a vhid of its own",
                keyword=block,
            )
            return None
        shown = str(addr) if "/" in text else f"{text}/{addr.network.prefixlen}"
        addresses.append(str(addr))
        if block == "virtual_ipaddress_excluded":
            self.say(
                "changed",
                node,
                f"{shown}: in addresses, so carpd advertises it; "
                "keepalived logs the address count of its adverts as wrong, and "
                "takes them",
                keyword=block,
            )
        if "/" not in text:
            self.say(
                "note", node, f"{shown}: keepalived's prefix for a bare address", keyword=block
            )
        if opts.get("scope", "global") != "global":
            self.say(
                "changed",
                node,
                f"{text} scope {opts['scope']}: carpd adds it with scope global",
                keyword=block,
            )
        opts.pop("scope", None)
        for k, v in opts.items():
            self.say("changed", node, f"{text} {k} {v}: not set by carpd", keyword=block)
        for f in flags:
            self.say("changed", node, f"{text} {f}: not set by carpd", keyword=block)
        return addr.version

    def srcip(self, node: Node, carp: dict[str, Value]) -> None:
        try:
            ip = ipaddress.ip_address(node.args[0] if node.args else "")
        except ValueError:
            self.say("not translated", node, "not an address")
            return
        if ip.version == 4:
            carp["srcip"] = str(ip)
        else:
            self.say(
                "not translated",
                node,
                "carpd sends IPv6 adverts from the carpdev's link-local address",
            )

    def authentication(self, node: Node, inst: _Instance) -> None:
        kids = {k.keyword: k for k in node.children or ()}
        auth = kids.get("auth_type")
        what = auth.args[0] if auth is not None and auth.args else "PASS"
        if self.to == "carp":
            where = kids.get("auth_pass")
            source = (
                f"the auth_pass of {self.report.shown(where.file)}:{where.line}"
                if where is not None and what == "PASS"
                else "a new password"
            )
            self.say(
                "note",
                node,
                f"passfile {inst.name}.pass (beside carpd.toml): write "
                f"{source} in it (at most 19 characters), the same on every node; CARP "
                "signs every advert with it (HMAC-SHA1)",
                keyword="authentication",
            )
            return
        self.say(
            "not translated",
            node,
            f"{what}: VRRPv3 has no authentication (carpd and "
            "keepalived alike); --to carp signs the adverts with a password",
            keyword="authentication",
        )

    # -- trackers -------------------------------------------------------------------

    def track_block(
        self,
        block: Node,
        scope: tuple[Literal["vhids", "groups"], str],
        owner: str,
        inst: _Instance | None,
    ) -> None:
        kind = block.keyword.removeprefix("track_")
        for k in block.children or ():
            ref = k.keyword
            args = list(k.args)
            default, known = self.tracked_default(kind, ref)
            if not known:
                self.say(
                    "not translated",
                    k,
                    f"{ref}: no such {_ROOT[kind]}: keepalived ignores it too",
                    keyword=block.keyword,
                )
                continue
            weight = default
            reverse = kind == "script" and self.scripts[ref].reverse
            if args[:1] == ["weight"]:
                try:
                    weight = int(args[1])
                except (IndexError, ValueError):
                    self.say(
                        "not translated",
                        k,
                        f"{ref}: weight without a number: keepalived ignores it too",
                        keyword=block.keyword,
                    )
                    continue
                weight = max(-253, min(253, weight)) if kind in ("script", "interface") else weight
                reverse = args[3:4] == ["reverse"]
            elif args:
                self.say(
                    "not translated",
                    k,
                    f"{ref} {' '.join(args)}: keepalived ignores it too",
                    keyword=block.keyword,
                )
                continue
            if reverse:
                self.say(
                    "not translated",
                    k,
                    f"{ref}: carpd has no reverse weight",
                    keyword=block.keyword,
                )
                continue
            if inst is not None and inst.group is not None:
                g = self.groups[inst.group]
                if not g.tracking_weight and weight:
                    if kind in ("script", "process") or (kind == "file" and args):
                        self.say(
                            "not translated",
                            k,
                            f"{ref}: a weighted tracker of an instance "
                            "in a sync group: keepalived ignores it too (unless "
                            "sync_group_tracking_weight)",
                            keyword=block.keyword,
                        )
                        continue
                    weight = 0
            if kind == "file" and weight:
                self.say(
                    "not translated",
                    k,
                    f"{ref}: keepalived adds the file's number times "
                    f"{weight} to the priority; carpd's file tracker is up on 0 and down "
                    "on anything else (weight 0 only)",
                    keyword=block.keyword,
                )
                continue
            self.uses.append(
                _Use(kind, ref, weight if weight else None, k, scope, owner)  # type: ignore[arg-type]
            )

    def tracked_default(self, kind: str, ref: str) -> tuple[int, bool]:
        if kind == "script":
            s = self.scripts.get(ref)
            return (s.weight, True) if s is not None else (0, False)
        if kind == "file":
            f = self.files.get(ref)
            return (f.weight, True) if f is not None else (0, False)
        if kind == "process":
            p = self.processes.get(ref)
            return (p.weight, True) if p is not None else (0, False)
        return 0, True  # an interface: weight 0 unless given

    def trackers(self) -> list[Table]:
        """One [[track]] per tracked object and weight, scoped to what uses it; the
        positive weights added to the priorities."""
        grouped: dict[tuple[str, str, int | None], list[_Use]] = {}
        for u in self.uses:
            grouped.setdefault((u.kind, u.ref, u.weight), []).append(u)
        per_object: dict[tuple[str, str], int] = {}
        for kind, ref, _ in grouped:
            per_object[kind, ref] = per_object.get((kind, ref), 0) + 1
        by_name = {i.name: i for i in self.instances}
        bonus: dict[str, int] = {i.name: 0 for i in self.instances}
        tables: list[Table] = []
        for (kind, ref, weight), uses in grouped.items():
            wanted = ref if per_object[kind, ref] == 1 else f"{ref}-{weight or 0}"
            name = self.names.take("track", wanted)
            items: dict[str, Value] = {"name": name, "kind": kind}
            comments = [
                f"{self.report.shown(u.node.file)}:{u.node.line} track_{kind} {ref} of {u.owner}"
                for u in uses
            ]
            items.update(self.target(kind, ref))
            root: _Script | _Watched | None = (
                self.scripts.get(ref)
                if kind == "script"
                else self.files.get(ref)
                if kind == "file"
                else self.processes.get(ref)
                if kind == "process"
                else None
            )
            if root is not None:
                comments.insert(
                    0, f"{self.report.shown(root.node.file)}:{root.node.line} {_ROOT[kind]} {ref}"
                )
            if weight is None:
                comments.append(
                    "keepalived weight 0 (FAULT): the default weight 2^20, priority 1 while down"
                )
            else:
                items["weight"] = abs(weight)
            vhids = sorted({u.scope[1] for u in uses if u.scope[0] == "vhids"})
            groups = sorted({u.scope[1] for u in uses if u.scope[0] == "groups"})
            if vhids:
                items["vhids"] = vhids
            if groups:
                items["groups"] = groups
            tables.append(Table("track", True, comments, items))
            for u in uses:
                self.say_tracker(u, kind, ref)
                if weight is not None and weight > 0:
                    members = (
                        [u.scope[1]]
                        if u.scope[0] == "vhids"
                        else [
                            i.name
                            for i in self.instances
                            if i.group is not None and self.groups[i.group].name == u.scope[1]
                        ]
                    )
                    for m in members:
                        if m in bonus:
                            bonus[m] += weight
        for inst in self.instances:
            self.priority(inst, bonus.get(inst.name, 0), by_name)
        return tables

    def target(self, kind: str, ref: str) -> dict[str, Value]:
        if kind == "script":
            s = self.scripts[ref]
            timeout = s.timeout or s.interval
            interval = max(0.1, s.interval)
            said = ref in self.said
            self.said.add(ref)
            if interval != s.interval and not said:
                self.say(
                    "changed",
                    s.node,
                    f"{ref}: interval {_num(Decimal(str(s.interval)))}: "
                    "carpd probes every 0.1 s at most",
                    keyword="vrrp_script",
                )
            if timeout > interval:
                timeout = interval
            if s.timeout > interval and not said:
                self.say(
                    "changed",
                    s.node,
                    f"{ref}: timeout {_num(Decimal(str(s.timeout)))} is "
                    f"the interval, {_num(Decimal(str(interval)))}: a carpd probe ends "
                    "before the next one starts",
                    keyword="vrrp_script",
                )
            return {
                "targets": shlex.join(s.argv),
                "interval": interval,
                "timeout": timeout,
                "rise": s.rise,
                "fall": s.fall,
            }
        if kind == "interface":
            return {"targets": ref, "interval": 0.1, "timeout": 0.1, "rise": 1, "fall": 1}
        if kind == "file":
            f = self.files[ref]
            return {"targets": str(f.target), "interval": 1.0, "rise": 1, "fall": 1}
        p = self.processes[ref]
        return {"targets": str(p.target), "interval": 1.0, "rise": 1, "fall": 1}

    def say_tracker(self, u: _Use, kind: str, ref: str) -> None:
        key = f"track_{kind}"
        if u.weight is None:
            self.say(
                "changed",
                u.node,
                f"{ref}: weight 0: keepalived puts {u.owner} in FAULT "
                "(no adverts, no addresses) while it is down; carpd demotes it to "
                "priority 1: it still advertises, and stays MASTER when no other node "
                "is up",
                keyword=key,
            )
        if kind == "interface":
            self.say(
                "note",
                u.node,
                f"{ref}: read every 0.1 s (keepalived: at once, from netlink)",
                keyword=key,
            )
        watched = self.files.get(ref) if kind == "file" else self.processes.get(ref)
        if kind in ("file", "process") and watched is not None:
            for node, what in watched.extra:
                self.say("changed", node, f"{ref}: {what}", keyword=_label(node))
            watched.extra = []
        if self.to == "carp" and u.weight is not None:
            self.say(
                "changed",
                u.node,
                f"{ref}: weight {u.weight}: in CARP a demotion is "
                "compared before advskew: while it is down this node loses to every node "
                "that is less demoted, whatever their priorities",
                keyword=key,
            )

    def priority(self, inst: _Instance, bonus: int, by_name: dict[str, _Instance]) -> None:
        total = inst.priority + bonus
        if total > PRIO_MAX:
            self.say(
                "changed",
                inst.node,
                f"priority {inst.priority} + {bonus} of positive "
                f"weights is over 254: {PRIO_MAX}; keepalived caps the sum after the "
                "failed trackers' weights are taken, carpd before",
                keyword="priority",
            )
            total = PRIO_MAX
        elif bonus:
            self.say(
                "note",
                inst.node,
                f"{total}: priority {inst.priority} and {bonus} of "
                "positive weights while every tracker is up (each tracker takes its "
                "weight back while it is down)",
                keyword="priority",
            )
        if self.to == "carp":
            inst.carp["advskew"] = PRIO_MAX - total
        else:
            inst.carp["priority"] = total
        for items, target, _ in self.pending_priority:
            if target == inst.name:
                items["shell"] = f"{items['shell']}{total}"
        inst.carp.setdefault("advbase", 1)  # keepalived's advert_int default
        ordered = {k: inst.carp[k] for k in _ORDER if k in inst.carp}
        inst.carp.clear()
        inst.carp.update(ordered)
        if self.to == "carp":
            self.say(
                "note",
                inst.node,
                f"advskew = {PRIO_MAX - total}: 254 - priority "
                f"({total}) keeps the order of every node's priorities",
                keyword="priority",
            )

    def versions(self) -> None:
        if self.to == "carp":
            return
        for inst in self.instances:
            if inst.version != 2:
                continue
            self.say(
                "changed",
                inst.node,
                f"{inst.kname} speaks VRRPv2 ({inst.version_from}); "
                "carpd speaks VRRPv3: set vrrp_version 3 on the keepalived nodes "
                "(global_defs) before this node joins them, or convert the whole "
                "cluster with --to carp",
                keyword="vrrp_version",
            )

    # -- notify ---------------------------------------------------------------------

    def notify(
        self,
        node: Node,
        target: tuple[Literal["vhid", "group"], str],
        owner: str,
        priority: int,
        kname: str,
    ) -> None:
        kw = node.keyword
        argv = _command(node.args)
        if not argv:
            self.say("not translated", node, "no script")
            return
        phase = _NOTIFY.get(kw)
        suffix = kw.removeprefix("notify_")
        name = self.names.take("action", f"{target[1][: 14 - len(suffix)]}-{suffix}")
        items: dict[str, Value] = {"name": name, target[0]: target[1]}
        if kw == "notify_master":
            items.update(on=["master"], run=argv)
        elif kw == "notify":
            kind = "GROUP" if target[0] == "group" else "INSTANCE"
            prio = priority if target[0] == "vhid" else 0
            items["on"] = ["master", "backup"]
            items["shell"] = (
                'case "$CARP_STATE" in INIT) s=FAULT ;; *) s="$CARP_STATE" ;; esac; '
                f'exec {shlex.join(argv)} {kind} {shlex.quote(kname)} "$s" '
            )
            if target[0] == "group":
                items["shell"] = f"{items['shell']}0"
            else:
                self.pending_priority.append((items, target[1], prio))
            passed = "0" if target[0] == "group" else "the priority with every tracker up"
            self.say(
                "changed",
                node,
                f"run with {kind} {kname} MASTER|BACKUP|FAULT and {passed}, keepalived's "
                "order (keepalived passes the current priority); STOP is never passed (a "
                "stopping MASTER passes FAULT, a BACKUP nothing)",
            )
        elif phase is not None:
            items["on"] = ["backup"]
            items["shell"] = f'[ "$CARP_STATE" = {phase} ] || exit 0; exec {shlex.join(argv)}'
            if kw == "notify_backup":
                self.say(
                    "note",
                    node,
                    "runs on leaving MASTER and once at start (CARP_STATE "
                    "BACKUP), not when a vhid comes back from INIT",
                )
            else:
                self.say(
                    "changed",
                    node,
                    "runs when a MASTER goes to INIT (its link lost, "
                    "carpctl down, carpd stopping); a BACKUP that loses its link runs "
                    "nothing",
                )
        else:
            self.say("not translated", node, _INSTANCE_NOT.get(kw, "not known to the importer"))
            self.names.taken["action"].discard(name)
            return
        where = f"{self.report.shown(node.file)}:{node.line}"
        self.actions.append(Table("action", True, [f"{where} {kw} of {owner}"], items))


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
_NOTIFY = {
    "notify_master": "MASTER",
    "notify_backup": "BACKUP",
    "notify_fault": "INIT",
    "notify_stop": "INIT",
}
_ROOT = {
    "script": "vrrp_script",
    "file": "track_file",
    "process": "vrrp_track_process",
    "interface": "interface",
}


def _label(node: Node) -> str:
    """How the report names a statement: its keyword, and a block's name."""
    if node.children is not None and node.args:
        return f"{node.keyword} {node.args[0]}"
    return node.keyword


def _command(args: Iterable[str]) -> list[str]:
    """A keepalived script command line (quoted as one word or given as several) as
    argv, split as a shell would (keepalived splits it the same way, without one)."""
    try:
        return shlex.split(" ".join(args))
    except ValueError:
        return list(args)


def _number(node: Node, i: int) -> Decimal | None:
    try:
        d = Decimal(node.args[i])
    except (IndexError, InvalidOperation):
        return None
    return d if d.is_finite() else None


def _int(node: Node, i: int) -> int | None:
    try:
        return int(node.args[i], 10)
    except (IndexError, ValueError):
        return None


def _num(d: Decimal) -> int | float:
    return int(d) if d == d.to_integral_value() else float(d)
