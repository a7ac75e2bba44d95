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


def with_carpdev_prefixes(
    cfg: CarpConfig, own: Sequence[Interface], vips: Container[IPAddress]
) -> tuple[CarpConfig, list[tuple[bool, str]]]:
    """``cfg`` with each of ``cfg.prefix_from_carpdev`` given its prefix from ``own``,
    the carpdev's addresses (those in ``vips`` are not its own: a stale copy of a virtual
    address says nothing about the subnet), and what to log about it: (warning, line)."""
    subnets = [a for a in own if a.ip not in vips and a.network.num_addresses > 1]
    notes: list[tuple[bool, str]] = []
    addresses = []
    for a in cfg.addresses:
        if a.ip in cfg.prefix_from_carpdev:
            holding = [s for s in subnets if a.ip in s.network]
            if holding:
                best = max(holding, key=lambda s: s.network.prefixlen)  # the narrowest
                a = ipaddress.ip_interface(f"{a.ip}/{best.network.prefixlen}")
                line = f"{a.ip} takes /{a.network.prefixlen} from {cfg.carpdev}'s {best}"
                notes.append((False, f"{cfg.name}: {line}"))
            else:
                example = f"-a {a.ip}/{24 if a.version == 4 else 64}"
                line = (
                    f"no subnet of {cfg.carpdev} holds {a.ip}: adding it as {a}; give the "
                    f"prefix your up-script gives it ({example})"
                )
                notes.append((True, f"{cfg.name}: {line}"))
        addresses.append(a)
    resolved = {"addresses": tuple(addresses), "prefix_from_carpdev": ()}
    return cfg.model_copy(update=resolved), notes
