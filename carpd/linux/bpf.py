"""Classic BPF socket filters that split a carpdev's adverts by source address.

A carpdev has two receiving sockets per family: one for the peers whose adverts have
verified (never throttled), and one for every other source (read within a budget, so a
flood costs bounded CPU). The kernel decides which socket a datagram goes to, so a flood
from other sources can never fill the queue the master's adverts wait in.

The programs are a handful of instructions, assembled here: a library for this would be
libpcap's compiler (tcpdump syntax), which has no way to say "at the network header" for
an IPv6 raw socket. Loads are relative to the network header (SKF_NET_OFF), which works
for AF_INET raw sockets (handed the IP header) and AF_INET6 ones (handed the payload)."""

from __future__ import annotations

import ctypes
import socket
import struct
from collections.abc import Iterable

from carpd.core.model import IPAddress

SO_ATTACH_FILTER = 26
SO_MEMINFO = 55
SK_MEMINFO_DROPS = 8  # struct sk_meminfo's last field: datagrams the full queue refused
SKF_NET_OFF = -0x100000
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K
ACCEPT, DROP = 0x40000, 0  # return values: bytes to keep (all), none
SOURCE_OFFSET = {4: 12, 6: 8}  # the source address in the IPv4 / IPv6 header
MAX_JUMP = 255  # a conditional jump's offsets are 8 bits


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k & 0xFFFFFFFF)


def source_filter(family: int, sources: Iterable[IPAddress], *, accept: bool) -> bytes:
    """A program keeping datagrams whose source is one of ``sources`` (``accept``) or
    is none of them (``not accept``)."""
    words = [
        struct.unpack(f"!{len(a.packed) // 4}I", a.packed)
        for a in sorted(set(sources), key=lambda a: a.packed)
    ]
    size = 4 if family == 4 else 16
    assert all(len(w) * 4 == size for w in words)
    hit, miss = (ACCEPT, DROP) if accept else (DROP, ACCEPT)
    body: list[bytes] = []
    # Per address: load and compare each 32-bit word; a mismatch skips to the next
    # address, a full match jumps to the "hit" return at the end.
    per = 2 * (size // 4)
    total = per * len(words)
    assert total + 2 <= MAX_JUMP, "too many sources for one program"
    for i, w in enumerate(words):
        for j, word in enumerate(w):
            pos = i * per + 2 * j  # this load's index
            body.append(_insn(_LD_W_ABS, 0, 0, SKF_NET_OFF + SOURCE_OFFSET[family] + 4 * j))
            next_address = (i + 1) * per  # the next address's first load, or "miss"
            last = j == len(w) - 1
            # Jumps are relative to the instruction after the comparison (pos + 2).
            to_hit = total + 1 - (pos + 2)
            to_next = next_address - (pos + 2)
            body.append(_insn(_JEQ_K, to_hit if last else 0, to_next, word))
    body.append(_insn(_RET_K, 0, 0, miss))  # index total
    body.append(_insn(_RET_K, 0, 0, hit))  # index total + 1
    return b"".join(body)


def attach(sock: socket.socket, program: bytes) -> None:
    """Replace the socket's filter (atomically, in the kernel)."""
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def queue_drops(sock: socket.socket) -> int:
    """Datagrams the kernel dropped because the socket's queue was full (not those its
    filter refused): SO_MEMINFO's drops."""
    raw = sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 4 * (SK_MEMINFO_DROPS + 1))
    return int(struct.unpack(f"={SK_MEMINFO_DROPS + 1}I", raw)[SK_MEMINFO_DROPS])
