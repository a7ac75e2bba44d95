"""The intake's budget for unknown sources (on a virtual clock) and the source filters'
shape. The filters' behaviour in the kernel is tested in the lab (test_flood.py)."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from carpd.daemon.runtime.intake import BUDGET_BURST, BUDGET_RATE, MAX_PEERS, Bucket
from carpd.linux import bpf


def test_the_bucket_allows_a_burst_then_the_rate() -> None:
    b = Bucket(BUDGET_RATE, BUDGET_BURST, BUDGET_BURST, at=100.0)
    assert b.available(100.0) == BUDGET_BURST
    b.spend(int(BUDGET_BURST))
    assert b.available(100.0) == 0
    assert b.wait(64) == pytest.approx(64 / BUDGET_RATE)
    assert b.available(100.01) == int(0.01 * BUDGET_RATE)
    # Idle time refills no more than the burst.
    assert b.available(200.0) == BUDGET_BURST


def test_over_a_second_of_flood_no_more_than_rate_plus_burst_is_read() -> None:
    b = Bucket(BUDGET_RATE, BUDGET_BURST, BUDGET_BURST, at=0.0)
    read, now = 0, 0.0
    while now < 1.0:  # a reader that takes all it is allowed, every millisecond
        n = b.available(now)
        b.spend(n)
        read += n
        now += 0.001
    assert BUDGET_RATE <= read <= BUDGET_RATE + BUDGET_BURST


def _program(code: bytes) -> list[tuple[int, int, int, int]]:
    return [struct.unpack("=HBBI", code[i : i + 8]) for i in range(0, len(code), 8)]


def test_an_empty_source_list_keeps_nothing_or_everything() -> None:
    assert [k for *_, k in _program(bpf.source_filter(4, [], accept=True))] == [0, 0x40000]
    assert _program(bpf.source_filter(4, [], accept=False))[0][3] == bpf.ACCEPT


@pytest.mark.parametrize("family", [4, 6])
def test_the_most_known_peers_fit_one_program(family: int) -> None:
    base = ipaddress.ip_address("192.0.2.1" if family == 4 else "2001:db8::1")
    sources = [base + i for i in range(MAX_PEERS)]
    prog = _program(bpf.source_filter(family, sources, accept=True))
    words = 1 if family == 4 else 4
    assert len(prog) == 2 * words * MAX_PEERS + 2
    # Every jump lands inside the program.
    for i, (code, jt, jf, _k) in enumerate(prog):
        if code == 0x15:
            assert i + 1 + max(jt, jf) < len(prog)


def test_every_word_of_each_source_is_compared() -> None:
    a, b = ipaddress.IPv6Address("2001:db8::1"), ipaddress.IPv6Address("fe80::2")
    prog = _program(bpf.source_filter(6, [a, b], accept=True))
    compared = {k for code, _, _, k in prog if code == 0x15}
    assert compared >= set(struct.unpack("!4I", a.packed)) | set(struct.unpack("!4I", b.packed))
    loads = [k for code, _, _, k in prog if code == 0x20]
    assert loads[:4] == [(bpf.SKF_NET_OFF + 8 + 4 * j) & 0xFFFFFFFF for j in range(4)]
