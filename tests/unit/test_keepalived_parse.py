"""keepalived.conf read as keepalived 2.2 reads it (lib/parser.c), each statement with
its file and line."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carpd.importer.parse import (
    MAX_DEPTH,
    MAX_LINE,
    Node,
    ParseError,
    ParseWarning,
    parse,
)

MAIN = Path("/etc/keepalived/keepalived.conf")
Shape = tuple[str, tuple[str, ...], "tuple[Shape, ...] | None"]


class Memory:
    """Files in a dictionary: path -> text."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def glob(self, pattern: str) -> list[Path]:
        return sorted(Path(p) for p in self.files if fnmatch.fnmatchcase(p, pattern))

    def read(self, path: Path) -> str:
        try:
            return self.files[str(path)]
        except KeyError:
            raise FileNotFoundError(str(path)) from None


def read(text: str, host: str | None = None, **more: str) -> list[Node]:
    return parse(MAIN, host, files=Memory({str(MAIN): text, **more}))


def shape(nodes: tuple[Node, ...] | list[Node] | None) -> tuple[Shape, ...] | None:
    if nodes is None:
        return None
    return tuple((n.keyword, n.args, shape(n.children)) for n in nodes)


def where(nodes: list[Node] | tuple[Node, ...]) -> list[tuple[str, str, int]]:
    out = []
    for n in nodes:
        out.append((n.keyword, n.file.name, n.line))
        out += where(n.children or ())
    return out


def refused(text: str, **more: str) -> ParseError:
    with pytest.raises(ParseError) as caught:
        read(text, **more)
    return caught.value


def test_comments_start_at_bang_or_hash_outside_double_quotes() -> None:
    nodes = read(
        "! a comment\n"
        "# another\n"
        "router_id r1 # trailing\n"
        'script "/bin/check #1 !x"  ! trailing\n'
        "notify \\#literal a\\!b\n"
        "user 'it#s'\n"
    )
    assert shape(nodes) == (
        ("router_id", ("r1",), None),
        ("script", ("/bin/check #1 !x",), None),
        ("notify", ("#literal", "a!b"), None),
        ("user", ("'it",), None),  # only " quotes
    )
    assert [n.line for n in nodes] == [3, 4, 5, 6]


def test_a_quoted_string_is_one_word_without_its_quotes() -> None:
    nodes = read('a "x y"  ""  b"c d"e\n')
    assert shape(nodes) == (("a", ("x y", "", "b", "c d", "e"), None),)


def test_an_unterminated_quote_is_refused_with_its_line() -> None:
    error = refused('global_defs {\n  router_id "r1\n}\n')
    assert (error.file, error.line) == (MAIN, 2)


def test_blocks_on_many_lines_one_line_and_with_the_brace_on_the_next_line() -> None:
    many = read(
        "vrrp_instance VI_1 {\n  state MASTER\n  virtual_ipaddress {\n    192.0.2.1/24\n  }\n}\n"
    )
    one = read("vrrp_instance VI_1 { state MASTER\nvirtual_ipaddress { 192.0.2.1/24 } }\n")
    next_line = read(
        "vrrp_instance VI_1\n{\nstate MASTER\nvirtual_ipaddress\n{\n192.0.2.1/24\n}\n}\n"
    )
    expected = (
        (
            "vrrp_instance",
            ("VI_1",),
            (
                ("state", ("MASTER",), None),
                ("virtual_ipaddress", (), (("192.0.2.1/24", (), None),)),
            ),
        ),
    )
    assert shape(many) == shape(one) == shape(next_line) == expected
    assert where(many) == [
        ("vrrp_instance", "keepalived.conf", 1),
        ("state", "keepalived.conf", 2),
        ("virtual_ipaddress", "keepalived.conf", 3),
        ("192.0.2.1/24", "keepalived.conf", 4),
    ]
    assert [line for _, _, line in where(one)] == [1, 1, 2, 2]


def test_an_empty_block_has_no_children_and_a_leaf_has_none() -> None:
    nodes = read("track_interface { }\nnopreempt\n")
    assert nodes[0].children == ()
    assert nodes[1].children is None


