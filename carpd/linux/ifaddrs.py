"""This network namespace's interfaces and their addresses, read once and synchronously:
for ``carpd --check`` and ``carpd --conntrackd-conf``, which must not load the runtime
(asyncio, pyroute2). One RTM_GETADDR dump over a plain netlink socket; the interface
names from if_nameindex(3). Both belong to the namespace the process runs in (not to
whoever mounted /sys)."""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from collections.abc import Iterator

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

_RTM_GETADDR = 22
_RTM_NEWADDR = 20
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_IFA_ADDRESS = 1
_NLMSG = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_RTATTR = struct.Struct("=HH")  # len, type


def interfaces() -> dict[str, int]:
    """Every interface of this namespace: name -> index."""
    return {name: index for index, name in socket.if_nameindex()}


def addresses() -> dict[int, list[IPAddress]]:
    """Every address of this namespace, by interface index (IFA_ADDRESS, as the runtime
    reads them)."""
    return {index: [a.ip for a in found] for index, found in prefixed().items()}


def prefixed() -> dict[int, list[IPInterface]]:
    """Every address of this namespace with its prefix, by interface index."""
    out: dict[int, list[IPInterface]] = {}
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        body = _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        header = _NLMSG.pack(_NLMSG.size + len(body), _RTM_GETADDR,
                             _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0)  # fmt: skip
        sock.sendto(header + body, (0, 0))
        while True:
            data = sock.recv(1 << 16)
            for kind, msg in _messages(data):
                if kind == _NLMSG_DONE:
                    return out
                if kind == _NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", msg)
                    raise OSError(-code, os.strerror(-code))
                if kind == _RTM_NEWADDR:
                    family, prefixlen, _, _, index = _IFADDRMSG.unpack_from(msg)
                    raw = _attrs(msg[_IFADDRMSG.size :]).get(_IFA_ADDRESS)
                    if raw is not None and family in (socket.AF_INET, socket.AF_INET6):
                        ip = ipaddress.ip_address(raw)
                        out.setdefault(index, []).append(ipaddress.ip_interface((ip, prefixlen)))


def _messages(data: bytes) -> Iterator[tuple[int, bytes]]:
    pos = 0
    while pos + _NLMSG.size <= len(data):
        length, kind, _, _, _ = _NLMSG.unpack_from(data, pos)
        if length < _NLMSG.size:
            return
        yield kind, data[pos + _NLMSG.size : pos + length]
        pos += (length + 3) & ~3


def _attrs(data: bytes) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    pos = 0
    while pos + _RTATTR.size <= len(data):
        length, kind = _RTATTR.unpack_from(data, pos)
        if length < _RTATTR.size:
            break
        found.setdefault(kind, data[pos + _RTATTR.size : pos + length])
        pos += (length + 3) & ~3
    return found
