"""Writing man(7) roff: escaping text, and filling a hand-written template."""

from __future__ import annotations

import re
from collections.abc import Mapping

_CODE = re.compile(r"``(.+?)``")


def escape(text: str) -> str:
    """Plain text for a roff text line: backslashes and dashes escaped (``\\-`` is what
    man pages write for an option's dash, so it can be copied and pasted)."""
    return text.replace("\\", "\\e").replace("-", "\\-")


def bold(text: str) -> str:
    return f"\\fB{escape(text)}\\fR"


def italic(text: str) -> str:
    return f"\\fI{escape(text)}\\fR"


def prose(text: str) -> str:
    """A docstring's text as one roff line: whitespace joined, ``code`` in bold."""
    flat = " ".join(text.split())
    parts = _CODE.split(flat)  # even: plain text, odd: code
    line = "".join(bold(p) if i % 2 else escape(p) for i, p in enumerate(parts))
    return line_safe(line)


def line_safe(line: str) -> str:
    """A text line that roff will not take for a request (a leading '.' or ')."""
    return "\\&" + line if line.startswith((".", "'")) else line


def quoted(text: str) -> str:
    """A macro argument: in double quotes, with the quote itself escaped."""
    return '"' + escape(text).replace('"', "\\(dq") + '"'


def fill(template: str, parts: Mapping[str, str]) -> str:
    """The template with each ``@NAME@`` replaced; a name the template uses that
    ``parts`` lacks (or the reverse) is a bug in the generator."""
    used = set(re.findall(r"@([A-Z_]+)@", template))
    if used != set(parts):
        raise KeyError(f"template wants {sorted(used)}, given {sorted(parts)}")
    return re.sub(r"@([A-Z_]+)@", lambda m: parts[m.group(1)].rstrip("\n"), template)
