"""The whole file: its statements read in the order they depend on each other (what
instances refer to first, wherever it stands), and the carpd.toml document."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from carpd.importer.keepalived.global_defs import global_defs
from carpd.importer.keepalived.instances import instance, versions
from carpd.importer.keepalived.state import State, Target
from carpd.importer.keepalived.sync_groups import sync_group, sync_group_members
from carpd.importer.keepalived.tracked import track_file, track_process, vrrp_script
from carpd.importer.keepalived.tracks import trackers
from carpd.importer.keepalived.unsupported import TOP_NOT
from carpd.importer.parse import Node
from carpd.importer.report import Report
from carpd.importer.toml_out import Document, Table


@dataclass
class Translation:
    document: Document
    report: Report


def translate(nodes: Sequence[Node], source: Path, *, to: Target = "vrrp3") -> Translation:
    """carpd.toml for keepalived's statements read from ``source`` (the file imported,
    for the report's paths and the header), and what could not be carried over."""
    st = State(source, to)
    later = _definitions(st, nodes)
    for n in later:
        if n.keyword == "vrrp_sync_group":
            sync_group_members(st, n)
    for n in later:
        if n.keyword == "vrrp_instance":
            instance(st, n)
    known = {i.kname for i in st.instances}
    for n in later:
        if n.keyword == "vrrp_sync_group":
            sync_group(st, n, known)
        elif n.keyword == "vrrp_instance":
            pass
        elif n.keyword in TOP_NOT:
            st.say("not translated", n, TOP_NOT[n.keyword])
        else:
            st.say("not translated", n, "not known to the importer")
    versions(st)
    tracks = trackers(st)
    return Translation(_document(st, tracks), st.report)


def _definitions(st: State, nodes: Sequence[Node]) -> list[Node]:
    """Read global_defs and the tracked objects; the rest, for the later passes."""
    later: list[Node] = []
    for n in nodes:
        if n.keyword == "global_defs":
            global_defs(st, n)
        elif n.keyword == "vrrp_script":
            vrrp_script(st, n)
        elif n.keyword in ("track_file", "vrrp_track_file"):
            track_file(st, n)
        elif n.keyword == "vrrp_track_process":
            track_process(st, n)
        else:
            later.append(n)
    return later


def _document(st: State, tracks: list[Table]) -> Document:
    doc = Document(
        header=[
            f"carpd.toml from {st.source.name} (carpd import keepalived"
            + (" --to carp" if st.to == "carp" else "")
            + ").",
            "What was not carried over, or changed, is in the report (stderr).",
        ]
    )
    if st.glob and st.glob_node is not None:
        comments = [f"{st.where(st.glob_node)} global_defs"]
        doc.tables.append(Table("global", False, comments, st.glob))
    for inst in st.instances:
        comments = [f"{st.where(inst.node)} vrrp_instance {inst.kname}"]
        doc.tables.append(Table("carp", True, comments, inst.carp))
    doc.tables += tracks + st.actions
    return doc
