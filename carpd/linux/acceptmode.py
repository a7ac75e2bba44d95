"""VRRPv3 Accept_Mode = False (RFC 5798 6.1): the MASTER must not accept packets
addressed to the virtual addresses it does not own, yet must answer ARP and ND for them.

carpd keeps one nftables table of its own, ``inet carpd``, with the non-accept addresses
in two sets and a drop rule on input (ARP is not IP and is untouched; neighbour
solicitations and advertisements are let through). The table is created on first use
and deleted on exit; nothing else in the ruleset is read or changed. pyroute2's nftables
support is experimental, so this adapter drives the `nft` command (Debian package
nftables) with a script on its standard input, asynchronously: a slow or hung `nft`
never holds up the adverts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from carpd.linux import nft

TABLE = "carpd"

_SKELETON = f"""
table inet {TABLE} {{
    set v4 {{ type ipv4_addr; }}
    set v6 {{ type ipv6_addr; }}
    chain input {{
        type filter hook input priority 0; policy accept;
        icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert }} accept
        ip daddr @v4 drop
        ip6 daddr @v6 drop
    }}
}}
"""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AcceptFilterError(Exception):
    pass


async def _nft(script: str) -> None:
    try:
        await nft.apply(script)
    except nft.NftError as e:
        raise AcceptFilterError(str(e)) from None


class AcceptFilter:
    def __init__(self) -> None:
        self._made = False

    def _elements(self, verb: str, addrs: Iterable[IPAddress]) -> str:
        lines = []
        for family, name in ((4, "v4"), (6, "v6")):
            these = [str(a) for a in addrs if a.version == family]
            if these:
                lines.append(f"{verb} element inet {TABLE} {name} {{ {', '.join(these)} }}")
        return "\n".join(lines) + "\n"

    async def refuse(self, addrs: Iterable[IPAddress]) -> None:
        addrs = list(addrs)
        # First use: replace whatever a killed carpd left behind with a fresh table.
        fresh = f"table inet {TABLE} {{}}\ndelete table inet {TABLE}\n{_SKELETON}"
        script = ("" if self._made else fresh) + self._elements("add", addrs)
        await _nft(script)
        self._made = True

    async def allow(self, addrs: Iterable[IPAddress]) -> None:
        if self._made:
            await _nft(self._elements("delete", list(addrs)))

    async def close(self) -> None:
        if self._made:
            self._made = False
            await _nft(f"delete table inet {TABLE}\n")
