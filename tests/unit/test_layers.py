"""Imports point one way: core <- config <- linux <- daemon; ctl knows only the protocol."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "carpd"
ALLOWED = {
    "core": {"core"},
    "config": {"core", "config"},
    "linux": {"core", "config", "linux"},
    "daemon": {"core", "config", "linux", "daemon"},
    "ctl": {"ctl"},
}


def carpd_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "carpd" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_what_is_below_it(layer: str) -> None:
    for path in (PACKAGE / layer).glob("*.py"):
        wrong = carpd_imports(path) - ALLOWED[layer]
        assert not wrong, f"{path.relative_to(PACKAGE)} imports carpd.{wrong}"


def test_core_does_no_io() -> None:
    banned = {"socket", "subprocess", "asyncio", "time", "os", "pyroute2", "random"}
    for path in (PACKAGE / "core").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                mods = {node.module.split(".")[0]}
            else:
                continue
            assert not mods & banned, f"{path.name} imports {mods & banned}"
