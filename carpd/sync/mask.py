"""Secrets never appear in a diff, a journal or a log: a secret file shows only that it
changed, and in any other file (and in a check's or after-command's output) the values of
password-like keys, the password in a URL and whole private key blocks are masked.

Masking errs on the side of hiding: an unquoted value is hidden to the end of its line
(``password = correct horse battery``, ``rootpw --iscrypted $6$...``)."""

from __future__ import annotations

import difflib
import re

MASK = "********"

# Key names whose value is a secret. "pass" alone only as a whole word or after a
# separator (auth_pass, ftp-pass), never inside passive or bypass; the others also at the
# end of a longer name (db_password, client_secret, wpa_passphrase, rootpw, bind_pw).
_ENDS = (
    r"password|passwd|passphrase|pwd|pw|secret|psk|preshared[_-]?key|private[_-]?key|"
    r"authtok|auth[_-]?key|shared[_-]?key|api[_-]?key|access[_-]?key|token|credentials?|"
    r"authorization"
)
# nginx's *_pass directives name an upstream, not a password. A key never starts inside a
# path (/etc/ipsec.secrets, /etc/carpd/lan.pass are file names, not keys).
_NOT = r"(?!(?:proxy|fastcgi|uwsgi|scgi|grpc|memcached)_pass\b)"
_KEY = rf"{_NOT}(?:[\w.-]*?(?:{_ENDS})|(?:[\w.-]*[_.-])?pass)s?"
_VALUE = r"\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*'|[^\s\"'][^\n]*?"  # quoted, or the rest of the line
_KEYED = re.compile(
    rf"(?<![\w./-])(?P<head>(?P<q>[\"']?){_KEY}(?P=q)(?:[ \t]*(?:=>|[=:])[ \t]*|[ \t]+))"
    rf"(?P<value>{_VALUE})(?=[ \t]*(?:$|\n))|"
    # A quoted value with more after it on the line (JSON: "password": "x", "port": 1).
    rf"(?<![\w./-])(?P<head2>(?P<q2>[\"']?){_KEY}(?P=q2)[ \t]*(?:=>|[=:])[ \t]*)"
    r"(?P<value2>\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*')",
    re.I | re.M,
)
_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)([^/\s@]+)(@)")
# Any armoured block whose label says it is private or secret: PEM private keys (RSA, EC,
# ENCRYPTED, OPENSSH ...), PGP private key blocks, OpenVPN static and tls-crypt keys. One
# cut off before its END line is hidden to the end of the text.
_LABEL = r"[^-\n]*(?:PRIVATE KEY|SECRET KEY|OpenVPN [^-\n]*key)[^-\n]*"
_BLOCK = re.compile(rf"(?i)-----BEGIN ({_LABEL})-----.*?(?:-----END \1-----|\Z)", re.S)


def looks_secret(data: bytes) -> bool:
    return _BLOCK.search(data.decode(errors="replace")) is not None


def _keyed(m: re.Match[str]) -> str:
    head = m.group("head") if m.group("head") is not None else m.group("head2")
    return head + MASK


def mask(text: str) -> str:
    text = _BLOCK.sub("[private key block]", text)
    text = _URL.sub(lambda m: m.group(1) + MASK + m.group(3), text)
    return _KEYED.sub(_keyed, text)


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
