"""Where a vhid's adverts come from, and whether its addresses take traffic: pure
functions of the config and the carpdev's addresses, shared by the runtime and
``carpd --check`` (which loads no runtime)."""

from __future__ import annotations

import ipaddress
from collections.abc import Container, Iterable

from carpd.config import CarpConfig
from carpd.core.model import IPAddress


def own_sources(
    addresses: Iterable[IPAddress], vips: Container[IPAddress]
) -> tuple[ipaddress.IPv4Address | None, ipaddress.IPv6Address | None]:
    """A carpdev's own IPv4 address and IPv6 link-local (never one of the virtual ones)."""
    own = [a for a in addresses if a not in vips]
    src4 = next((a for a in own if isinstance(a, ipaddress.IPv4Address)), None)
    src6 = next((a for a in own if isinstance(a, ipaddress.IPv6Address) and a.is_link_local), None)
    return src4, src6


def advert_sources(
    cfg: CarpConfig, src4: ipaddress.IPv4Address | None, src6: ipaddress.IPv6Address | None
) -> tuple[dict[int, IPAddress], list[str]]:
    """The vhid's advert source per family, and what is missing for the others."""
    families = {a.version for a in cfg.addresses}
    sources: dict[int, IPAddress] = {}
    missing = []
    if 4 in families:
        v4 = cfg.srcip or src4
        if v4 is None:
            missing.append(
                f"carpdev {cfg.carpdev} has no IPv4 address of its own to send adverts from: "
                "add one or set srcip"
            )
        else:
            sources[4] = v4
    if 6 in families:
        if src6 is None:
            missing.append(
                f"carpdev {cfg.carpdev} has no IPv6 link-local address to send adverts from"
            )
        else:
            sources[6] = src6
    return sources, missing


def refuses_traffic(cfg: CarpConfig) -> bool:
    """VRRPv3 with Accept_Mode False: the addresses answer ARP/ND but take no packets."""
    return cfg.protocol == "vrrp3" and not cfg.accept
