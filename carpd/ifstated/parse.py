"""ifstated.conf(5) to frozen dataclasses: a yylex-compatible lexer feeding a lark LALR grammar.

The lexer follows OpenBSD's usr.sbin/ifstated/parse.y (yylex, lgetc) rather than lark's
regex lexer, because the language is lexed in context: `$macro` values are lexed again
in place, a macro defined on one line is usable from the next (the grammar defines it
before the next token is read), digits are a number only when something like a blank
ends them, and backslash-newline joins lines. Differences from parse.y, all lenient:
an interface name may be dotted (`eth0.100.link.up`; OpenBSD wants `"eth0.100"`), it
is checked against Linux's rules instead of if_nametoindex(3) (sans-IO: interfaces may
come later), `\\r` is a blank, and the last line needs no newline.
"""

from __future__ import annotations

import string as _string
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType
from typing import Any, Literal, TypeAlias, TypeVar, cast

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedToken
from lark.lexer import Lexer

LinkState = Literal["up", "down", "unknown"]
Pos: TypeAlias = tuple[int, int]

# Bounds on what a small file can cost: macros that double each other grow 2^n, and
# every level of nesting is a level of recursion in whoever walks the program.
MAX_MACRO = 64 * 1024  # characters in one macro's value, once expanded
MAX_EXPANDED = 128 * 1024  # characters read from macros in one file, in all
MAX_DEPTH = 64  # nested `!`, `&&`, `||` and `if`


class IfstatedError(Exception):
    """A file refused, with the line and column (both from 1) where it went wrong."""

    def __init__(self, source: str, line: int, column: int, message: str) -> None:
        super().__init__(f"{source}:{line}:{column}: {message}")
        self.source, self.line, self.column, self.message = source, line, column, message


@dataclass(frozen=True)
class LinkTest:
    """`IFNAME.link.up|down|unknown`."""

    interface: str
    state: LinkState


@dataclass(frozen=True)
class ExternalTest:
    """`"command" every N`: true while the command's last run exited 0."""

    command: str
    every: int


@dataclass(frozen=True)
class Not:
    operand: Expr


@dataclass(frozen=True)
class And:
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Or:
    left: Expr
    right: Expr


Expr: TypeAlias = LinkTest | ExternalTest | Not | And | Or


@dataclass(frozen=True)
class Run:
    """`run "command"`: a shell command (ifstated passes it to system(3))."""

    command: str


@dataclass(frozen=True)
class SetState:
    state: str
    at: Pos = field(default=(0, 0), compare=False, repr=False)


@dataclass(frozen=True)
class If:
    test: Expr
    body: tuple[Action, ...]


Action: TypeAlias = Run | SetState | If


@dataclass(frozen=True)
class State:
    name: str
    init: tuple[Action, ...]
    body: tuple[Action, ...]
    at: Pos = field(default=(0, 0), compare=False, repr=False)


@dataclass(frozen=True)
class Program:
    states: tuple[State, ...]
    init_state: str | None  # entered first: `init-state`, else the first state
    body: tuple[Action, ...]  # the global scope


def tests_of(actions: Iterable[Action]) -> Iterator[LinkTest | ExternalTest]:
    """Every test the `if`s among `actions` name, nested ones too, in file order."""
    for action in actions:
        if isinstance(action, If):
            yield from _terms(action.test)
            yield from tests_of(action.body)


def _terms(expr: Expr) -> Iterator[LinkTest | ExternalTest]:
    if isinstance(expr, LinkTest | ExternalTest):
        yield expr
    elif isinstance(expr, Not):
        yield from _terms(expr.operand)
    else:
        yield from _terms(expr.left)
        yield from _terms(expr.right)


def _set_states(actions: Iterable[Action]) -> Iterator[SetState]:
    for action in actions:
        if isinstance(action, SetState):
            yield action
        elif isinstance(action, If):
            yield from _set_states(action.body)


# --- lexer (parse.y: lookup, lgetc, lungetc, yylex) ---------------------------------

_EOF = ""
_Char: TypeAlias = tuple[str, int, int]
_KEYWORDS = {
    "&&": "_AND",
    "down": "DOWN",
    "every": "_EVERY",
    "if": "_IF",
    "init": "_INIT",
    "init-state": "_INIT_STATE",
    "link": "_LINK",
    "run": "_RUN",
    "set-state": "SET_STATE",
    "state": "_STATE",
    "unknown": "UNKNOWN",
    "up": "UP",
    "||": "_OR",
}
_SINGLE = {
    "\n": "_NL",
    "{": "_LBRACE",
    "}": "_RBRACE",
    "(": "_LPAR",
    ")": "_RPAR",
    "!": "_BANG",
    ".": "_DOT",
    "=": "_EQUAL",
}
_ALNUM = frozenset(_string.ascii_letters + _string.digits)
_IN_WORD = _ALNUM | (frozenset(_string.punctuation) - frozenset("(){}!=#,."))
_ENDS_NUMBER = frozenset(_string.whitespace + "),/}=")


