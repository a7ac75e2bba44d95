"""keepalived.conf(5) to a tree of statements, each with the file and line it came from.

Read as keepalived 2.2's lib/parser.c reads (read_line, decomment, replace_param,
alloc_strvec_r), without knowing its keywords: a statement followed by `{` has
children, any other is a leaf. So `virtual_ipaddress { 192.0.2.1/24 dev eth0 }` is a
block whose child has the keyword "192.0.2.1/24". Per line, in keepalived's order:

- `!` or `#` outside double quotes ends the line; `\\!` and `\\#` outside quotes are the
  characters themselves. Only `"` quotes; `'` is an ordinary character.
- `@ID rest` keeps `rest` only when ID is the host (keepalived's config-id, `-i`, by
  default the hostname up to the first dot); `@^ID rest` only when it is not. With no
  host, every `@ID` line is dropped and every `@^ID` line kept.
- `$NAME=value` (no blank before `=`) defines; a value ending in `\\` goes on on the
  next lines. `$NAME` followed by a blank, `,`, `)` or the end, or `${NAME}`, is
  replaced when defined (recursively, at use), else left as written. A multi-line
  value may only end a line; its lines all take the line of the use.
  ${_PWD}, ${_INSTANCE}, ${_HASH} and ${_BANG} are predefined; ${_RANDOM} and ${_ENV}
  are refused. After a replacement the line is read again (a `#` from ${_HASH} outside
  quotes ends it, as in keepalived).
- `~SEQ(VAR, [start,] [step,] end) rest` and `~SEQx(...)` read `rest` once per value;
  `~LST` is refused.
- `include[r|m|w|b|a] PATTERN` reads the matching files in sorted order, each file's
  relative includes taken from that file's directory; csh braces `{a,b}` are expanded.
  A pattern with wildcards or braces that matches nothing is a warning (keepalived goes
  on); a plain path that is missing is an error (keepalived warns and goes on: the
  importer would silently lose what it holds).
- The line is then cut before its first `{` or `}` outside quotes, and the rest is read
  as a new line (so `include x }` includes "x }", as keepalived does).

Errors keepalived reports and goes on from, or never ends on (an include of itself, a
definition of itself), are a ParseError here.
"""

from __future__ import annotations

import glob as _glob
import os
import posixpath
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

MAX_LINE = 1022  # keepalived reads lines with fgets(buf, 1024): 1022 and the newline
MAX_DEPTH = 32  # nested blocks
MAX_INCLUDE_DEPTH = 32
MAX_EXPANSIONS = 1000  # replacements in one line
MAX_LINES = 100_000  # lines in all, after ~SEQ and multi-line values

BLANK = " \t"
WHITE = " \t\f\n\r\v"
_NAME_START = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME = _NAME_START | set("0123456789")
UNSUPPORTED = ("_RANDOM", "_ENV")
Stack = tuple[str, ...]  # the files being read, outermost first


class ParseError(Exception):
    """A file refused, with where (line 0: the file itself)."""

    def __init__(self, file: Path, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}")
        self.file, self.line, self.message = file, line, message


class NotConfigFile(OSError):
    """A directory or an executable file: keepalived skips it with a warning."""


@dataclass(frozen=True)
class Node:
    """One statement: `keyword args...`, with `children` when a `{ }` block follows."""

    keyword: str
    args: tuple[str, ...]
    children: tuple[Node, ...] | None
    file: Path
    line: int


@dataclass(frozen=True)
class ParseWarning:
    """Something keepalived also reads past (an include that matches nothing...)."""

    file: Path
    line: int
    message: str


class Files(Protocol):
    """What the parser reads through: the disk, or a test's dictionary."""

    def glob(self, pattern: str) -> list[Path]:
        """The paths matching `pattern` (no braces), sorted."""
        ...

    def read(self, path: Path) -> str:
        """The file's text; OSError (NotConfigFile for one keepalived skips) if not."""
        ...


class DiskFiles:
    def glob(self, pattern: str) -> list[Path]:
        return [Path(p) for p in sorted(_glob.glob(pattern))]

    def read(self, path: Path) -> str:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode) or mode & 0o111:
            raise NotConfigFile(f"{path} is not a regular non-executable file")
        return path.read_text(errors="surrogateescape")


