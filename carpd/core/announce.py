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


def unsolicited_na(mac: bytes, address: ipaddress.IPv6Address) -> bytes:
    """ICMPv6 neighbour advertisement body (Override set), checksum left to the kernel."""
    flags = 0x20000000  # Override: replace whatever the neighbour had cached
    body = struct.pack("!BBHI", 136, 0, 0, flags) + address.packed
    return body + bytes((2, 1)) + mac  # option: target link-layer address