class _Reader:
    """Characters with their position; a macro's characters all take the `$`'s."""

    def __init__(self, text: str) -> None:
        self.text, self.i, self.line, self.col = text, 0, 1, 1
        self.back: list[_Char] = []
        self.macro: str | None = None
        self.mi, self.mpos = 0, (1, 1)

    def _file(self) -> _Char:
        if self.i >= len(self.text):
            return _EOF, self.line, self.col
        c, at = self.text[self.i], (self.line, self.col)
        self.i += 1
        self.line, self.col = (self.line + 1, 1) if c == "\n" else (self.line, self.col + 1)
        return c, *at

    def get(self, quoted: bool = False) -> _Char:
        if self.macro is not None:
            if self.mi < len(self.macro):
                self.mi += 1
                return self.macro[self.mi - 1], *self.mpos
            self.macro = None
        if self.back:
            return self.back.pop()
        ch = self._file()
        while not quoted and ch[0] == "\\":  # outside quotes: backslash-newline joins lines
            nxt = self._file()
            if nxt[0] != "\n":
                return nxt[0], ch[1], ch[2]
            ch = self._file()
        return ch

    def unget(self, ch: _Char) -> None:
        if ch[0] == _EOF:
            return
        if self.macro is not None and self.mi > 0:
            self.mi -= 1
        else:
            self.back.append(ch)

    def expand(self, value: str, at: Pos) -> None:
        self.macro, self.mi, self.mpos = value, 0, at


@dataclass
class _Session:
    source: str
    reader: _Reader
    defines: Mapping[str, str]
    macros: dict[str, str] = field(default_factory=dict)
    prev: Token | None = None  # the token before `last`, for "expected X after Y"
    last: Token | None = None
    braces: list[Pos] = field(default_factory=list)  # unclosed `{`
    expanded: int = 0  # characters read from macros so far
    depths: dict[int, int] = field(default_factory=dict)  # id(node) -> its nesting depth

    def error(self, at: Pos, message: str) -> IfstatedError:
        return IfstatedError(self.source, at[0], at[1], message)


def _tokens(s: _Session) -> Iterator[Token]:
    for kind, value, line, col in _lex(s):
        token = Token(kind, value, line=line, column=col, end_line=line, end_column=col)
        s.prev, s.last = s.last, token
        if kind == "_LBRACE":
            s.braces.append((line, col))
        elif kind == "_RBRACE" and s.braces:
            s.braces.pop()
        yield token


def _lex(s: _Session) -> Iterator[tuple[str, str, int, int]]:
    r = s.reader
    while True:
        c, line, col = r.get()
        while c in (" ", "\t", "\r"):
            c, line, col = r.get()
        if c == "#":
            while c not in ("\n", _EOF):
                c, line, col = r.get()
        if c == "$" and r.macro is None:  # a macro's own text is not expanded again
            name = _take(r, lambda ch: ch in _ALNUM or ch == "_")
            value = s.defines.get(name, s.macros.get(name))
            if value is None:
                raise s.error((line, col), f"macro '{name}' not defined")
            s.expanded += len(value)
            if s.expanded > MAX_EXPANDED:
                raise s.error(
                    (line, col),
                    f"macros expand to more than {MAX_EXPANDED // 1024} KiB in all (at '${name}')",
                )
            r.expand(value, (line, col))
            continue
        if c == _EOF:
            yield "_NL", "\n", line, col  # the last line's end; also places "end of file"
            return
        if c in ("'", '"'):
            yield "STRING", _quoted(s, c, (line, col)), line, col
            continue
        if c == "-" or c in _string.digits:
            digits = [(c, line, col)]
            while (ch := r.get())[0] and ch[0] in _string.digits:
                digits.append(ch)
            r.unget(ch)
            if (c != "-" or len(digits) > 1) and (ch[0] == _EOF or ch[0] in _ENDS_NUMBER):
                yield "NUMBER", "".join(d[0] for d in digits), line, col
                continue
            for d in reversed(digits[1:]):  # not a number after all: lex it as a word
                r.unget(d)
        if c in _ALNUM or c in ":_&|":
            word = c + _take(r, lambda ch: ch in _IN_WORD)
            yield _KEYWORDS.get(word, "STRING"), word, line, col
            continue
        yield _SINGLE.get(c, "OTHER"), c, line, col


