"""conntrackd -s, as conntrack-tools 1.4.7 prints it (captured in a lab namespace; the
counts edited to be distinct)."""

from __future__ import annotations

from pathlib import Path

from carpd.linux.conntrackd import ConntrackdStats, parse_stats

CAPTURED = Path(__file__).parent / "data" / "conntrackd-s-1.4.7.txt"


def test_the_statistics_that_matter_are_read() -> None:
    assert parse_stats(CAPTURED.read_text()) == ConntrackdStats(
        internal=4, external=200, send_errors=3, recv_errors=0, malformed=0, lost=116
    )


def test_anything_else_is_not_statistics() -> None:
    assert parse_stats("") is None
    assert parse_stats("can't connect: is conntrackd running? appropriate permissions?") is None
