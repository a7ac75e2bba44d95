"""What the passes over a keepalived.conf share: the objects read so far, the names
taken, the tables made and the report."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from carpd.importer.keepalived.values import label
from carpd.importer.parse import Node
from carpd.importer.report import Kind, Report
from carpd.importer.toml_out import Table, Value

Target = Literal["vrrp3", "carp"]
TrackKind = Literal["script", "interface", "file", "process"]
Scope = tuple[Literal["vhids", "groups"], str]
PRIO_MAX = 254  # keepalived keeps the effective priority in 1..254 (255: the owner)
# What each kind of tracked object is defined by, as the report names it.
ROOT = {
    "script": "vrrp_script",
    "file": "track_file",
    "process": "vrrp_track_process",
    "interface": "interface",
}
# Said of a keepalived name carpd had to change.
RENAMED = "(carpd names: 1-15 of letters, digits, '.', '_', '-')"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass
class Script:
    node: Node
    argv: list[str]
    interval: float = 1.0
    timeout: float = 0.0  # 0: the interval, as keepalived
    weight: int = 0
    reverse: bool = False
    rise: int = 1
    fall: int = 1


@dataclass
class Watched:
    """A track_file or vrrp_track_process: what it watches, and its default weight."""

    node: Node
    target: str | None
    weight: int
    extra: list[tuple[Node, str]] = field(default_factory=list)


@dataclass
class Use:
    """One tracked object used by an instance or a sync group, with its weight."""

    kind: TrackKind
    ref: str
    weight: int | None  # None: FAULT
    node: Node
    scope: Scope
    owner: str  # the instance or group, for the report


@dataclass
class Instance:
    node: Node
    kname: str
    name: str
    carp: dict[str, Value]
    priority: int
    version: int
    version_from: str
    group: str | None = None


@dataclass
class Group:
    node: Node
    kname: str
    name: str
    members: list[str]
    tracking_weight: bool = False


class Names:
    """carpd names: 1-15 of letters, digits, '.', '_', '-', unique in their table."""

    def __init__(self) -> None:
        self.taken: dict[str, set[str]] = {}

    def take(self, table: str, wanted: str) -> str:
        base = _SAFE.sub("-", wanted)[:15] or table
        taken = self.taken.setdefault(table, set())
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base[: 15 - len(str(n)) - 1]}-{n}"
        taken.add(name)
        return name


class State:
    def __init__(self, source: Path, to: Target) -> None:
        self.source, self.to = source, to
        self.report = Report(source.parent)
        self.names = Names()
        self.glob: dict[str, Value] = {}
        self.glob_node: Node | None = None
        self.version = 2  # keepalived's default
        self.version_node: Node | None = None
        self.strict: Node | None = None
        self.default_interface = "eth0"
        self.scripts: dict[str, Script] = {}
        self.files: dict[str, Watched] = {}
        self.processes: dict[str, Watched] = {}
        self.groups: dict[str, Group] = {}
        self.member_of: dict[str, str] = {}
        self.instances: list[Instance] = []
        self.uses: list[Use] = []
        self.actions: list[Table] = []
        # [[action]]s of notify whose last argument is the priority, known at the end
        self.pending_priority: list[tuple[dict[str, Value], str, int]] = []
        self.said: set[str] = set()  # the vrrp_scripts whose own findings are reported

    def say(self, kind: Kind, node: Node, what: str, keyword: str | None = None) -> None:
        self.report.add(kind, node.file, node.line, keyword or label(node), what)

    def root(self, kind: str, ref: str) -> Script | Watched | None:
        """The top-level definition of a tracked object; None for an interface."""
        roots: dict[str, Mapping[str, Script | Watched]] = {
            "script": self.scripts,
            "file": self.files,
            "process": self.processes,
        }
        return roots.get(kind, {}).get(ref)

    def where(self, node: Node) -> str:
        """file:line of a statement, as the output's comments name it."""
        return f"{self.report.shown(node.file)}:{node.line}"