def test_braces_inside_quotes_are_words() -> None:
    assert shape(read('notify "/bin/n {x}" { a }\n')) == (
        ("notify", ("/bin/n {x}",), (("a", (), None),)),
    )


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("a {\n b\n}\n}\n", 4, "'}' without"),
        ("a {\n b {\n c\n}\n", 1, "never closed"),
        ("{\n b\n}\n", 1, "'{' without"),
        ("a {\n}\n{\n}\n", 3, "'{' without"),
    ],
)
def test_unbalanced_braces_are_refused_with_the_line(text: str, line: int, words: str) -> None:
    error = refused(text)
    assert error.line == line
    assert words in error.message


def test_blocks_nested_too_deep_are_refused() -> None:
    deep = "a {\n" * (MAX_DEPTH + 1) + "}\n" * (MAX_DEPTH + 1)
    assert "deeper" in refused(deep).message
    fine = "a {\n" * MAX_DEPTH + "}\n" * MAX_DEPTH
    assert len(read(fine)) == 1


def test_a_line_longer_than_keepalived_reads_is_refused() -> None:
    assert refused("a\nb " + "x" * MAX_LINE + "\n").line == 2
    assert read("b " + "x" * (MAX_LINE - 2) + "\n")[0].keyword == "b"


def test_includes_keep_file_and_line_and_are_relative_to_the_including_file() -> None:
    nodes = read(
        "global_defs {\n  router_id r1\n}\ninclude conf.d/*.conf\nvrrp_sync_group G { }\n",
        **{
            "/etc/keepalived/conf.d/b.conf": "vrrp_instance B {\n  include ../part/prio.inc\n}\n",
            "/etc/keepalived/conf.d/a.conf": "\n\nvrrp_instance A { }\n",
            "/etc/keepalived/part/prio.inc": "! the priority\npriority 100\n",
        },
    )
    assert where(nodes) == [
        ("global_defs", "keepalived.conf", 1),
        ("router_id", "keepalived.conf", 2),
        ("vrrp_instance", "a.conf", 3),  # sorted, as glob(3)
        ("vrrp_instance", "b.conf", 1),
        ("priority", "prio.inc", 2),
        ("vrrp_sync_group", "keepalived.conf", 5),
    ]
    assert nodes[2].children is not None
    assert nodes[2].children[0].file == Path("/etc/keepalived/part/prio.inc")


def test_include_variants_and_csh_braces() -> None:
    nodes = read(
        "includer {x,y}.conf\nincludea /abs/{z}.conf\n",
        **{"/etc/keepalived/x.conf": "x", "/etc/keepalived/y.conf": "y", "/abs/z.conf": "z"},
    )
    assert [n.keyword for n in nodes] == ["x", "y", "z"]


def test_a_glob_that_matches_nothing_is_a_warning_and_reading_goes_on() -> None:
    warnings: list[ParseWarning] = []
    files = Memory({str(MAIN): "a\ninclude /etc/keepalived/conf.d/*.conf\nb\n"})
    nodes = parse(MAIN, files=files, warnings=warnings)
    assert [n.keyword for n in nodes] == ["a", "b"]
    assert [(w.file, w.line) for w in warnings] == [(MAIN, 2)]
    assert "no file matches" in warnings[0].message


def test_a_missing_include_file_is_refused_at_the_include() -> None:
    error = refused("a\ninclude other.conf\n")
    assert (error.file, error.line) == (MAIN, 2)


def test_an_include_loop_is_refused() -> None:
    error = refused(
        "include a.conf\n", **{"/etc/keepalived/a.conf": "x\ninclude ./keepalived.conf\n"}
    )
    assert (error.file.name, error.line) == ("a.conf", 2)
    assert "includes itself" in error.message


def test_an_include_inside_a_one_line_block_takes_the_brace_with_it_as_keepalived_does() -> None:
    """keepalived checks for `include` before it cuts the line at braces: `include x }`
    includes the file "x }" (and then misses a '}')."""
    error = refused("global_defs { include x.conf }\n", **{"/etc/keepalived/x.conf": "a"})
    assert "x.conf }" in error.message


