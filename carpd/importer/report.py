"""What an import carried over, changed and left out: one line per finding, with its
file and line, grouped, and the exit status it makes.

A finding is one of three kinds:

- ``not translated``: the statement has no equivalent in carpd.toml and is left out;
- ``changed``: it is translated, but carpd will not behave as keepalived (or ucarp) did;
- ``note``: translated with the same effect, said so the reader knows where it went.

The exit status is 0 when there are only notes, 1 when anything was not translated or
changed meaning (the carpd.toml is still written), 2 when the file could not be read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Kind = Literal["not translated", "changed", "note"]
KINDS: tuple[Kind, ...] = ("not translated", "changed", "note")
HEADINGS = {
    "not translated": "not translated (left out of carpd.toml)",
    "changed": "changed (translated, but carpd behaves differently)",
    "note": "notes (translated with the same effect)",
}
EXIT_OK, EXIT_INCOMPLETE, EXIT_UNREADABLE = 0, 1, 2


@dataclass(frozen=True)
class Finding:
    kind: Kind
    file: Path
    line: int
    keyword: str
    what: str


@dataclass
class Report:
    """The findings of one import. Paths are shown relative to ``base`` (the directory of
    the file imported) when they are under it, so a report reads the same anywhere."""

    base: Path
    findings: list[Finding] = field(default_factory=list)

    def add(self, kind: Kind, file: Path, line: int, keyword: str, what: str) -> None:
        self.findings.append(Finding(kind, file, line, keyword, what))

    def shown(self, file: Path) -> str:
        rel = os.path.relpath(os.path.abspath(file), os.path.abspath(self.base))
        return rel if not rel.startswith("..") else os.path.abspath(file)

    @property
    def status(self) -> int:
        return EXIT_INCOMPLETE if any(f.kind != "note" for f in self.findings) else EXIT_OK

    def lines(self) -> list[str]:
        """The report: a heading per kind that has findings, then its findings in the
        order of the files and lines they come from."""
        out: list[str] = []
        for kind in KINDS:
            mine = [f for f in self.findings if f.kind == kind]
            if not mine:
                continue
            out.append(f"{HEADINGS[kind]}:")
            order = sorted(enumerate(mine), key=lambda p: (self.shown(p[1].file), p[1].line, p[0]))
            for _, f in order:
                out.append(_printable(f"{self.shown(f.file)}:{f.line}: {f.keyword}: {f.what}"))
        return out

    def summary(self) -> str:
        counts = {k: sum(1 for f in self.findings if f.kind == k) for k in KINDS}
        plural = {"not translated": "not translated", "changed": "changed", "note": "notes"}
        said = (
            ", ".join(f"{n} {k if n == 1 else plural[k]}" for k, n in counts.items() if n)
            or "nothing to report"
        )
        verdict = (
            "everything was carried over"
            if self.status == EXIT_OK
            else "review the lines above before using it"
        )
        return f"{said}: {verdict}"


def _printable(text: str) -> str:
    """No control character from a file reaches the terminal."""
    return "".join(c if c >= " " and c != "\x7f" else f"\\x{ord(c):02x}" for c in text)
