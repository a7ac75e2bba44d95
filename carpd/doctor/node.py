"""The node-local checks: nftables, sysctls, bridges, addresses, conntrackd.conf.

Each check reads the node through ``Host`` (the real one reads /proc/sys, /sys/class/net,
``nft -j list ruleset`` and one netlink dump of the addresses, all of the network
namespace it runs in; a test gives a stand-in) and returns findings.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from carpd.config import CarpConfig, Config
from carpd.doctor.report import Finding
from carpd.doctor.ruleset import CARP, Outcome, Packet, Ruleset, evaluate, parse
from carpd.linux import ifaddrs

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
GROUPS: dict[int, IPAddress] = {
    4: ipaddress.ip_address("224.0.0.18"),
    6: ipaddress.ip_address("ff02::12"),
}
NFT_TIMEOUT = 10.0  # seconds: nft lists a ruleset in milliseconds
PROC = Path("/proc/sys/net")
SYS_NET = Path("/sys/class/net")
KEEP = "and the same in /etc/sysctl.d/ to keep it"


class Host:
    """The node, read (never changed)."""

    def sysctl(self, name: str) -> str | None:
        """``net.ipv4.conf.eth0.rp_filter`` (without ``net.``'s dots in an interface
        name: give the parts), or None if there is no such file."""
        try:
            return (PROC / name).read_text().strip()
        except OSError:
            return None

    def ruleset(self) -> Ruleset | str:
        """The nftables ruleset, or why it cannot be read."""
        nft = shutil.which("nft") or "/usr/sbin/nft"
        if not Path(nft).exists():
            return "nft is not installed (Debian package nftables): no nftables rules read"
        try:
            r = subprocess.run(
                [nft, "-j", "list", "ruleset"],
                capture_output=True,
                text=True,
                timeout=NFT_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"nft -j list ruleset: {e}"
        if r.returncode != 0:
            return f"nft -j list ruleset: {r.stderr.strip() or f'exit {r.returncode}'}"
        try:
            return parse(json.loads(r.stdout or '{"nftables": []}'))
        except (ValueError, KeyError, TypeError) as e:
            return f"nft -j list ruleset: output not understood ({e})"

    def addresses(self) -> dict[str, list[ifaddrs.IPInterface]]:
        """Every address of this namespace with its prefix, by interface name."""
        names = {index: name for name, index in ifaddrs.interfaces().items()}
        return {names.get(i, str(i)): found for i, found in ifaddrs.prefixed().items()}

    def link_file(self, ifname: str, rel: str) -> str | None:
        """/sys/class/net/IFNAME/REL, or None."""
        try:
            return (SYS_NET / ifname / rel).read_text().strip()
        except OSError:
            return None

    def ports(self, bridge: str) -> list[str]:
        """The ports of a Linux bridge (/sys/class/net/BRIDGE/brif)."""
        try:
            return sorted(p.name for p in (SYS_NET / bridge / "brif").iterdir())
        except OSError:
            return []

    def master(self, ifname: str) -> str | None:
        path = SYS_NET / ifname / "master"
        return path.resolve().name if path.is_symlink() else None

    def read(self, path: Path) -> str | None:
        try:
            return path.read_text()
        except OSError:
            return None


def sysctl_name(*parts: str) -> str:
    """As sysctl(8) takes it: dots, or slashes when an interface name has a dot."""
    return ("/" if any("." in p for p in parts) else ".").join(("net", *parts))


def carpdevs(config: Config) -> dict[str, list[CarpConfig]]:
    found: dict[str, list[CarpConfig]] = {}
    for c in config.carp:
        found.setdefault(c.carpdev, []).append(c)
    return found


def own_addresses(config: Config, host: Host) -> dict[str, list[IPAddress]]:
    """This node's own addresses by interface: never a virtual one, never link-local."""
    vips = {a.ip for c in config.carp for a in c.addresses}
    return {
        n: [a.ip for a in found if a.ip not in vips and not a.ip.is_link_local]
        for n, found in host.addresses().items()
    }


def _first(addresses: list[IPAddress], family: int) -> IPAddress | None:
    return next((a for a in addresses if a.version == family), None)


def _families(vhids: list[CarpConfig]) -> list[int]:
    return sorted({a.ip.version for c in vhids for a in c.addresses})


