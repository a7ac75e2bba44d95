"""Logging to stderr (journald-friendly) and optionally to syslog."""

from __future__ import annotations

import logging
import os
import sys
from logging.handlers import SysLogHandler

# syslog priorities, which journald reads from a "<N>" line prefix.
_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}

SYSLOG_SOCKET = "/dev/log"


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>{record.getMessage()}"


class Syslog(SysLogHandler):
    """SysLogHandler, but an unreachable syslog (no /dev/log in a container, syslogd
    restarting) is said once on stderr, which has every line anyway, instead of a
    "--- Logging error ---" traceback per line. It keeps trying each line (a connect
    that fails at once), and says so once when syslog takes lines again."""

    def __init__(self, address: str, facility: int, tell: logging.Handler) -> None:
        self.tell = tell
        self.unreachable = False
        self._failed = False
        super().__init__(address=address, facility=facility)

    def emit(self, record: logging.LogRecord) -> None:
        self._failed = False
        super().emit(record)
        if self.unreachable and not self._failed:
            self.unreachable = False
            self._say(logging.INFO, f"carp: syslog ({self.address}) reachable again")

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handleError(record)  # a bug of ours: keep the traceback
            return
        self._failed = True
        if not self.unreachable:
            self.unreachable = True
            self._say(
                logging.WARNING,
                f"carp: syslog unavailable ({self.address}: {error.strerror or error}), "
                "logging to stderr only",
            )

    def _say(self, level: int, message: str) -> None:
        self.tell.handle(logging.LogRecord("carpd", level, __file__, 0, message, None, None))


def setup_logging(
    level: str = "info",
    syslog: bool = False,
    facility: str = "daemon",
    syslog_socket: str = SYSLOG_SOCKET,
) -> None:
    root = logging.getLogger("carpd")
    for old in root.handlers:
        old.close()
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
        handler = Syslog(syslog_socket, SysLogHandler.facility_names[facility], stderr)
        handler.setFormatter(logging.Formatter("carpd[%(process)d]: %(message)s"))
        root.addHandler(handler)
