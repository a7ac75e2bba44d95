"""Logging to stderr (journald-friendly) and optionally to syslog."""

from __future__ import annotations

import logging
import os
import sys

# syslog priorities, which journald reads from a "<N>" line prefix.
_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>{record.getMessage()}"


def setup_logging(level: str = "info", syslog: bool = False, facility: str = "daemon") -> None:
    root = logging.getLogger("carpd")
    root.handlers.clear()
    root.setLevel(level.upper())
    root.propagate = False
    stderr = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        stderr.setFormatter(JournalFormatter())  # journald adds time and pid itself
    else:
        stderr.setFormatter(
            logging.Formatter("%(asctime)s.%(msecs)03d carpd: %(message)s", "%Y-%m-%dT%H:%M:%S")
        )
    root.addHandler(stderr)
    if syslog:
        from logging.handlers import SysLogHandler  # only then

        try:
            handler = SysLogHandler(
                address="/dev/log", facility=SysLogHandler.facility_names[facility]
            )
        except OSError as e:
            root.warning("carp: syslog unavailable (/dev/log: %s), logging to stderr only", e)
            return
        handler.setFormatter(logging.Formatter("carpd[%(process)d]: %(message)s"))
        root.addHandler(handler)
