"""ifstated.conf(5) parsing: OpenBSD's example and man page, parse.y's lexer, exact errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carpd.ifstated.parse import (
    And,
    Expr,
    ExternalTest,
    If,
    IfstatedError,
    LinkTest,
    Not,
    Or,
    Program,
    Run,
    SetState,
    State,
    parse,
)

# OpenBSD's etc/examples/ifstated.conf (1.2), as shipped (trailing blanks included).
EXAMPLE = (Path(__file__).parent / "data" / "ifstated-openbsd-example.conf").read_text()

PING = ExternalTest("ping -q -c 1 -w 1 192.168.1.10 >/dev/null 2>&1", 10)
A, B, C = (LinkTest(name, "up") for name in ("a", "b", "c"))


def only_if(program: Program) -> Expr:
    """The expression of a file that is one global `if`."""
    (action,) = program.body
    assert isinstance(action, If)
    return action.test


def test_openbsd_example_parses_to_its_meaning() -> None:
    program = parse(EXAMPLE)
    assert program == Program(
        states=(
            State(
                "neutral",
                init=(),
                body=(
                    If(
                        LinkTest("em2", "down"),
                        (
                            Run("logger -st ifstated 'interface to syslog server em2 is down'"),
                            SetState("demoted"),
                        ),
                    ),
                    If(
                        Not(PING),
                        (
                            Run("logger -st ifstated 'could not reach syslog server'"),
                            SetState("demoted"),
                        ),
                    ),
                ),
            ),
            State(
                "demoted",
                init=(Run("ifconfig -g carp carpdemote"),),
                body=(
                    If(
                        And(LinkTest("em2", "up"), PING),
                        (
                            Run("logger -st ifstated 'syslog server is ok again'"),
                            Run("ifconfig -g carp -carpdemote"),
                            SetState("neutral"),
                        ),
                    ),
                ),
            ),
        ),
        init_state="neutral",
        body=(
            If(LinkTest("carp0", "up"), (Run("logger -st ifstated 'carp0 is master'"),)),
            If(LinkTest("carp0", "down"), (Run("logger -st ifstated 'carp0 is backup'"),)),
        ),
    )


def test_man_page_example_with_a_continued_quoted_macro() -> None:
    text = """\
links_up = "em0.link.up && em1.link.up"
net = '( "ping -q -c 1 -w 1 192.168.0.1 > /dev/null" every 10 && \\
         "ping -q -c 1 -w 1 192.168.0.2 > /dev/null" every 10 )'
