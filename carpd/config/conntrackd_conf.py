"""A conntrackd.conf that matches a carpd config: ``carpd --conntrackd-conf``.

What users get wrong, done once (conntrack-tools 1.4's ``doc/sync/ftfw`` example, cut to
what a carpd pair needs):

- FTFW (acknowledged, resent) over UDP unicast to the peer on the dedicated sync link, so
  no multicast to configure and nothing sent on the LAN or WAN;
- the node's own addresses, the virtual addresses and loopback ignored: connections to
  and from the firewall itself are not the peer's business (forwarded and NATed ones are
  kept: conntrackd matches the original and the reply source, never the VIP there);
- one lock file, UNIX socket and log per instance (``run_dir``), so two instances (or a
  lab of namespaces) never trip over each other's lock.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence

from carpd.config.document import Config
from carpd.config.errors import ConfigError

# conntrackd's own lexer takes a name of hex digits ("ca", "e1", "dead") for an address
# and then fails to parse its config: refuse such names here, where we can say why.
_LEXER_ADDRESS = re.compile(r"^[0-9a-fA-F:.]+$")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


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


def render(config: Config, node_addresses: Mapping[str, Sequence[Address]] | None = None) -> str:
    """The conntrackd.conf text; ConfigError if the [conntrackd] table lacks the link.

    ``node_addresses``: this node's own addresses by interface, as read on the node the
    file is for; they are ignored with the virtual ones, and listed in a comment."""
    node_addresses = node_addresses or {}
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
        "Sync {",
        "\tMode FTFW {",
        "\t\tDisableExternalCache Off",
        "\t}",
        "\tUDP {",
        f"\t\t{fam}_address {ct.address}",
        f"\t\t{fam}_Destination_Address {ct.peer}",
        f"\t\tPort {ct.port}",
        f"\t\tInterface {ct.interface}",
        "\t\tSndSocketBuffer 1249280",
        "\t\tRcvSocketBuffer 1249280",
        "\t\tChecksum on",
        "\t}",
    ]
    if ct.expectations:
        lines += ["\tOptions {", "\t\tExpectationSync On", "\t}"]
    lines += [
        "}",
        "General {",
        "\tHashSize 32768",
        "\tHashLimit 131072",
        f"\tLogFile {run / 'conntrackd.log'}",
        "\tSyslog on",
        f"\tLockFile {run / 'conntrackd.lock'}",
        f"\tUNIX {{\n\t\tPath {run / 'conntrackd.ctl'}\n\t}}",
        "\tNetlinkBufferSize 2097152",
        "\tNetlinkBufferSizeMaxGrowth 8388608",
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
