"""The prefix of an address given without one on the ucarp command line (``-a
192.0.2.107``): ucarp adds no address itself, its up-script does, mostly as ``$2/24``,
the subnet of the carpdev. So carpd gives it the prefix of the carpdev's own address
whose subnet holds it, as the carpdev has it when the vhid starts (the command line is
read before the network is looked at), and /32 or /128 with a warning when none does.
Pure: the runtime looks the carpdev's addresses up at vhid start."""

from __future__ import annotations

import ipaddress
from collections.abc import Container, Sequence

from carpd.config import CarpConfig
from carpd.config.model import Interface
from carpd.core.model import IPAddress


def carpdev_prefixes(
    cfg: CarpConfig, own: Sequence[Interface], vips: Container[IPAddress]
) -> dict[IPAddress, tuple[Interface, Interface | None]]:
    """For each of ``cfg.prefix_from_carpdev``: the address as it is added, and the
    carpdev's own address whose subnet gave the prefix (None: no subnet holds it, /32 or
    /128). ``own``: the carpdev's addresses; those in ``vips`` are not its own (a stale
    copy of a virtual address says nothing about the subnet), nor are host addresses."""
    subnets = [a for a in own if a.ip not in vips and a.network.num_addresses > 1]
    out: dict[IPAddress, tuple[Interface, Interface | None]] = {}
    for a in cfg.addresses:
        if a.ip in cfg.prefix_from_carpdev:
            holding = [s for s in subnets if a.ip in s.network]
            best = max(holding, key=lambda s: s.network.prefixlen, default=None)  # narrowest
            if best is not None:
                a = ipaddress.ip_interface(f"{a.ip}/{best.network.prefixlen}")
            out[a.ip] = (a, best)
    return out


def advice(address: Interface) -> str:
    """What to do when no subnet of the carpdev holds a bare address."""
    example = f"{address.ip}/{24 if address.version == 4 else 64}"
    return f"give the prefix your up-script gives it (-a {example})"


def with_carpdev_prefixes(
    cfg: CarpConfig, own: Sequence[Interface], vips: Container[IPAddress]
) -> tuple[CarpConfig, list[tuple[bool, str]]]:
    """``cfg`` with each of ``cfg.prefix_from_carpdev`` given its prefix (carpdev_prefixes),
    and what to log about it: (warning, line)."""
    chosen = carpdev_prefixes(cfg, own, vips)
    notes: list[tuple[bool, str]] = []
    for a, source in chosen.values():
        if source is not None:
            line = f"{a.ip} takes /{a.network.prefixlen} from {cfg.carpdev}'s {source}"
            notes.append((False, f"{cfg.name}: {line}"))
        else:
            line = f"no subnet of {cfg.carpdev} holds {a.ip}: adding it as {a}; {advice(a)}"
            notes.append((True, f"{cfg.name}: {line}"))
    addresses = tuple(chosen[a.ip][0] if a.ip in chosen else a for a in cfg.addresses)
    resolved = {"addresses": addresses, "prefix_from_carpdev": ()}
    return cfg.model_copy(update=resolved), notes