def test_real_files_relative_includes_and_executables_skipped(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "main.conf").write_text("include sub/one.conf\ninclude sub/*.sh\n")
    (tmp_path / "sub" / "one.conf").write_text("include two.conf\n")
    (tmp_path / "sub" / "two.conf").write_text("\nrouter_id r2\n")
    (tmp_path / "sub" / "x.sh").write_text("bad\n")
    (tmp_path / "sub" / "x.sh").chmod(0o755)
    warnings: list[ParseWarning] = []
    nodes = parse(tmp_path / "main.conf", warnings=warnings)
    assert [(n.keyword, n.file, n.line) for n in nodes] == [
        ("router_id", tmp_path / "sub" / "two.conf", 2)
    ]
    assert [(w.line, "skipped" in w.message) for w in warnings] == [(2, True)]


def test_a_missing_main_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ParseError) as caught:
        parse(tmp_path / "nothing.conf")
    assert caught.value.line == 0


def test_host_conditionals() -> None:
    text = "@lb1 priority 200\n@lb2 priority 100\n@^lb1 unicast_src_ip 192.0.2.2\n@lb1\n"
    assert shape(read(text, "lb1")) == (("priority", ("200",), None),)
    assert shape(read(text, "lb2")) == (
        ("priority", ("100",), None),
        ("unicast_src_ip", ("192.0.2.2",), None),
    )
    assert shape(read(text)) == (("unicast_src_ip", ("192.0.2.2",), None),)


def test_definitions_and_where_they_are_replaced() -> None:
    nodes = read(
        "$IF=eth0\n"
        "$IP=192.0.2.1\n"
        "interface $IF\n"
        "a $IP/24 ${IP}/24 $IP,x $UNDEF\n"
        "$X = 1\n"  # a blank before '=': not a definition
        "$BASE=198.51.100.${SUB}\n"
        "$SUB=7\n"
        "b ${BASE}\n"  # replaced at use
        "@lb1 $PRIO=200\n"
        "@lb2 $PRIO=100\n"
        "priority $PRIO\n"
        "$IF_LB1=@lb1\n"
        "$IF_LB1 nopreempt\n",
        "lb1",
    )
    assert shape(nodes) == (
        ("interface", ("eth0",), None),
        ("a", ("$IP/24", "192.0.2.1/24", "192.0.2.1,x", "$UNDEF"), None),
        ("$X", ("=", "1"), None),
        ("b", ("198.51.100.7",), None),
        ("priority", ("200",), None),
        ("nopreempt", (), None),
    )


def test_an_undefined_braced_name_stays_and_its_braces_open_a_block_as_in_keepalived() -> None:
    assert shape(read("a ${UNDEF} x\n")) == (
        ("a", ("$",), (("UNDEF", (), None),)),
        ("x", (), None),
    )


def test_predefined_definitions_and_the_hash_that_comments_after_replacement() -> None:
    nodes = read('a ${_PWD} ${_INSTANCE}\nb x${_HASH}y\nc "x${_HASH}y"\n', "lb1")
    assert shape(nodes) == (
        ("a", ("/etc/keepalived", "lb1"), None),
        ("b", ("x",), None),
        ("c", ("x#y",), None),
    )
    assert "not supported" in refused("a ${_RANDOM 1 9}\n").message


def test_a_definition_of_itself_is_refused_where_keepalived_never_ends() -> None:
    assert refused("$A=$A\nx\n$A\n").line == 3


def test_multiline_definitions_are_read_at_the_line_of_their_use() -> None:
    nodes = read(
        "$VI= \\\n"
        "  vrrp_instance VI_${N} { \\\n"
        "    ! comments go\n"
        "    virtual_router_id ${N} \\\n"
        "  }\n"
        "$N=1\n"
        "$VI\n"
        "$N=2\n"
        "$VI\n"
        "a $VI x\n"  # a multi-line value only ends a line
    )
    assert shape(nodes) == (
        ("vrrp_instance", ("VI_1",), (("virtual_router_id", ("1",), None),)),
        ("vrrp_instance", ("VI_2",), (("virtual_router_id", ("2",), None),)),
        ("a", ("$VI", "x"), None),
    )
    assert [line for _, _, line in where(nodes)] == [7, 7, 9, 9, 10]


