"""Strings from a peer, a daemon or a file, made safe to print on a terminal: control
characters (ESC, BEL, C1, DEL, carriage return ...) and the bidirectional overrides are
shown as Python escapes, so a hostile string cannot retitle, clear or rewrite the screen
nor forge a line of output."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: object, keep: str = "") -> str:
    """``text`` (str() of it) with every control character but those in ``keep`` (e.g.
    "\\n\\t" for a multi-line text) escaped: ESC becomes the four characters \\x1b."""
    return _CONTROL.sub(
        lambda m: m.group() if m.group() in keep else repr(m.group())[1:-1], str(text)
    )
