"""Secrets never appear in a diff, a journal or a log: a secret file shows only that it
changed, and in any other file the values of password-like keys and private key blocks
are masked."""

from __future__ import annotations

import difflib
import re

MASK = "********"
# `pass = "x"`, `password: x`, `psk x`, `secret=x`, `key "x"`: the value after the key.
_KEYED = re.compile(
    r"(?i)\b((?:pass(?:word|phrase|wd)?|secret|psk|private[_-]?key|auth[_-]?key|"
    r"shared[_-]?key|api[_-]?key|token)\s*(?:[=:]\s*|\s+))(\"[^\"]*\"|'[^']*'|\S+)"
)
_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S)


def looks_secret(data: bytes) -> bool:
    return b"PRIVATE KEY-----" in data


def mask(text: str) -> str:
    text = _PEM.sub("[private key]", text)
    return _KEYED.sub(lambda m: m.group(1) + MASK, text)


def unified(path: str, old: bytes | None, new: bytes | None, secret: bool, peer: str) -> str:
    """This node's version against the peer's, as `diff -u peer here` would show it."""
    a, b = f"{peer}:{path}", f"here:{path}"
    if old == new:
        return ""
    if secret or looks_secret(old or b"") or looks_secret(new or b""):
        return f"--- {a}\n+++ {b}\n(secret: contents not shown)\n"
    try:
        old_t = (old or b"").decode()
        new_t = (new or b"").decode()
    except UnicodeDecodeError:
        return f"Binary files {a} and {b} differ\n"
    lines = difflib.unified_diff(
        mask(old_t).splitlines(keepends=True),
        mask(new_t).splitlines(keepends=True),
        a if old is not None else "/dev/null",
        b if new is not None else "/dev/null",
    )
    out = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    return out or f"--- {a}\n+++ {b}\n(only secret values differ: not shown)\n"
