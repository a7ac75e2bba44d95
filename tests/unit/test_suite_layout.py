"""The suite runs as one: `pytest tests` collects every folder together, which pytest
refuses when two test files share a basename (rootdir-less "import file mismatch")."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).parents[1]


def test_every_test_module_has_a_unique_basename() -> None:
    seen: defaultdict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("*.py"):
        if path.name not in {"__init__.py", "conftest.py"}:
            seen[path.name].append(str(path.relative_to(TESTS)))
    assert len(seen) > 10, "no test modules found"
    shared = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert not shared, f"test modules that share a basename: {shared}"
