"""A conntrackd.conf that matches a carpd config: ``carpd --conntrackd-conf``.

What users get wrong, done once (conntrack-tools 1.4's ``doc/sync/ftfw`` example, cut to
what a carpd pair needs):

- FTFW (acknowledged, resent) over UDP unicast to the peer on the dedicated sync link, so
  no multicast to configure and nothing sent on the LAN or WAN;
- the node's own addresses, the virtual addresses and loopback ignored: connections to
  and from the firewall itself are not the peer's business (forwarded and NATed ones are
  kept: conntrackd matches the original and the reply source, never the VIP there);
- one lock file, UNIX socket and log per instance (``run_dir``), so two instances (or a
  lab of namespaces) never trip over each other's lock;
- sized for the table (``max_entries``, by default the node's nf_conntrack_max; see
  ``Sizing``): conntrackd's defaults (HashLimit 131072) silently keep a bigger table out
  of its caches, so the peer never learns the rest.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from carpd.config.document import Config
from carpd.config.errors import ConfigError

# conntrackd's own lexer takes a name of hex digits ("ca", "e1", "dead") for an address
# and then fails to parse its config: refuse such names here, where we can say why.
_LEXER_ADDRESS = re.compile(r"^[0-9a-fA-F:.]+$")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


# The kernel's limit, read when the file is written if [conntrackd] max_entries is unset.
NF_CONNTRACK_MAX = Path("/proc/sys/net/netfilter/nf_conntrack_max")
FALLBACK_ENTRIES = 262144  # the kernel's own default on a machine of 16 GiB or more

# Bytes of NetlinkBufferSize a connection's event takes (measured: with conntrackd
# stopped through a burst of 100,000 NATed TCP connections, 64 MiB held 52,629 events;
# the kernel doubles the size asked for, an event's skb takes about 2.5 KiB of that) and
# of the sync socket's buffers a sync message (about 100 on the wire), rounded up; and
# the share of the table a burst may renew before conntrackd reads it (a quarter: 250,000
# new connections at once on a 1M table). Beyond that the overrun resync takes over.
EVENT_BYTES = 1280
MESSAGE_BYTES = 128
BURST = 4
HASH_SIZE_MIN, HASH_LIMIT_MIN = 32768, 131072  # conntrack-tools' example (carpd's before)
NETLINK_MIN = 2 * 1024 * 1024  # conntrack-tools' example (and carpd's before sizing)
NETLINK_GROWTH_MIN = 8 * 1024 * 1024
SOCKET_MIN = 1249280  # conntrack-tools' example's UDP socket buffers
OVERRUN_RESYNC = 5  # seconds (conntrackd's default 30): see Sizing.overrun_resync


@dataclass(frozen=True, slots=True)
class Sizing:
    """conntrackd.conf's sizes for a table of ``entries`` connections, and why.

    - ``hash_limit``: conntrackd's caches hold at most this many entries and silently drop
      the rest (its default 131072 is below most firewalls' tables); conntrackd.conf(5):
      twice nf_conntrack_max, as dead entries stay cached for retransmission a while;
    - ``hash_size``: buckets, a power of two, two entries a bucket at a full table (16
      bytes each per cache: 8 MiB for a million);
    - ``netlink_buffer``: the event socket's buffer holds a burst of a quarter of the
      table's events (BURST) before conntrackd reads them; an overrun loses events, and
      conntrackd doubles it once, up to ``netlink_growth``. Limits, not allocations: the
      kernel's memory is taken only while a burst waits in it;
    - ``overrun_resync``: after an overrun nothing but a resync with the kernel brings
      the lost connections back into the caches, and so to the peer: 5 s, not 30 (a crash
      in between loses them);
    - ``socket_buffer``: the sync link's UDP send and receive buffers hold a bulk send of
      a quarter of the table.
    """

    entries: int
    source: str  # where the figure comes from, for the file's comment
    hash_size: int
    hash_limit: int
    netlink_buffer: int
    netlink_growth: int
    socket_buffer: int
    overrun_resync: int = OVERRUN_RESYNC

    @classmethod
    def of(cls, entries: int, source: str) -> Sizing:
        netlink = max(NETLINK_MIN, entries * EVENT_BYTES // BURST)
        return cls(
            entries=entries,
            source=source,
            hash_size=max(HASH_SIZE_MIN, 1 << (max(1, entries // 2) - 1).bit_length()),
            hash_limit=max(HASH_LIMIT_MIN, 2 * entries),
            netlink_buffer=netlink,
            netlink_growth=max(NETLINK_GROWTH_MIN, 2 * netlink),
            socket_buffer=max(SOCKET_MIN, entries * MESSAGE_BYTES // BURST),
        )


def kernel_max() -> int | None:
    """This node's net.netfilter.nf_conntrack_max, or None (conntrack not loaded)."""
    try:
        return int(NF_CONNTRACK_MAX.read_text().strip())
    except (OSError, ValueError):
        return None


def sizing(config: Config, kernel: int | None = None) -> Sizing:
    """From [conntrackd] max_entries, else the kernel's limit (``kernel``, read if None)."""
    if config.conntrackd.max_entries is not None:
        return Sizing.of(config.conntrackd.max_entries, "[conntrackd] max_entries")
    kernel = kernel if kernel is not None else kernel_max()
    if kernel is None:
        return Sizing.of(FALLBACK_ENTRIES, f"no {NF_CONNTRACK_MAX} here: the kernel's default")
    return Sizing.of(kernel, "this node's net.netfilter.nf_conntrack_max")


def _family(a: Address) -> str:
    return f"IPv{a.version}"


def own_comment(node_addresses: Mapping[str, Sequence[Address]]) -> list[str]:
    """Which addresses were taken as this node's own, and from which interface: the file
    is this node's, and says so."""
    if not node_addresses:
        return []
    lines = ["# This node's own addresses, read from its interfaces when this was written"]
    lines += ["# (ignored with the virtual ones; write it on each node, interfaces up):"]
    for name, own in node_addresses.items():
        lines.append(f"#   {name}: {', '.join(map(str, own)) or 'none'}")
    return lines


def render(
    config: Config,
    node_addresses: Mapping[str, Sequence[Address]] | None = None,
    kernel: int | None = None,
) -> str:
    """The conntrackd.conf text; ConfigError if the [conntrackd] table lacks the link.

    ``node_addresses``: this node's own addresses by interface, as read on the node the
    file is for; they are ignored with the virtual ones, and listed in a comment.
    ``kernel``: the node's nf_conntrack_max (read here if None), when max_entries is
    unset."""
    node_addresses = node_addresses or {}
    size = sizing(config, kernel)
    ct = config.conntrackd
    missing = [k for k in ("interface", "address", "peer") if getattr(ct, k) is None]
    if missing:
        keys = ", ".join(f"conntrackd.{k}" for k in missing)
        raise ConfigError(f"{config.source}: {keys}: needed to write a conntrackd.conf")
    assert ct.interface is not None and ct.address is not None and ct.peer is not None
    if _LEXER_ADDRESS.match(ct.interface):
        raise ConfigError(
            f"{config.source}: conntrackd.interface = {ct.interface!r}: conntrackd 1.4 "
            "cannot parse an interface name made only of hex digits; rename the interface"
        )
    ignored: list[Address] = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    ignored += [a.ip for c in config.carp for a in c.addresses]  # the virtual addresses
    ignored += [ct.address, ct.peer, *(a for own in node_addresses.values() for a in own)]
    unique = sorted(set(ignored), key=lambda a: (a.version, a))
    fam = _family(ct.address)
    run = ct.run_dir
    lines = [
        f"# conntrackd.conf written by `carpd --conntrackd-conf` from {config.source}.",
        "# carpd runs the failover commands itself (-c before its addresses come up,",
        "# then -f -R -B; -t -n on BACKUP): no primary-backup.sh.",
        *own_comment(node_addresses),
        f"# Sized for {size.entries} connections ({size.source}).",
        "Sync {",
        "\tMode FTFW {",
        f"\t\tDisableExternalCache {'Off' if ct.external_cache else 'On'}",
        "\t}",
        "\tUDP {",
        f"\t\t{fam}_address {ct.address}",
        f"\t\t{fam}_Destination_Address {ct.peer}",
        f"\t\tPort {ct.port}",
        f"\t\tInterface {ct.interface}",
        f"\t\tSndSocketBuffer {size.socket_buffer}",
        f"\t\tRcvSocketBuffer {size.socket_buffer}",
        "\t\tChecksum on",
        "\t}",
    ]
    if ct.expectations:
        lines += ["\tOptions {", "\t\tExpectationSync On", "\t}"]
    lines += [
        "}",
        "General {",
        f"\tHashSize {size.hash_size}",
        f"\tHashLimit {size.hash_limit}",
        f"\tLogFile {run / 'conntrackd.log'}",
        "\tSyslog on",
        f"\tLockFile {run / 'conntrackd.lock'}",
        f"\tUNIX {{\n\t\tPath {run / 'conntrackd.ctl'}\n\t}}",
        f"\tNetlinkBufferSize {size.netlink_buffer}",
        f"\tNetlinkBufferSizeMaxGrowth {size.netlink_growth}",
        f"\tNetlinkOverrunResync {size.overrun_resync}",
        "\tFilter From Userspace {",
        "\t\tProtocol Accept {",
        "\t\t\tTCP SCTP DCCP UDP ICMP IPv6-ICMP",
        "\t\t}",
        "\t\tState Accept {",  # the handshake's states are too short-lived to be worth it
        "\t\t\tESTABLISHED CLOSED TIME_WAIT CLOSE_WAIT for TCP",
        "\t\t}",
        "\t\tAddress Ignore {",
        *(f"\t\t\t{_family(a)}_address {a}" for a in unique),
        "\t\t}",
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"
