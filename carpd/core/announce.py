"""Gratuitous ARP and unsolicited neighbour advertisement frames (spec section 6.2)."""

from __future__ import annotations

import ipaddress
import struct

BROADCAST_MAC = b"\xff" * 6
ETH_P_ARP = 0x0806
ALL_NODES_V6 = ipaddress.IPv6Address("ff02::1")


def gratuitous_arp(mac: bytes, address: ipaddress.IPv4Address) -> bytes:
    """An ARP request broadcast with sender = target = the address, as ucarp sends it.

    The target hardware address is our MAC (ucarp) rather than zeros; Linux, the BSDs and
    common switches treat both as gratuitous.
    """
    eth = BROADCAST_MAC + mac + ETH_P_ARP.to_bytes(2, "big")
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
    arp += mac + address.packed + mac + address.packed
    return eth + arp


NA_ROUTER = 0x80000000  # the sender is a router: a neighbour keeps it as one
NA_OVERRIDE = 0x20000000  # replace whatever the neighbour had cached


def unsolicited_na(mac: bytes, address: ipaddress.IPv6Address, router: bool = False) -> bytes:
    """ICMPv6 neighbour advertisement body, checksum left to the kernel. Override is set,
    as RFC 4861 (7.2.6) says for an unsolicited advertisement of an address that is not
    anycast; Router is set when the node forwards (``router``): a firewall's VIP is its
    clients' gateway, and an NA without it makes a client that had it as a router drop
    it from its default router list (RFC 4861 7.2.5; keepalived PR #200)."""
    flags = NA_OVERRIDE | (NA_ROUTER if router else 0)
    body = struct.pack("!BBHI", 136, 0, 0, flags) + address.packed
    return body + bytes((2, 1)) + mac  # option: target link-layer address