# -- 1 and 2: nftables and the adverts ----------------------------------------------------


def carp_filter(
    config: Config, ruleset: Ruleset | str, own: Mapping[str, list[IPAddress]]
) -> Iterator[Finding]:
    """Adverts in and out of each carpdev (multicast, or unicast from each of ``peers``)
    through prerouting, input, output and postrouting's filter chains."""
    if isinstance(ruleset, str):
        yield Finding("carp-filter", None, None, ruleset)
        return
    for dev, vhids in carpdevs(config).items():
        bad = False
        doubts: list[str] = []
        for family in _families(vhids):
            src = _first(list(own.get(dev, [])), family)
            peers = [p for c in vhids for p in c.peers if p.version == family]
            inbound = [
                Packet(family, CARP, iif=dev, saddr=p, daddr=src, pkttype="host") for p in peers
            ]
            if not peers:
                inbound = [Packet(family, CARP, iif=dev, daddr=GROUPS[family], pkttype="multicast")]
            out = Packet(
                family, CARP, oif=dev, saddr=src, daddr=GROUPS[family], pkttype="multicast"
            )
            runs = [(p, h, "into", "iifname") for p in inbound for h in ("prerouting", "input")]
            runs += [(out, h, "out of", "oifname") for h in ("output", "postrouting")]
            for packet, hook, way, key in runs:
                o = evaluate(ruleset, hook, packet, "filter" if hook == "postrouting" else None)
                doubts += [str(r) for r in o.doubts]
                if o.verdict in ("drop", "reject"):
                    bad = True
                    sender = f" from {packet.saddr}" if way == "into" and packet.saddr else ""
                    saw = f"IPv{family} adverts {way} {dev}{sender}: {o.verdict} by {o.what()}"
                    fix = _accept_fix(o, f'{key} "{dev}" meta l4proto vrrp accept')
                    yield Finding("carp-filter", dev, False, saw + _doubted(doubts), fix)
        if not bad:
            fams = " and ".join(f"IPv{f}" for f in _families(vhids))
            yield Finding(
                "carp-filter", dev, True, f"{fams} adverts pass in and out" + _doubted(doubts)
            )


def snat_adverts(
    config: Config, ruleset: Ruleset | str, own: Mapping[str, list[IPAddress]]
) -> Iterator[Finding]:
    """A nat chain on postrouting that would rewrite the source of our own adverts."""
    if isinstance(ruleset, str):
        yield Finding("snat-adverts", None, None, ruleset)
        return
    for dev, vhids in carpdevs(config).items():
        bad = False
        for family in _families(vhids):
            src = _first(list(own.get(dev, [])), family)
            out = Packet(
                family, CARP, oif=dev, saddr=src, daddr=GROUPS[family], pkttype="multicast"
            )
            o = evaluate(ruleset, "postrouting", out, "nat")
            if o.verdict in ("snat", "masquerade"):
                bad = True
                saw = f"IPv{family} adverts out of {dev} (from {src}): {o.verdict} by {o.what()}"
                fix = _accept_fix(o, "meta l4proto vrrp accept")
                yield Finding("snat-adverts", dev, False, saw, fix + " (no NAT for adverts)")
        if not bad:
            yield Finding("snat-adverts", dev, True, "no source NAT of the adverts")


def _accept_fix(o: Outcome, rule: str) -> str:
    """nft insert: before the rule that decided, or at the top of the chain whose
    policy did."""
    if o.rule is not None:
        r = o.rule
        return f"nft insert rule {r.family} {r.table} {r.chain} position {r.handle} {rule}"
    assert o.chain is not None
    c = o.chain
    return f"nft insert rule {c.family} {c.table} {c.name} {rule}"


def _doubted(doubts: list[str]) -> str:
    if not doubts:
        return ""
    shown = "; ".join(dict.fromkeys(doubts))
    return f" (not certain: the doctor cannot tell whether these match: {shown})"


# -- 3 and 4: conntrackd ------------------------------------------------------------------


