"""No import circle anywhere in carpd/: each module's imports (lazy ones inside functions
and TYPE_CHECKING ones included) point one way, so any module can be read, tested and
changed with only what is below it in mind."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "carpd"


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.with_suffix("").relative_to(PACKAGE.parent).parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def graph() -> dict[str, set[str]]:
    """carpd module -> the carpd modules it imports (a name imported from a package is
    the submodule of that name if there is one, else the package)."""
    mods = modules()

    def resolve(name: str) -> str | None:
        parts = name.split(".")
        while parts and ".".join(parts) not in mods:
            parts.pop()
        return ".".join(parts) or None

    edges: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package up level - 1
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                targets = [f"{base}.{a.name}" for a in node.names] or [base]
            for target in targets:
                if target.split(".")[0] == "carpd":
                    dep = resolve(target)
                    if dep is not None and dep != name:
                        deps.add(dep)
        edges[name] = deps
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle: one path around each strongly connected group of modules."""
    found: list[list[str]] = []
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            found.append([*path[path.index(name) :], name])
            return
        if name in done:
            return
        for dep in sorted(edges.get(name, ())):
            visit(dep, [*path, name])
        done.add(name)

    for name in sorted(edges):
        visit(name, [])
    return found


def test_the_graph_sees_lazy_and_type_checking_imports() -> None:
    """What the check below relies on: main imports serve inside a function, and serve's
    Daemon comes from runtime."""
    edges = graph()
    assert "carpd.daemon.service.serve" in edges["carpd.daemon.service.main"]
    assert "carpd.daemon.runtime.runtime" in edges["carpd.daemon.service.serve"]


def test_no_import_circle_in_carpd() -> None:
    found = cycles(graph())
    assert not found, "import circles:\n" + "\n".join(" -> ".join(c) for c in found)
