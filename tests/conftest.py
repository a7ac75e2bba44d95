"""The whole suite's one rule about skips: outside CI a test that cannot run here (not
root, a tool missing) skips with its reason; in CI (the environment variable CI set to
true, 1 or yes, in any case) any skip fails the run, since it would hide that nothing was
tested. Tests skip with plain ``pytest.skip(reason)``; this guard is the only place that
knows about CI.
"""

from __future__ import annotations

import os

# Imported now, at collection, not by its plugin's summary at the end of a session that
# used none of it: CPython 3.11.7 fails that late import's ast.parse with "SystemError:
# AST constructor recursion depth mismatch" whenever a finalizer (an asyncio task's
# "exception was never retrieved") runs during it, and pytest then exits 1.
import hypothesis  # noqa: F401
import pytest

CI_VALUES = {"true", "1", "yes"}

_skipped: list[pytest.TestReport | pytest.CollectReport] = []


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in CI_VALUES


def _worker(config: pytest.Config) -> bool:
    """A pytest-xdist worker: its controller sees every report and decides."""
    return hasattr(config, "workerinput")


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    if getattr(report, "wasxfail", None) is not None:
        return f"xfail: {report.wasxfail}"
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, line, "Skipped: why")
        return str(longrepr[2])
    return str(longrepr)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:  # a whole module skipped at collection
        _skipped.append(report)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not in_ci() or not _skipped or _worker(terminalreporter.config):
        return
    terminalreporter.section("skipped in CI: each is a failure", sep="=", red=True)
    for report in _skipped:
        terminalreporter.line(f"SKIPPED IN CI {report.nodeid}: {_reason(report)}", red=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not in_ci() or not _skipped or _worker(session.config):
        return
    if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