state one {
\tinit {
\t\trun "logger -t ifstated entering state one"
\t\trun "ifconfig -g carp -carpdemote"
\t}

\tif ! $net || urndis0.link.up
\t\tset-state two

\tif ! $links_up {
\t\trun "ifconfig -g carp carpdemote"

\t\tif urndis0.link.down
\t\t\tset-state three
\t}
}
state two {
\trun "true"
}
state three {
\trun "true"
}
"""
    one = parse(text).states[0]
    ping = [ExternalTest(f"ping -q -c 1 -w 1 192.168.0.{i} > /dev/null", 10) for i in (1, 2)]
    assert one.init == (
        Run("logger -t ifstated entering state one"),
        Run("ifconfig -g carp -carpdemote"),
    )
    first, second = one.body
    assert first == If(Or(Not(And(*ping)), LinkTest("urndis0", "up")), (SetState("two"),))
    # A macro is text: `! $links_up` is `(! em0.link.up) && em1.link.up`, not its negation.
    assert isinstance(second, If)
    assert second.test == And(Not(LinkTest("em0", "up")), LinkTest("em1", "up"))
    assert second.body[1] == If(LinkTest("urndis0", "down"), (SetState("three"),))


@pytest.mark.parametrize(
    ("expr", "tree"),
    [
        ("a.link.up && b.link.up || c.link.up", Or(And(A, B), C)),
        # parse.y: `%left AND OR`, one precedence, left to right (not C's).
        ("a.link.up || b.link.up && c.link.up", And(Or(A, B), C)),
        ("a.link.up || (b.link.up && c.link.up)", Or(A, And(B, C))),
        ("! a.link.up && b.link.up", And(Not(A), B)),
        ("!(a.link.up && b.link.up)", Not(And(A, B))),
        ("! ! a.link.up", Not(Not(A))),
        ("((a.link.up))", A),
        ('"t" every 5 || !a.link.down', Or(ExternalTest("t", 5), Not(LinkTest("a", "down")))),
        ("a.link.unknown", LinkTest("a", "unknown")),
    ],
)
def test_operators_and_precedence(expr: str, tree: Expr) -> None:
    assert only_if(parse(f'if {expr}\n\trun "x"\n')) == tree


def render(expr: Expr) -> str:
    """Fully parenthesised, so the tree must come back unchanged."""
    if isinstance(expr, LinkTest):
        return f"{expr.interface}.link.{expr.state}"
    if isinstance(expr, ExternalTest):
        return f'"{expr.command}" every {expr.every}'
    if isinstance(expr, Not):
        return f"! {render(expr.operand)}"
    op = "&&" if isinstance(expr, And) else "||"
    return f"({render(expr.left)} {op} {render(expr.right)})"


TERMS = st.one_of(
    st.builds(
        LinkTest,
        st.sampled_from(["em0", "carp1", "eth0.100", "br-lan", "wan"]),
        st.sampled_from(["up", "down", "unknown"]),
    ),
    st.builds(ExternalTest, st.sampled_from(["true", "ping -c1 h"]), st.integers(1, 99)),
)
EXPRS = st.recursive(
    TERMS,
    lambda sub: st.one_of(st.builds(Not, sub), st.builds(And, sub, sub), st.builds(Or, sub, sub)),
    max_leaves=12,
)


@given(EXPRS)
def test_rendered_expressions_parse_back(expr: Expr) -> None:
    assert only_if(parse(f'if {render(expr)}\n\trun "x"\n')) == expr


@pytest.mark.parametrize(
    "name", ["carp0", "em2", "wan", "eth0.100", '"eth0.100"', "br-lan", "10ge0", "bond0.7.2"]
)
def test_interface_names(name: str) -> None:
    test = only_if(parse(f'if {name}.link.down\n\trun "x"\n'))
    assert test == LinkTest(name.strip('"'), "down")


def test_macros_defines_and_quoting() -> None:
    text = """\