def tcp_loose(config: Config, host: Host) -> Iterator[Finding]:
    if not config.conntrackd.enabled:
        yield Finding("conntrack-tcp-loose", None, None, "no [conntrackd]")
        return
    name = "netfilter.nf_conntrack_tcp_loose"
    value = host.sysctl(name.replace(".", "/"))
    if value is None:
        yield Finding("conntrack-tcp-loose", None, None, f"no net.{name} (nf_conntrack not loaded)")
    elif value != "0":
        saw = (
            f"net.{name} = {value} on a node with [conntrackd]: any mid-stream TCP packet "
            "makes a connection, synced or not"
        )
        yield Finding("conntrack-tcp-loose", None, False, saw, f"sysctl -w net.{name}=0 ({KEEP})")
    else:
        yield Finding("conntrack-tcp-loose", None, True, f"net.{name} = 0")


@dataclass(frozen=True)
class SyncLink:
    interface: str
    address: IPAddress | None
    peer: IPAddress | None
    port: int
    source: str  # where these came from


_UDP = re.compile(r"\bUDP\s*\{(?P<body>[^}]*)\}", re.S)


def sync_link(config: Config, host: Host) -> SyncLink | None:
    """The sync link from conntrackd.conf's UDP block (what conntrackd uses), each
    value missing there taken from [conntrackd]."""
    ct = config.conntrackd
    text = host.read(ct.config) or ""
    m = _UDP.search(text)
    keys: dict[str, str] = {}
    if m:
        for line in m["body"].splitlines():
            words = line.split("#", 1)[0].split()
            if len(words) == 2:
                keys[words[0].lower()] = words[1]
    interface = keys.get("interface", ct.interface)
    if interface is None:
        return None
    address = keys.get("ipv4_address") or keys.get("ipv6_address")
    peer = keys.get("ipv4_destination_address") or keys.get("ipv6_destination_address")
    port = keys.get("port")
    return SyncLink(
        interface,
        ipaddress.ip_address(address) if address else ct.address,
        ipaddress.ip_address(peer) if peer else ct.peer,
        int(port) if port and port.isdigit() else ct.port,
        str(ct.config) if m else "[conntrackd]",
    )


def conntrackd_port(config: Config, host: Host, ruleset: Ruleset | str) -> Iterator[Finding]:
    if not config.conntrackd.enabled:
        yield Finding("conntrackd-port", None, None, "no [conntrackd]")
        return
    if isinstance(ruleset, str):
        yield Finding("conntrackd-port", None, None, ruleset)
        return
    try:
        link = sync_link(config, host)
    except ValueError as e:
        yield Finding("conntrackd-port", None, None, f"{config.conntrackd.config}: {e}")
        return
    if link is None:
        yield Finding(
            "conntrackd-port", None, None, "no sync interface in conntrackd.conf or [conntrackd]"
        )
        return
    family = 6 if link.address is not None and link.address.version == 6 else 4
    packet = Packet(
        family, 17, iif=link.interface, saddr=link.peer, daddr=link.address,
        dport=link.port, pkttype="host",
    )  # fmt: skip
    peer = link.peer or "the peer"
    what = f"conntrackd's UDP port {link.port} on {link.interface} from {peer} ({link.source})"
    for hook in ("prerouting", "input"):
        o = evaluate(ruleset, hook, packet)
        if o.verdict in ("drop", "reject"):
            fix = _accept_fix(o, f'iifname "{link.interface}" udp dport {link.port} accept')
            yield Finding(
                "conntrackd-port", link.interface, False, f"{what}: {o.verdict} by {o.what()}", fix
            )
            return
    yield Finding("conntrackd-port", link.interface, True, f"{what}: let in")


# -- 5 and 6: sysctls and addresses -------------------------------------------------------


def _conf(host: Host, dev: str, key: str) -> tuple[int, int] | None:
    """(all's value, the interface's): the kernel takes the larger for rp_filter,
    arp_ignore and arp_announce."""
    a, d = host.sysctl(f"ipv4/conf/all/{key}"), host.sysctl(f"ipv4/conf/{dev}/{key}")
    if a is None or d is None or not a.isdigit() or not d.isdigit():
        return None
    return int(a), int(d)