def parse(
    path: Path,
    host: str | None = None,
    *,
    files: Files | None = None,
    warnings: list[ParseWarning] | None = None,
) -> list[Node]:
    """The statements of keepalived's configuration file `path` and what it includes,
    read as keepalived does on the host whose config-id is `host`. ParseWarnings are
    appended to `warnings` when given."""
    reader = _Reader(host, files or DiskFiles())
    try:
        text = reader.files.read(path)
    except OSError as e:
        raise ParseError(path, 0, f"cannot read: {e}") from None
    reader.read_file(path, text, ())
    if warnings is not None:
        warnings.extend(reader.warnings)
    return _build(reader.out)


@dataclass
class _Line:
    words: list[str]
    file: Path
    line: int


@dataclass
class _Definition:
    lines: list[str]
    multiline: bool


@dataclass
class _Reader:
    host: str | None
    files: Files
    out: list[_Line] = field(default_factory=list)
    warnings: list[ParseWarning] = field(default_factory=list)
    defs: dict[str, _Definition] = field(default_factory=dict)

    def read_file(self, path: Path, text: str, stack: Stack) -> None:
        key = posixpath.normpath(str(path))
        stack = (*stack, key)
        open_def: _Definition | None = None
        for number, raw in enumerate(text.split("\n"), start=1):
            raw = raw.rstrip("\r\n")
            if len(raw) > MAX_LINE:
                raise ParseError(path, number, f"longer than keepalived's {MAX_LINE} characters")
            if not raw:
                open_def = None  # an empty line ends a multi-line definition
                continue
            line = _decomment(raw, path, number)
            if not line:
                continue
            if open_def is not None:
                more = line.endswith("\\")
                part = line[:-1].rstrip(BLANK) if more else line
                if part:
                    open_def.lines.append(part)
                open_def = open_def if more else None
                continue
            open_def = self.process(line, path, number, stack)

    def process(self, text: str, path: Path, number: int, stack: Stack) -> _Definition | None:
        """Read one line (or what is left of one): returns the definition it opens."""
        while True:
            if text.startswith("@"):
                negate = text.startswith("@^")
                body = text[2:] if negate else text[1:]
                cut = next((i for i, c in enumerate(body) if c in BLANK), -1)
                if cut < 0 or (body[:cut] == self.host) == negate:
                    return None
                text = body[cut:].lstrip(BLANK)
            if text.startswith("$") and (opened := self.define(text)) is not None:
                return opened if opened.multiline else None
            if text.startswith(("~SEQ", "~LST")):
                self.sequence(text, path, number, stack)
                return None
            if text.startswith("~") or "$" not in text:
                break
            expanded, following = self.expand(text, path, number)
            if expanded is None:
                break
            text = _decomment(expanded, path, number)
            if following:  # a multi-line value: its lines are read as the next lines
                for line in (text, *following):
                    self.process_inner(line, path, number, stack)
                return None
        return self.emit(text, path, number, stack)

    def process_inner(self, text: str, path: Path, number: int, stack: Stack) -> None:
        if text and self.process(text, path, number, stack) is not None:
            raise ParseError(path, number, "a multi-line definition inside a generated line")

    def emit(self, text: str, path: Path, number: int, stack: Stack) -> _Definition | None:
        if not text:
            return None
        if _is_include(text):
            self.include(text, path, number, stack)
            return None
        cut = _brace(text)
        rest = ""
        if cut == 0:
            text, rest = text[0], text[1:].lstrip(BLANK)
        elif cut > 0:
            text, rest = text[:cut].rstrip(BLANK), text[cut:]
        if len(self.out) >= MAX_LINES:
            raise ParseError(path, number, f"more than {MAX_LINES} lines")
        self.out.append(_Line(_split(text, path, number), path, number))
        return self.process(rest, path, number, stack) if rest else None

    def define(self, text: str) -> _Definition | None:
        i = 1
        if len(text) < 2 or text[1] not in _NAME_START:
            return None
        while i < len(text) and text[i] in _NAME:
            i += 1
        if i >= len(text) or text[i] != "=":
            return None
        value = text[i + 1 :].lstrip(BLANK)
        multiline = value.endswith("\\")
        if multiline:
            value = value[:-1].rstrip(BLANK)
        new = _Definition([value] if value else [], multiline)
        self.defs[text[1:i]] = new
        return new

    def lookup(self, name: str, path: Path) -> list[str] | None:
        if name in self.defs:
            return self.defs[name].lines
        if name == "_PWD":
            return [str(path.parent)]
        if name == "_INSTANCE":
            return [self.host] if self.host is not None else None
        return {"_HASH": ["#"], "_BANG": ["!"]}.get(name)

    def expand(self, text: str, path: Path, number: int) -> tuple[str | None, list[str]]:
        """`text` with its definitions replaced, rescanning each replacement as
        replace_param() does (None: nothing was), and the lines after the first of a
        multi-line value."""
        found, following, pos, count = False, list[str](), 0, 0
        while (pos := text.find("$", pos)) >= 0 and pos + 1 < len(text):
            braced = text[pos + 1] == "{"
            start = end = pos + 1 + braced
            while end < len(text) and text[end] in _NAME:
                end += 1
            name, close = text[start:end], end + braced
            ends = text[end : end + 1]  # `}`, or for $NAME a blank, `,`, `)` or the end
            good = ends == "}" if braced else ends in ("", " ", "\t", ",", ")")
            good = good and bool(name) and name[0] in _NAME_START
            if name in UNSUPPORTED and name not in self.defs and (braced or good):
                raise ParseError(path, number, f"${{{name}}} is not supported")
            value = self.lookup(name, path) if good else None
            definition = self.defs.get(name)
            multiline = definition is not None and definition.multiline
            if value is None or (multiline and close != len(text)):
                pos += 1
                continue
            count += 1
            if count > MAX_EXPANSIONS:
                raise ParseError(path, number, f"${name} expands without end")
            first = value[0] if value else ""
            if multiline:
                following = value[1:] + following
            text = text[:pos] + first + text[close:]
            found = True
            if len(text) > MAX_LINE:
                raise ParseError(path, number, f"longer than {MAX_LINE} characters once expanded")
            if first.lstrip(BLANK).startswith("~"):
                break
        return (text if found else None), following

    def sequence(self, text: str, path: Path, number: int, stack: Stack) -> None:
        if text.startswith("~LST"):
            raise ParseError(path, number, "~LST is not supported")
        hexa = text.startswith("~SEQx")
        body = text[5 if hexa else 4 :].lstrip(BLANK)
        close = body.find(")")
        if not body.startswith("(") or close < 0:
            raise ParseError(path, number, f"invalid ~SEQ: {text}")
        inside, rest = body[1:close], body[close + 1 :].lstrip(BLANK)
        var, _, args = (p.strip(BLANK) for p in inside.partition(","))
        args = self.expand(args, path, number)[0] or args
        numbers = [n.strip(BLANK) for n in args.split(",")]
        if not var or var[0] not in _NAME_START or not 1 <= len(numbers) <= 3:
            raise ParseError(path, number, f"invalid ~SEQ: {text}")
        try:
            values = [_strtol(n) for n in numbers]
        except ValueError:
            raise ParseError(path, number, f"invalid ~SEQ: {text}") from None
        if len(values) == 1:
            (last,) = values
            first, step = (-1 if last < 0 else 1), (-1 if last < 1 else 1)
        elif len(values) == 2:
            first, last = values
            step = 1 if first <= last else -1
        else:
            first, step, last = values
            if not step or (first < last and step < 0) or (first > last and step > 0):
                raise ParseError(path, number, f"invalid ~SEQ values: {text}")
        if hexa and (first < 0 or last < 0):
            raise ParseError(path, number, "~SEQx is only for positive numbers")
        value = first
        while True:
            self.defs[var] = _Definition([f"{value:x}" if hexa else str(value)], False)
            self.process_inner(rest, path, number, stack)
            value += step
            if (step > 0 and value > last) or (step < 0 and value < last):
                break

    def include(self, text: str, path: Path, number: int, stack: Stack) -> None:
        pattern = text[8:].lstrip(BLANK) if text[7] in WHITE else text[9:].lstrip(BLANK)
        if len(stack) > MAX_INCLUDE_DEPTH:
            raise ParseError(path, number, f"includes nested deeper than {MAX_INCLUDE_DEPTH}")
        full = posixpath.normpath(posixpath.join(str(path.parent), pattern))
        alternatives = _braces(full)
        wild = len(alternatives) > 1 or any(c in pattern for c in "*?[")
        matches = [m for alt in alternatives for m in self.files.glob(alt)]
        if not matches:
            if not wild:
                raise ParseError(path, number, f"include {pattern}: no such file")
            self.warnings.append(ParseWarning(path, number, f"include {pattern}: no file matches"))
        for match in matches:
            if posixpath.normpath(str(match)) in stack:
                raise ParseError(path, number, f"include {pattern}: {match} includes itself")
            try:
                text = self.files.read(match)
            except NotConfigFile as e:
                self.warnings.append(ParseWarning(path, number, f"include {pattern}: skipped: {e}"))
                continue
            except OSError as e:
                raise ParseError(path, number, f"include {pattern}: {e}") from None
            self.read_file(match, text, stack)


