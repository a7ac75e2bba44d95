"""The publisher builds the node's view only when a subscriber reads it, and once per
event: a view of every vhid for each of 255 takeovers made them O(N^2)."""

from __future__ import annotations

from typing import Any

from carpd.daemon.seam.events import AddressesApplied, Event, Publisher
from carpd.daemon.seam.view import NodeView


class Reader:
    def __init__(self, reads: bool) -> None:
        self.reads = reads
        self.seen: list[Any] = []

    def notify(self, event: Event, view: NodeView) -> None:
        if self.reads:
            self.seen += [view.vhids, view.vhids]  # twice: still one build


def test_the_view_is_built_only_if_read_and_once_per_event() -> None:
    builds: list[int] = []
    fake = type("View", (), {"vhids": ("lan",)})()

    def build() -> NodeView:
        builds.append(1)
        return fake  # type: ignore[no-any-return]

    pub = Publisher(build)
    ignoring, reading = Reader(False), Reader(True)
    pub.subscribers.append(ignoring)
    event = AddressesApplied(("eth0", 1), present=True, error=None)
    pub.publish(event)
    assert builds == []
    pub.subscribers.append(reading)
    pub.publish(event)
    assert builds == [1]
    assert reading.seen == [("lan",), ("lan",)]
