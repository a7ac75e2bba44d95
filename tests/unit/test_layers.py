"""Imports point one way: core (and ifstated) <- config <- linux <- daemon; ctl knows
only the protocol."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "carpd"
ALLOWED = {
    "core": {"core"},
    "config": {"core", "config", "ifstated"},
    "linux": {"core", "config", "linux"},
    "daemon": {"core", "config", "linux", "daemon", "ifstated", "cluster"},
    # The pair as one: peers' status read over HTTPS, validated, and the verdict across
    # the nodes. The daemon reads the peers; carpctl, the page and the drill show it.
    "cluster": {"config", "cluster"},
    # carpctl web-user writes the status page's users file (carpd.web.auth: stdlib only).
    # carpctl sync: the sync commands (carpd.sync; config only when they run).
    # carpctl --config: the control socket from carpd.toml's [global], read by carpd's
    # own loader (carpd.config.load_global; only when a config is named), never the
    # daemon's runtime.
    # carpctl doctor: the node's checks (carpd.doctor), run beside the daemon, never in it.
    "ctl": {"ctl", "web", "sync", "config", "doctor", "cluster"},
    # carpctl doctor reads the node and the config with carpd's own readers (the loader,
    # carpd.linux.ifaddrs' netlink dump) and the daemon only through its status JSON:
    # never carpd.daemon, so it runs whether carpd does or not.
    "doctor": {"config", "linux", "doctor", "cluster"},
    # Keeping files the same on the peer: a command beside the daemon, never in it. Its
    # checks and after-commands run by carpd's one program runner (carpd.linux.process).
    "sync": {"core", "config", "sync", "linux"},
    # The status page reads the daemon through its view (the seam) and its command
    # handlers (the service's).
    "web": {"core", "config", "daemon", "web", "cluster"},
    # ifstated.conf's language, sans-IO: the config checks a file with it.
    "ifstated": {"ifstated"},
    # Other daemons' configurations read for `import` (issue 31): keepalived.conf's
    # parser; the translator will write carpd's config. Nothing in carpd imports it yet.
    "importer": {"config", "importer"},
}
# Outside the package (none of it is in the wheel): the labs drive daemons from outside,
# as an operator would, never their insides; the benchmark is a lab user; the fuzzer
# feeds the pure core.
OUTSIDE = {"carpd_lab": {"core", "ctl"}, "bench": {"core", "ctl"}, "fuzz": {"core"}}


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


# The composition root: where the daemon is put together with the integrations beside
# it (the status page), which in turn read the daemon, and the command line that hands
# `carpd import` to the importer. Nothing else may look up.
ROOTS = {"daemon/service/serve.py": {"web"}, "daemon/service/main.py": {"importer"}}


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_what_is_below_it(layer: str) -> None:
    paths = list((PACKAGE / layer).rglob("*.py"))
    assert paths, f"no carpd/{layer}"
    for path in paths:
        extra = ROOTS.get(str(path.relative_to(PACKAGE)), set())
        wrong = carpd_imports(path) - ALLOWED[layer] - extra
        assert not wrong, f"{path.relative_to(PACKAGE)} imports carpd.{wrong}"


# Inside carpd/daemon, by folder. The seam is what the rest is written against (host
# steps and lanes, the view, events, the integration contract, the takeover plan). An
# effect (steps around host actions) and an observer (a subscriber to events, a report)
# are written against the seam alone: never the runtime, never another effect or
# observer, so each can be read, replaced or removed on its own. The registry is the
# one module that names the integrations; the runtime drives the seam and makes its
# integrations through the registry; the service puts the process together.
DAEMON = {
    "seam": {"seam"},
    "effects": {"seam"},
    "observers": {"seam"},
    "registry": {"seam", "effects", "observers"},
    "runtime": {"seam", "observers", "runtime", "registry"},
    "service": {"seam", "observers", "runtime", "service"},
}
# Which parts of carpd.daemon the other layers may use.
DAEMON_USERS = {"web": {"seam", "service"}}
ALONE = {"effects", "observers"}  # a module here imports no sibling


def daemon_imports(path: Path) -> set[str]:
    """The carpd.daemon modules ``path`` imports, as "seam.lanes", "registry", ..."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = (
                [node.module]
                if node.module != "carpd.daemon"
                else [f"carpd.daemon.{a.name}" for a in node.names]
            )
        found |= {n.removeprefix("carpd.daemon.") for n in names if n.startswith("carpd.daemon.")}
    return found