def _decomment(raw: str, path: Path, number: int) -> str:
    """keepalived's decomment(): comments and `\\#`, `\\!` out, blanks trimmed; a
    trailing `\\` stays."""
    out: list[str] = []
    quote = False
    text = raw.lstrip(BLANK)
    i = 0
    while i < len(text):
        c = text[i]
        if c == '"':
            quote = not quote
        elif c == "\\":
            if i + 1 == len(text):
                return "".join(out).rstrip(BLANK) + "\\"
            if not quote and text[i + 1] in "#!":
                c = text[i + 1]
            else:
                c += text[i + 1]
            i += 1
        elif not quote and c in "#!":
            break
        out.append(c)
        i += 1
    if quote:
        raise ParseError(path, number, "unterminated quote")
    return "".join(out).rstrip(BLANK)


def _brace(text: str) -> int:
    """Where the first `{` or `}` outside double quotes is, or -1."""
    quote = False
    for i, c in enumerate(text):
        if c == '"':
            quote = not quote
        elif c in "{}" and not quote:
            return i
    return -1


def _split(text: str, path: Path, number: int) -> list[str]:
    """alloc_strvec_r(): words split by blanks; `"..."` is one word, without its quotes."""
    words: list[str] = []
    i = 0
    while True:
        while i < len(text) and text[i] in WHITE:
            i += 1
        if i == len(text):
            return words
        if text[i] == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise ParseError(path, number, "unterminated quote")
            words.append(text[i + 1 : end])
            i = end + 1
        else:
            start = i
            while i < len(text) and text[i] not in WHITE + '"':
                i += 1
            words.append(text[start:i])


