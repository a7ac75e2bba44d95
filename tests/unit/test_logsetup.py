"""Logging: syslog unreachable (no /dev/log: containers, the ucarp command line's
default) is said once, and every line still goes to stderr, without tracebacks."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from carpd.daemon.service.logsetup import setup_logging

log = logging.getLogger("carpd")


@pytest.fixture
def stderr(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """What went to sys.stderr: the log lines, and logging's "--- Logging error ---"
    tracebacks (set up inside the test, so the handler writes to the captured stream)."""
    yield lambda: capsys.readouterr().err
    setup_logging()  # closes the syslog socket


def test_no_syslog_socket_warns_once_and_logs_to_stderr(
    stderr: Callable[[], str], tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-log"
    setup_logging(syslog=True, syslog_socket=str(missing))
    for n in range(3):
        log.info("line %d", n)
    err = stderr()
    assert "Traceback" not in err
    assert "Logging error" not in err
    assert [line.split(" carpd: ", 1)[1] for line in err.splitlines()] == [
        "line 0",
        f"carp: syslog unavailable ({missing}: No such file or directory), logging to stderr only",
        "line 1",
        "line 2",
    ]


def test_syslog_gets_the_lines_and_is_said_to_be_back_once_it_returns(
    stderr: Callable[[], str], tmp_path: Path
) -> None:
    path = tmp_path / "log"
    setup_logging(syslog=True, syslog_socket=str(path))
    log.warning("before")  # nobody listens yet
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as syslogd:
        syslogd.bind(str(path))
        syslogd.settimeout(5)
        log.warning("after")
        received = syslogd.recv(4096).decode()
    # facility daemon (3) x 8 + warning (4) = <28>
    assert received.startswith("<28>carpd[") and received.endswith("]: after\0")
    messages = [line.split(" carpd: ", 1)[1] for line in stderr().splitlines()]
    assert messages == [
        "before",
        f"carp: syslog unavailable ({path}: No such file or directory), logging to stderr only",
        "after",
        f"carp: syslog ({path}) reachable again",
    ]


def test_a_formatting_bug_keeps_its_traceback(stderr: Callable[[], str], tmp_path: Path) -> None:
    setup_logging(syslog=True, syslog_socket=str(tmp_path / "no-such-log"))
    log.info("%d", "not a number")
    err = stderr()
    assert "Logging error" in err  # a bug says where it is
    assert "syslog unavailable" not in err