lnk = "em0.link.up"
n = "7"
cmd = '"echo $HOME \\" \\n"'
if $lnk && "probe" every $n
\trun $cmd
"""
    program = parse(text)
    assert program.body == (
        If(And(LinkTest("em0", "up"), ExternalTest("probe", 7)), (Run('echo $HOME " \\n'),)),
    )
    # -D wins over the file's definition and may define what the file does not.
    overridden = parse(text, defines={"lnk": "(em1.link.down || em2.link.up)", "n": "30"})
    assert only_if(overridden) == And(
        Or(LinkTest("em1", "down"), LinkTest("em2", "up")), ExternalTest("probe", 30)
    )
    assert only_if(parse('if $x\n\trun "y"\n', defines={"x": "em3.link.up"})) == LinkTest(
        "em3", "up"
    )


def test_lexical_details() -> None:
    text = (
        "# a comment\n"
        "init-state \\\n   b   # continued line\n"
        "state a { # comments end lines\n"
        "\trun 'one \\' two'\n"
        "}\n"
        "state two words\n"
        "{\n"
        "\tif em0.link.up\n"
        "\t{\n\n"
        '\t\trun "multi\n'
        'line"\n'
        "\t}\n"
        "}\n"
        "state b {\r\n"
        "\tif x.link.up if y.link.down run z\r\n"
        "}"  # no newline at the end
    )
    program = parse(text)
    assert program.init_state == "b"
    assert [s.name for s in program.states] == ["a", "two words", "b"]
    assert program.states[0].body == (Run("one ' two"),)
    assert program.states[1].body == (If(LinkTest("em0", "up"), (Run("multiline"),)),)
    inner = If(LinkTest("y", "down"), (Run("z"),))
    assert program.states[2].body == (If(LinkTest("x", "up"), (inner,)),)


def test_first_state_is_initial_and_a_file_may_have_none() -> None:
    assert parse('state z {\n\trun "a"\n}\nstate y {\n\trun "b"\n}\n').init_state == "z"
    assert parse('if em0.link.up\n\trun "a"\n') == Program(
        (), None, (If(LinkTest("em0", "up"), (Run("a"),)),)
    )
    assert parse("") == Program((), None, ())


ERRORS = [
    ("state a {\n\tif x.link.up\n\t\tset-state nowhere\n}\n", 3, 3, "state 'nowhere' not declared"),
    ('state a {\n\tif $nope\n\t\trun "x"\n}\n', 2, 5, "macro 'nope' not defined"),
    (
        'state a {\n\tif x.link.up {\n\t\trun "x"\n\t}\n',
        5,
        1,
        "unexpected end of file ('{' at line 1, column 9 is not closed)",
    ),
    ("state a {\n\trun\n}\n", 2, 5, "expected a string after 'run', got end of line"),
    ('state a {\n\trun "x" @\n}\n', 2, 10, "expected end of line after 'x', got '@'"),
    ("state a {\n\tif x.link.up ; run y\n}\n", 2, 15, "unexpected ';'"),
    ("}\n", 1, 1, "unexpected '}'"),
    ('init\n\trun "x"\n', 1, 1, "unexpected 'init'"),
    ('state a {\n\trun "x"\n}\nstate a {\n\trun "y"\n}\n', 4, 7, "state a already exists"),
    ('init-state b\nstate a {\n\trun "x"\n}\n', 1, 12, "invalid start state b"),
    (
        "if x.link.up\n\tset-state a\nstate a {\n\trun y\n}\n",
        2,
        2,
        "set-state must be used inside a state",
    ),
    ('if "t" every 0\n\trun x\n', 1, 14, "invalid interval: 0"),
    ('if "t" every 4294967296\n\trun x\n', 1, 14, "invalid interval: 4294967296"),
    ('if "t" every -3\n\trun x\n', 1, 14, "invalid interval: -3"),
    ('if "t" every\n\trun x\n', 1, 13, "expected a number after 'every', got end of line"),
    (
        "if x.link.sideways\n\trun y\n",
        1,
        11,
        "expected 'down', 'unknown' or 'up' after '.', got 'sideways'",
    ),
    (
        'state a {\n\tif x.link.up { run "x" }\n}\n',
        2,
        25,
        "expected end of line after 'x', got '}'",
    ),
    (
        'state a {\n\trun "never closed\n}\n',
        2,
        6,
        "quoted string not closed before the end of the file",
    ),
    (
        "if waytoolonginterface0.link.up\n\trun x\n",
        1,
        4,
        "invalid interface name 'waytoolonginterface0'",
    ),
    ('a = "$b"\nif $a\n\trun x\n', 2, 4, "expected '!', '(' or a string after 'if', got '$'"),
    ('if $later\n\trun x\nlater = "x.link.up"\n', 1, 4, "macro 'later' not defined"),
    ("state 10 {\n\trun x\n}\n", 1, 7, "expected a string after 'state', got '10'"),
    ('"a b" = c\n', 1, 1, "macro name cannot contain whitespace"),
    ("up = 'x.link.up'\n", 1, 1, "unexpected 'up'"),  # keywords are no macro names
    ("if x.link.up {\n}\n", 2, 1, "unexpected '}'"),
]


@pytest.mark.parametrize(("text", "line", "column", "message"), ERRORS)
def test_refused_with_line_and_column(text: str, line: int, column: int, message: str) -> None:
    with pytest.raises(IfstatedError) as caught:
        parse(text, source="/etc/ifstated.conf")
    error = caught.value
    assert (error.line, error.column, error.message) == (line, column, message)
    assert str(error) == f"/etc/ifstated.conf:{line}:{column}: {message}"


def test_semantic_errors_report_the_first_in_the_file() -> None:
    text = "state a {\n\tset-state b\n}\nstate a {\n\tset-state c\n}\n"
    with pytest.raises(IfstatedError, match=r":2:2: state 'b' not declared"):
        parse(text)


CONF_ALPHABET = st.sampled_from(
    [
        *"{}()!.=$#\\'\"\n\t -&|;@0123456789",
        *["state ", "init ", "init-state ", "if ", "run ", "set-state ", "every ", "link", "up"],
        *["down", "unknown", "&&", "||", "em0", " x ", "'a'", '"c"', "$m", "m = 'em0.link.up'\n"],
    ]
)


@given(st.lists(CONF_ALPHABET, max_size=40).map("".join))
def test_any_text_parses_or_is_refused_cleanly(text: str) -> None:
    try:
        parse(text)
    except IfstatedError as e:
        assert e.line >= 1 and e.column >= 1
