"""A doctor's findings, and how carpctl shows them (text like ``carpctl status``, JSON)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Finding:
    """One check on one subject: ``ok`` True (well), False (wrong: ``fix`` says what to
    do) or None (not checked here, ``saw`` says why). ``warning``: a None worth seeing,
    with a fix (a peer that does not answer: the checks that need it did not run); it is
    not a problem, and the exit status does not change for it."""

    check: str  # stable name, e.g. "carp-filter"
    subject: str | None  # the carpdev, vhid or interface it is about; None: the node
    ok: bool | None
    saw: str  # what was seen: the rule, the sysctl and its value, the source address
    fix: str | None = None  # a command or a config line
    warning: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "subject": self.subject,
            "ok": self.ok,
            "warning": self.warning,
            "saw": self.saw,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class Report:
    config: str
    carpd: str  # "running ..." or why its status could not be read
    running: bool
    findings: tuple[Finding, ...]

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.ok is False]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.warning]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": not self.problems,
            "config": self.config,
            "carpd": self.carpd,
            "running": self.running,
            "problems": len(self.problems),
            "warnings": len(self.warnings),
            "findings": [f.to_json() for f in self.findings],
        }

    def text(self) -> str:
        lines = [f"config {self.config}", f"carpd: {self.carpd}"]
        lines += [line for f in self.findings for line in finding_lines(f)]
        n, w = len(self.problems), len(self.warnings)
        lines.append(f"{n} problem(s) found" if n else "no problems found")
        if w:
            lines[-1] += f", {w} warning(s)"
        return "\n".join(lines)


VERDICT = {True: "ok", False: "PROBLEM", None: "skipped"}


def finding_lines(f: Finding) -> Sequence[str]:
    name = f.check + (f" {f.subject}" if f.subject else "")
    lines = [f"{name}: {'WARNING' if f.warning else VERDICT[f.ok]}: {f.saw}"]
    if f.fix and (f.ok is False or f.warning):
        lines.append(f"\tfix: {f.fix}")
    return lines