def test_an_empty_line_ends_a_multiline_definition() -> None:
    nodes = read("$M=a \\\nb \\\n\nc\n$M\n")
    assert shape(nodes) == (("c", (), None), ("a", (), None), ("b", (), None))


def test_sequences() -> None:
    nodes = read(
        "virtual_ipaddress {\n"
        "  ~SEQ(N, 1, 3) 192.0.2.${N}/24\n"
        "  ~SEQx(H, 0x9, 8, 0x19) 2001:db8::${H}\n"
        "  ~SEQ(K, 2) k${K}\n"
        "  ~SEQ(A, 1, 2) ~SEQ(B, 2, 1) ${A}.${B}\n"
        "}\n"
    )
    assert nodes[0].children is not None
    assert [n.keyword for n in nodes[0].children] == [
        "192.0.2.1/24", "192.0.2.2/24", "192.0.2.3/24",
        "2001:db8::9", "2001:db8::11", "2001:db8::19",
        "k1", "k2",
        "1.2", "1.1", "2.2", "2.1",
    ]  # fmt: skip
    assert {n.line for n in nodes[0].children} == {2, 3, 4, 5}
    assert "not supported" in refused("~LST(V, a, b) x ${V}\n").message
    assert refused("a\n~SEQ(N, 1, -1, 3) x\n").line == 2


# Round trip: any tree, written out as keepalived text, reads back as the same tree.

WORD = st.text(st.sampled_from("abcxyz019_-./:%,"), min_size=1, max_size=6)
KEYWORD = WORD.filter(lambda w: not w.startswith(("include", "~", "$", "@")))
QUOTED = st.text(st.sampled_from("ab {}!#'-/ \t"), max_size=6)
ARG = st.one_of(WORD, QUOTED)


@st.composite
def trees(draw: st.DrawFn, depth: int = 0) -> list[Shape]:
    out: list[Shape] = []
    for _ in range(draw(st.integers(0, 3 if depth < 3 else 0))):
        keyword, args = draw(KEYWORD), tuple(draw(st.lists(ARG, max_size=3)))
        children = tuple(draw(trees(depth + 1))) if draw(st.booleans()) else None
        out.append((keyword, args, children))
    return out


def render(tree: list[Shape] | tuple[Shape, ...], style: st.DataObject) -> tuple[str, list[int]]:
    """keepalived text for `tree`, blocks on one line or many as `style` draws, and the
    line each statement is on, in order."""
    lines: list[str] = [""]
    at: list[int] = []

    def word(w: str) -> str:
        plain = w and not any(c in w for c in ' \t{}!#"\\')
        return w if plain else f'"{w}"'

    def put(nodes: list[Shape] | tuple[Shape, ...]) -> None:
        for keyword, args, children in nodes:
            if lines[-1] and style.draw(st.booleans()):
                lines.append("")
            at.append(len(lines))
            lines[-1] += " ".join([keyword, *map(word, args)]) + " "
            if children is not None:
                lines[-1] += "{ "
                if style.draw(st.booleans()):
                    lines.append("")
                put(children)
                lines[-1] += "} "
                if style.draw(st.booleans()):
                    lines[-1] += "# after"
                    lines.append("")
            else:  # nothing ends a statement but the line or a brace
                lines.append("")

    put(tree)
    return "\n".join(lines) + "\n", at


@given(trees(), st.data())
def test_any_tree_written_out_reads_back_the_same(tree: list[Shape], style: st.DataObject) -> None:
    text, lines = render(tree, style)
    nodes = read(text)
    assert shape(nodes) == tuple(tree)
    assert [line for _, _, line in where(nodes)] == lines