def rp_filter(config: Config, host: Host) -> Iterator[Finding]:
    for dev, vhids in carpdevs(config).items():
        if 4 not in _families(vhids):
            continue
        values = _conf(host, dev, "rp_filter")
        if values is None:
            yield Finding(
                "rp-filter", dev, None, f"no {sysctl_name('ipv4', 'conf', dev, 'rp_filter')}"
            )
            continue
        names = [sysctl_name("ipv4", "conf", n, "rp_filter") for n in ("all", dev)]
        both = f"{names[0]} = {values[0]}, {names[1]} = {values[1]}"
        if max(values) == 1:
            sets = [
                f"sysctl -w {sysctl_name('ipv4', 'conf', n, 'rp_filter')}=2"
                for n, v in zip(("all", dev), values, strict=True)
                if v == 1
            ]
            saw = (
                f"{both}: strict reverse-path filtering on a carpdev (the kernel takes the larger)"
            )
            yield Finding("rp-filter", dev, False, saw, f"{'; '.join(sets)} (loose; {KEEP})")
        else:
            yield Finding("rp-filter", dev, True, both)


def arp(config: Config, host: Host, running: bool) -> Iterator[Finding]:
    """A node that answers ARP for a virtual address it does not hold as MASTER: the VIP
    on an interface carpd does not manage, or (vmac) the carpdev answering for the
    macvlan's address (arp_ignore 0: any local address, on any interface)."""
    held = host.addresses()
    bad = False
    for c in config.carp:
        mine = {c.carpdev, c.name} if c.vmac else {c.carpdev}
        for a in c.addresses:
            for ifname, found in held.items():
                for have in found:
                    if have.ip == a.ip and ifname not in mine:
                        bad = True
                        ignore = _conf(host, c.carpdev, "arp_ignore")
                        if a.ip.version == 4 and ignore is not None and max(ignore) == 0:
                            how = (
                                f"and {sysctl_name('ipv4', 'conf', c.carpdev, 'arp_ignore')} "
                                f"= 0 (all 0): {c.carpdev} answers ARP for it whatever the "
                                "vhid's role"
                            )
                        else:
                            how = "this node keeps the address's traffic to itself in any role"
                        saw = f"{a.ip} of {c.name} is on {ifname} too, {how}"
                        fix = f"ip addr del {have} dev {ifname} (and from its configuration)"
                        yield Finding("arp-vip", c.name, False, saw, fix)
        if c.vmac and 4 in _families([c]):
            values = _conf(host, c.carpdev, "arp_ignore")
            name = sysctl_name("ipv4", "conf", c.carpdev, "arp_ignore")
            if values is not None and max(values) < 1 and running:
                bad = True
                saw = (
                    f"{name} = {values[1]} (all {values[0]}) while carpd runs: the carpdev "
                    f"answers ARP for {c.name}'s addresses with its own MAC"
                )
                yield Finding(
                    "arp-vip",
                    c.name,
                    False,
                    saw,
                    f"sysctl -w {name}=1 (carpd sets it at start; something set it back)",
                )
    if not bad:
        yield Finding(
            "arp-vip",
            None,
            True,
            "no virtual address elsewhere; vmac carpdevs answer only for their own",
        )


# -- 7: bridges ---------------------------------------------------------------------------


def bridges(config: Config, host: Host) -> Iterator[Finding]:
    """A Linux bridge that carries the adverts (a carpdev, or a carpdev's bridge) sends
    IPv4 adverts (224.0.0.18: link-local, never snooped) out of a port only by flooding,
    and a port with ``mcast_flood off`` gets none. Snooping itself is no fault: without a
    querier the bridge floods all multicast, and ff02::12 is forwarded to the ports that
    joined it (carpd joins it)."""
    seen: set[str] = set()
    for dev in carpdevs(config):
        master = host.master(dev)
        for br in (dev, master):
            if br is None or br in seen or host.link_file(br, "bridge/multicast_snooping") is None:
                continue
            seen.add(br)
            role = "the carpdev" if br == dev else f"{dev}'s bridge"
            ports = host.ports(br)
            closed = [p for p in ports if host.link_file(br, f"brif/{p}/multicast_flood") == "0"]
            if closed:
                saw = (
                    f"{br} ({role}): mcast_flood off on {', '.join(closed)}: the IPv4 adverts "
                    "(224.0.0.18, flooded, never snooped) do not go out of it"
                )
                fix = "; ".join(f"bridge link set dev {p} mcast_flood on" for p in closed)
                yield Finding("bridge-flood", br, False, saw, fix)
            else:
                yield Finding("bridge-flood", br, True, f"{br} ({role}): every port floods")
    if not seen:
        yield Finding("bridge-flood", None, True, "no carpdev is or is in a Linux bridge")
