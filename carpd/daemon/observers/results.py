"""The last result of every program run for a transition (hooks and [[action]]s), for
`carpctl status --json` and the status page: a Subscriber of ActionRan."""

from __future__ import annotations

from carpd.daemon.seam.events import ActionRan, Event
from carpd.daemon.seam.view import ActionReport, NodeView


class Results:
    def __init__(self) -> None:
        self._reports: dict[tuple[str, str], ActionReport] = {}

    def notify(self, event: Event, view: NodeView) -> None:
        if not isinstance(event, ActionRan):
            return
        key = (event.target, event.action)
        old, o = self._reports.get(key), event.outcome
        self._reports[key] = ActionReport(
            target=event.target,
            action=event.action,
            phase=event.phase,
            state=event.state,
            at=event.at,
            status=o.status,
            duration=o.duration,
            error=o.error,
            stderr=o.stderr,
            runs=(old.runs if old else 0) + 1,
            failed=(old.failed if old else 0) + (not o.ok),
        )

    def reports(self) -> tuple[ActionReport, ...]:
        return tuple(self._reports.values())