def _is_include(text: str) -> bool:
    """is_include(): `include PATTERN`, or includer, includem, includew, includeb, includea."""
    if not text.startswith("include") or len(text) < 8:
        return False
    return text[7] in WHITE or (len(text) > 8 and text[7] in "rmwba" and text[8] in WHITE)


def _braces(pattern: str) -> list[str]:
    """csh brace expansion as glob(3)'s GLOB_BRACE does: `a{b,c{d,e}}` -> ab acd ace."""
    depth, start = 0, -1
    for i, c in enumerate(pattern):
        if c == "\\":
            continue
        if c == "{":
            if depth == 0:
                start = i
            depth += 1
        elif c == "}" and depth:
            depth -= 1
            if depth == 0:
                parts, level, last = [], 0, start + 1
                for j in range(start + 1, i):
                    level += {"{": 1, "}": -1}.get(pattern[j], 0)
                    if pattern[j] == "," and level == 0:
                        parts.append(pattern[last:j])
                        last = j + 1
                parts.append(pattern[last:i])
                head, tail = pattern[:start], pattern[i + 1 :]
                return [x for p in parts for x in _braces(head + p + tail)]
    return [pattern]


def _strtol(text: str) -> int:
    """strtol(text, NULL, 0): 0x hex, a leading 0 octal."""
    sign, digits = (-1, text[1:]) if text.startswith("-") else (1, text.removeprefix("+"))
    if digits.lower().startswith("0x"):
        return sign * int(digits[2:], 16)
    if digits.startswith("0") and len(digits) > 1:
        return sign * int(digits[1:], 8)
    return sign * int(digits, 10)


def _build(lines: list[_Line]) -> list[Node]:
    """Statements to a tree: a statement followed by `{` takes what comes up to `}`."""

    def make(line: _Line, children: tuple[Node, ...] | None) -> Node:
        return Node(line.words[0], tuple(line.words[1:]), children, line.file, line.line)

    stack: list[tuple[_Line, list[Node]]] = []  # the open blocks: opener, outer level
    level: list[Node] = []
    pending: _Line | None = None  # the last statement, while a `{` may still follow it
    for line in lines:
        if line.words == ["{"]:
            if pending is None:
                raise ParseError(line.file, line.line, "'{' without a statement before it")
            if len(stack) >= MAX_DEPTH:
                raise ParseError(line.file, line.line, f"blocks nested deeper than {MAX_DEPTH}")
            stack.append((pending, level))
            level, pending = [], None
            continue
        if pending is not None:
            level.append(make(pending, None))
            pending = None
        if line.words == ["}"]:
            if not stack:
                raise ParseError(line.file, line.line, "'}' without a block to close")
            opener, outer = stack.pop()
            outer.append(make(opener, tuple(level)))
            level = outer
            continue
        pending = line
    if pending is not None:
        level.append(make(pending, None))
    if stack:
        opener = stack[-1][0]
        raise ParseError(opener.file, opener.line, f"block '{opener.words[0]}' is never closed")
    return level
