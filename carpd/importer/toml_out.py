"""Writing the carpd.toml an import makes, with a comment naming where each table came
from.

carpd.toml's values are few kinds (strings, integers, floats, booleans, arrays of
them) in flat tables and arrays of tables, so they are written here rather than through
a TOML library: a string is a TOML basic string, whose escapes are JSON's (\\", \\\\,
\\n, \\uXXXX...) plus DEL, which TOML also wants escaped. Every document written is read
back with tomllib by the tests.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

Value = str | int | float | bool | list[str] | list[int]
_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def value(v: Value) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return string(v)
    return "[" + ", ".join(value(x) for x in v) + "]"


def key(name: str) -> str:
    return name if _BARE.match(name) else string(name)


def comment(text: str) -> str:
    """A comment line: control characters (a newline would end it) shown escaped."""
    clean = "".join(c if c >= " " and c != "\x7f" else f"\\x{ord(c):02x}" for c in text)
    return f"# {clean}".rstrip()


@dataclass
class Table:
    """``[name]`` or ``[[name]]`` with its keys in order and the comments above it."""

    name: str
    array: bool
    comments: list[str] = field(default_factory=list)
    items: dict[str, Value] = field(default_factory=dict)

    def text(self) -> str:
        head = f"[[{self.name}]]" if self.array else f"[{self.name}]"
        lines = [comment(c) for c in self.comments] + [head]
        lines += [f"{key(k)} = {value(v)}" for k, v in self.items.items()]
        return "\n".join(lines) + "\n"


@dataclass
class Document:
    header: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)

    def text(self) -> str:
        parts = ["\n".join(comment(c) for c in self.header) + "\n"] if self.header else []
        parts += [t.text() for t in self.tables if t.items or t.array]
        return "\n".join(parts)