def _take(r: _Reader, ok: Any) -> str:
    out = []
    while (ch := r.get())[0] and ok(ch[0]):
        out.append(ch[0])
    r.unget(ch)
    return "".join(out)


def _quoted(s: _Session, quote: str, at: Pos) -> str:
    """A quoted string: newlines vanish, a backslash escapes the quote and blanks only."""
    out: list[str] = []
    while True:
        c = s.reader.get(quoted=True)[0]
        if c == "\\":
            nxt = s.reader.get(quoted=True)
            if nxt[0] and nxt[0] in (quote, " ", "\t"):
                c = nxt[0]
            elif nxt[0] == "\n":
                continue
            else:
                s.reader.unget(nxt)
        elif c == quote:
            return "".join(out)
        if c == _EOF:
            raise s.error(at, "quoted string not closed before the end of the file")
        if c == "\0":
            raise s.error(at, "NUL character in quoted string")
        if c != "\n":
            out.append(c)


# --- grammar (parse.y's, as LALR for lark; `&&` and `||` share one precedence) -------

_GRAMMAR = r"""
%declare _NL _LBRACE _RBRACE _LPAR _RPAR _BANG _DOT _EQUAL OTHER STRING NUMBER
%declare _STATE _INIT_STATE _LINK UP DOWN UNKNOWN _IF _RUN SET_STATE _EVERY _INIT _AND _OR

start: (_NL | _entry _NL)*
_entry: init_state | varset | action | state

init_state: _INIT_STATE STRING
varset: STRING _EQUAL string
string: STRING+
state: _STATE string _NL* _LBRACE _NL* ((init | action) _NL+)+ _RBRACE
init: _INIT block

?action: _RUN STRING                -> run
       | SET_STATE STRING           -> set_state
       | _IF expr block             -> if_
block: _NL* _LBRACE _NL* (action _NL+)+ _RBRACE
     | _NL* action

?expr: expr _AND unary              -> and_
     | expr _OR unary               -> or_
     | unary
?unary: _BANG unary                 -> not_
      | _LPAR expr _RPAR
      | link_test
      | ext_test
link_test: interface _DOT _LINK _DOT (UP | DOWN | UNKNOWN)
interface: STRING | interface _DOT STRING
ext_test: STRING _EVERY NUMBER
"""

_LINK_STATES: dict[str, LinkState] = {"UP": "up", "DOWN": "down", "UNKNOWN": "unknown"}
_SESSION: ContextVar[_Session] = ContextVar("ifstated_parse_session")


@dataclass(frozen=True)
class _Init:
    actions: tuple[Action, ...]


class _Build(Transformer[Token, Any]):
    """Called by the parser as it reduces, so `varset` defines a macro before the next
    line is lexed, as in yacc."""

    def varset(self, c: list[Token]) -> None:
        s = _SESSION.get()
        name, value = c
        if any(ch in _string.whitespace for ch in name):
            raise s.error(_at(name), "macro name cannot contain whitespace")
        if len(value) > MAX_MACRO:
            raise s.error(
                _at(name),
                f"macro '{name}' is {len(value)} characters long, at most {MAX_MACRO // 1024} KiB",
            )
        s.macros[str(name)] = str(value)

    def start(self, c: list[Any]) -> list[Any]:
        return c

    def init_state(self, c: list[Token]) -> Token:
        return c[0]

    def string(self, c: list[Token]) -> Token:
        return Token.new_borrow_pos("STRING", " ".join(c), c[0])

    def state(self, c: list[Any]) -> State:
        name, *parts = c
        init = tuple(a for p in parts if isinstance(p, _Init) for a in p.actions)
        body = tuple(p for p in parts if not isinstance(p, _Init))
        return State(str(name), init, body, _at(name))

    def init(self, c: list[tuple[Action, ...]]) -> _Init:
        return _Init(c[0])

    def block(self, c: list[Action]) -> tuple[Action, ...]:
        return tuple(c)

    def run(self, c: list[Token]) -> Run:
        return Run(str(c[0]))

    def set_state(self, c: list[Token]) -> SetState:
        return SetState(str(c[1]), _at(c[0]))

    def if_(self, c: list[Any]) -> If:
        return _nested(If(c[0], c[1]), c[0], *c[1])

    def and_(self, c: list[Expr]) -> And:
        return _nested(And(c[0], c[1]), *c)

    def or_(self, c: list[Expr]) -> Or:
        return _nested(Or(c[0], c[1]), *c)

    def not_(self, c: list[Expr]) -> Not:
        return _nested(Not(c[0]), c[0])

    def interface(self, c: list[Token]) -> Token:
        return Token.new_borrow_pos("STRING", ".".join(c), c[0])

    def link_test(self, c: list[Token]) -> LinkTest:
        name, state = c
        # Linux's dev_valid_name(), where parse.y asks if_nametoindex(3).
        bad = name in ("", ".", "..") or len(name) > 15 or any(ch in "/: \t" for ch in name)
        if bad:
            raise _SESSION.get().error(_at(name), f"invalid interface name '{name}'")
        return LinkTest(str(name), _LINK_STATES[state.type])

    def ext_test(self, c: list[Token]) -> ExternalTest:
        command, every = c
        if not 0 < int(every) <= 0xFFFFFFFF:
            raise _SESSION.get().error(_at(every), f"invalid interval: {every}")
        return ExternalTest(str(command), int(every))