def daemon_folder(path: Path) -> str:
    rel = path.relative_to(PACKAGE / "daemon")
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def test_the_daemon_has_its_folders_and_nothing_beside_them() -> None:
    found = {daemon_folder(p) for p in (PACKAGE / "daemon").rglob("*.py")} - {"__init__"}
    assert found == set(DAEMON)


@pytest.mark.parametrize("folder", sorted(DAEMON))
def test_each_daemon_folder_imports_only_what_it_is_written_against(folder: str) -> None:
    paths = [p for p in (PACKAGE / "daemon").rglob("*.py") if daemon_folder(p) == folder]
    assert paths, f"no carpd/daemon/{folder}"
    for path in paths:
        for name in daemon_imports(path):
            top = name.split(".")[0]
            assert top in DAEMON[folder], f"{path.relative_to(PACKAGE)} imports {name}"
            if folder in ALONE and top == folder:
                raise AssertionError(f"{path.relative_to(PACKAGE)} imports {name}: a sibling")


@pytest.mark.parametrize("layer", sorted(DAEMON_USERS))
def test_layers_beside_the_daemon_use_only_its_seam_and_service(layer: str) -> None:
    for path in (PACKAGE / layer).rglob("*.py"):
        for name in daemon_imports(path):
            assert name.split(".")[0] in DAEMON_USERS[layer], f"{path.name} imports {name}"


def test_the_runtime_stays_small() -> None:
    """Host setup, the operator's levers, transitions and the integrations live beside
    it: runtime.py feeds the core and routes what it asks for."""
    lines = (PACKAGE / "daemon" / "runtime" / "runtime.py").read_text().count("\n")
    assert lines < 300


def test_the_folder_rules_catch_an_effect_that_imports_the_runtime(tmp_path: Path) -> None:
    """The check itself: a module that breaks the rule is found."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from carpd.daemon.runtime.runtime import Daemon\nfrom carpd.daemon import registry\n"
    )
    assert daemon_imports(bad) == {"runtime.runtime", "registry"}
    assert not daemon_imports(bad) <= DAEMON["effects"]


@pytest.mark.parametrize("directory", sorted(OUTSIDE))
def test_the_lab_bench_and_fuzz_import_only_what_they_drive(directory: str) -> None:
    paths = list((PACKAGE.parent / directory).rglob("*.py"))
    assert paths
    for path in paths:
        wrong = carpd_imports(path) - OUTSIDE[directory]
        assert not wrong, f"{path.relative_to(PACKAGE.parent)} imports carpd.{wrong}"


# What would let the core touch the world: modules that do I/O, read the clock or the
# random source, or load code; and the builtins that do I/O or load code.
IO_MODULES = {
    "socket", "subprocess", "asyncio", "time", "os", "pyroute2", "random", "io", "pathlib",
    "shutil", "select", "selectors", "signal", "threading", "multiprocessing", "logging",
    "sys", "importlib", "secrets", "datetime", "tempfile", "ctypes", "fcntl", "mmap",
}  # fmt: skip
IO_BUILTINS = {"open", "print", "input", "breakpoint", "exec", "eval", "compile", "__import__"}


def core_modules() -> list[Path]:
    paths = sorted((PACKAGE / "core").glob("*.py"))
    assert len(paths) > 5, f"no carpd/core modules in {PACKAGE / 'core'}"
    return paths


def test_core_does_no_io() -> None:
    """No module of the core imports an I/O module or calls an I/O builtin: time comes
    in as an argument, packets and actions go out as values."""
    for path in core_modules():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in IO_BUILTINS, f"{path.name} calls {node.func.id}()"
                continue
            if isinstance(node, ast.Import):
                mods = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                mods = {node.module.split(".")[0]}
            else:
                continue
            assert not mods & IO_MODULES, f"{path.name} imports {mods & IO_MODULES}"


def core_graph() -> dict[str, set[str]]:
    """carpd.core module -> the carpd.core modules it imports (TYPE_CHECKING ones too)."""
    graph: dict[str, set[str]] = {}
    for path in core_modules():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("carpd.core."):
                deps.add(node.module.split(".")[2])  # type: ignore[union-attr]
        graph[path.stem] = deps
    return graph


def test_core_has_no_import_cycle() -> None:
    """The core's types live in core/model.py, so no two core modules need each other
    (machine.py and router.py once did)."""
    graph = core_graph()
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name in done:
            return
        for dep in graph.get(name, ()):
            visit(dep, (*path, name))
        done.add(name)

    for name in graph:
        visit(name, ())
