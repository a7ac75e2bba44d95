"""The lab's own reading of ``conntrackd -s``: what the backup holds of its peer's table,
with an external cache (a capture of conntrack-tools 1.4.7) and without one."""

from __future__ import annotations

from pathlib import Path

from carpd_lab.conntrackd_stats import peer_connections

WITHOUT_CACHE = """cache internal:
current active connections:\t           4
connections created:\t\t           4\tfailed:\t           0

external inject:
connections created:\t\t        1000\tfailed:\t           0
connections updated:\t\t          30\tfailed:\t           0
connections destroyed:\t\t          10\tfailed:\t           0
"""


def test_with_an_external_cache_its_active_connections() -> None:
    captured = (Path(__file__).parent / "data" / "conntrackd-s-1.4.7.txt").read_text()
    assert peer_connections(captured) == 200


def test_without_one_what_it_injected_created_less_destroyed() -> None:
    assert peer_connections(WITHOUT_CACHE) == 990


def test_an_answer_that_is_neither_is_none_held() -> None:
    assert peer_connections("ERROR: can't connect to conntrackd\n") == 0
