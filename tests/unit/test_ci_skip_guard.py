"""tests/conftest.py's guard: under CI any skip fails the run and is named; outside CI a
skip is only reported. Each case runs pytest in a throwaway project that holds the guard
and one test file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

GUARD = Path(__file__).parents[1] / "conftest.py"

TESTS = textwrap.dedent(
    """
    import pytest

    def test_runs():
        assert True

    def test_cannot_run_here():
        pytest.skip("needs a widget")
    """
)


def run(tmp_path: Path, ci: str | None, body: str = TESTS, *args: str) -> tuple[int, str]:
    shutil.copy(GUARD, tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # this project, not carpd's
    (tmp_path / "test_one.py").write_text(body)
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "PYTEST_ADDOPTS"}}
    if ci is not None:
        env["CI"] = ci
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return r.returncode, r.stdout + r.stderr


@pytest.mark.parametrize("ci", ["true", "1", "Yes"])
def test_in_ci_a_skip_fails_the_run_and_is_named(tmp_path: Path, ci: str) -> None:
    status, out = run(tmp_path, ci)
    assert status == pytest.ExitCode.TESTS_FAILED, out
    assert "SKIPPED IN CI test_one.py::test_cannot_run_here: Skipped: needs a widget" in out


@pytest.mark.parametrize("ci", [None, "false"])
def test_outside_ci_a_skip_is_only_reported(tmp_path: Path, ci: str | None) -> None:
    status, out = run(tmp_path, ci)
    assert status == pytest.ExitCode.OK, out
    assert "1 passed, 1 skipped" in out
    assert "SKIPPED IN CI" not in out


def test_in_ci_a_run_without_skips_passes(tmp_path: Path) -> None:
    status, out = run(tmp_path, "true", "def test_runs():\n    assert True\n")
    assert status == pytest.ExitCode.OK, out


def test_in_ci_a_module_skipped_at_collection_fails_the_run(tmp_path: Path) -> None:
    body = 'import pytest\npytest.skip("no widget", allow_module_level=True)\n'
    status, out = run(tmp_path, "true", body)
    assert status == pytest.ExitCode.TESTS_FAILED, out
    assert "SKIPPED IN CI test_one.py: Skipped: no widget" in out


def test_in_ci_a_skip_on_an_xdist_worker_fails_the_run(tmp_path: Path) -> None:
    """scripts/test runs the lab tests with -n 2: the workers' skips count too."""
    status, out = run(tmp_path, "true", TESTS, "-n", "2")
    assert status == pytest.ExitCode.TESTS_FAILED, out
    assert "SKIPPED IN CI test_one.py::test_cannot_run_here: Skipped: needs a widget" in out