_Node = TypeVar("_Node", If, And, Or, Not)


def _nested(node: _Node, *children: object) -> _Node:
    """``node`` one level above the deepest of ``children``, refused beyond MAX_DEPTH
    (every node is alive until the parse ends, so its id is its own meanwhile)."""
    s = _SESSION.get()
    depth = 1 + max((s.depths.get(id(c), 0) for c in children), default=0)
    if depth > MAX_DEPTH:
        at = _at(s.last) if s.last is not None else (0, 0)
        raise s.error(at, f"nested more than {MAX_DEPTH} deep (`!`, `&&`, `||` and `if`)")
    s.depths[id(node)] = depth
    return node


def _at(token: Token) -> Pos:
    return token.line or 0, token.column or 0


class _Feed(Lexer):
    """Hands lark the tokens of the session it is given as input."""

    def __init__(self, conf: Any) -> None:
        pass

    def lex(self, data: Any) -> Iterator[Token]:  # type: ignore[override]
        return _tokens(data)


@cache
def _parser() -> Lark:
    return Lark(_GRAMMAR, parser="lalr", lexer=_Feed, transformer=_Build())


_NO_DEFINES: Mapping[str, str] = MappingProxyType({})


def parse(
    text: str, source: str = "ifstated.conf", defines: Mapping[str, str] = _NO_DEFINES
) -> Program:
    """Read an ifstated.conf; `defines` are `-D macro=value`: they win over the file's."""
    session = _Session(source, _Reader(text), defines)
    reset = _SESSION.set(session)
    try:
        entries = cast("list[Any]", _parser().parse(session))
    except UnexpectedToken as e:
        raise _syntax_error(session, e) from None
    finally:
        _SESSION.reset(reset)
    return _program(session, entries)


def _program(s: _Session, entries: list[Any]) -> Program:
    states = [e for e in entries if isinstance(e, State)]
    body = tuple(e for e in entries if isinstance(e, Run | SetState | If))
    starts = [e for e in entries if isinstance(e, Token)]  # init-state: the last one wins
    names: set[str] = set()
    errors: list[tuple[Pos, str]] = []
    for state in states:
        if state.name in names:
            errors.append((state.at, f"state {state.name} already exists"))
        names.add(state.name)
    errors += [(a.at, "set-state must be used inside a state") for a in _set_states(body)]
    for state in states:
        for a in _set_states(state.init + state.body):
            if a.state not in names:
                errors.append((a.at, f"state '{a.state}' not declared"))
    if starts and starts[-1] not in names:
        errors.append((_at(starts[-1]), f"invalid start state {starts[-1]}"))
    if errors:
        at, message = min(errors)
        raise s.error(at, message)
    first = str(starts[-1]) if starts else states[0].name if states else None
    return Program(tuple(states), first, body)


_WHAT = {"_NL": "end of line", "$END": "end of file", "STRING": "a string", "NUMBER": "a number"}
_WHAT |= {kind: f"'{word}'" for word, kind in _KEYWORDS.items()}
_WHAT |= {kind: f"'{c}'" for c, kind in _SINGLE.items() if c != "\n"}


def _describe(token: Token) -> str:
    if token.type in ("STRING", "NUMBER", "OTHER"):
        text = token.value if len(token.value) <= 24 else token.value[:21] + "..."
        return repr(text)
    return _WHAT[token.type]


def _syntax_error(s: _Session, e: UnexpectedToken) -> IfstatedError:
    got = _describe(e.token)
    expected = sorted(_WHAT[kind] for kind in e.expected if kind in _WHAT)
    prev = s.prev if e.token.type != "$END" else s.last
    if prev is not None and prev.type != "_NL" and 0 < len(expected) <= 4:
        alternatives = " or ".join(filter(None, (", ".join(expected[:-1]), expected[-1])))
        message = f"expected {alternatives} after {_describe(prev)}, got {got}"
    else:
        message = f"unexpected {got}"
    if e.token.type == "$END" and s.braces:
        message += f" ('{{' at line {s.braces[-1][0]}, column {s.braces[-1][1]} is not closed)"
    return s.error(_at(e.token), message)
