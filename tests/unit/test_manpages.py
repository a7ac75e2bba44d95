"""The man pages (scripts/manpages): every option of carpd, carpctl and each carpctl
command, and every key of every table of the config model, is on its page, as the
programs' own --help says it; and man(1) renders each page without a warning.

The pages are read as man(1) renders them (plain text), and the options and keys to look
for come from the parsers and the model, walked here on their own.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretBytes

from carpd.config.model import INTERNAL, CarpConfig, ConfigFile
from carpd.config.ucarp_cli import make_ucarp_parser
from carpd.ctl.main import make_parser as carpctl_parser
from carpd.daemon.service.main import make_parser as carpd_parser
from man import config as man_config
from man import names

ROOT = Path(__file__).parents[2]
PAGES = ("carpd.8", "carpctl.8", "carpd.toml.5")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pages as the package build makes them: scripts/manpages OUTDIR."""
    out = tmp_path_factory.mktemp("man")
    env = {**os.environ, "PYTHON": sys.executable, "SOURCE_DATE_EPOCH": "1767225600"}
    subprocess.run([ROOT / "scripts" / "manpages", out], check=True, env=env, timeout=60)
    assert sorted(p.name for p in out.iterdir()) == sorted(PAGES)
    return out


def render(page: Path, *, width: int = 80, warnings: str = "w") -> subprocess.CompletedProcess[str]:
    """man -l, plain text; with hyphenation off (-rHY=0) for the text comparisons, so a
    word is never split across lines."""
    man = shutil.which("man")
    assert man, "man(1) is missing: scripts/setup installs man-db"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LC_ALL": "C",
        "MANWIDTH": str(width),
        "MANROFFOPT": "-rHY=0",
        "HOME": os.environ.get("HOME", "/"),
    }
    return subprocess.run(
        [man, f"--warnings={warnings}", "-l", str(page)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def text_of(page: Path) -> str:
    done = render(page)
    assert done.returncode == 0, done.stderr
    return done.stdout


def flat(text: str) -> str:
    return " ".join(text.split())


def sections(text: str) -> dict[str, str]:
    """The rendered page by section (.SH: lines at column 0)."""
    out: dict[str, str] = {}
    name = ""
    for line in text.splitlines():
        if line and not line[0].isspace():
            name = line.strip()
            out.setdefault(name, "")
        else:
            out[name] = out.get(name, "") + line + "\n"
    return out


def subsections(text: str) -> dict[str, str]:
    """A section by subsection (.SS: lines indented 3 spaces)."""
    out: dict[str, str] = {}
    name = ""
    for line in text.splitlines():
        m = re.match(r"^ {3}(\S.*)$", line)
        if m:
            name = m.group(1).strip()
            out[name] = ""
        else:
            out[name] = out.get(name, "") + line + "\n"
    return out


def tagged(block: str) -> set[str]:
    """The option strings of the option list items (tags at 7 spaces) in a block:
    "-c FILE, --config FILE  help" gives -c and --config."""
    found = set()
    for line in block.splitlines():
        m = re.match(r"^ {7}(-\S.*)$", line)
        if m:
            tag = re.split(r" {2,}", m.group(1))[0]
            found |= {part.split()[0] for part in tag.split(", ")}
    return found


# --- man --warnings -------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_man_renders_each_page_without_a_warning(built: Path, page: str) -> None:
    # --warnings=w: every groff warning, not only man-db's default (mac)
    for width in (80, 60):
        done = render(built / page, width=width)
        assert done.returncode == 0, done.stderr
        assert done.stderr == "", f"{page} at MANWIDTH={width}:\n{done.stderr}"
        assert len(done.stdout.splitlines()) > 50
    # examples (.EX) are not filled: none may run past a terminal of 80 columns
    too_long = [line for line in render(built / page).stdout.splitlines() if len(line) > 80]
    assert not too_long, too_long


def test_the_pages_are_dated_by_source_date_epoch(built: Path) -> None:
    for page in PAGES:
        footer = text_of(built / page).strip().splitlines()[-1]
        assert "2026-01-01" in footer and "carpd 0.1" in footer, footer


# --- carpd(8) ----------------------------------------------------------------------


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    return {
        o
        for a in parser._actions
        if a.help != argparse.SUPPRESS and not isinstance(a, argparse._SubParsersAction)
        for o in a.option_strings
    }


def test_every_carpd_option_is_in_synopsis_and_options(built: Path) -> None:
    page = sections(text_of(built / "carpd.8"))
    expected = option_strings(carpd_parser())
    assert {"-c", "--config", "--check", "--conntrackd-conf", "-i", "--vhid"} <= expected
    assert expected <= tagged(page["OPTIONS"]), expected - tagged(page["OPTIONS"])
    synopsis = set(re.findall(r"(?<![\w-])--?[\w][\w-]*", page["SYNOPSIS"]))
    short_or_first = {a.option_strings[0] for a in carpd_parser()._actions if a.option_strings}
    assert short_or_first <= synopsis, short_or_first - synopsis


def test_the_ucarp_options_have_their_own_subsection(built: Path) -> None:
    options = subsections(sections(text_of(built / "carpd.8"))["OPTIONS"])
    ucarp = option_strings(make_ucarp_parser(add_help=False))
    assert ucarp <= tagged(options["ucarp-compatible options"])
    assert not ucarp & tagged(options[""])  # carpd's own come first, apart


def help_entries(help_text: str) -> dict[str, str]:
    """--help's option list: each option string -> its help text (flattened)."""
    entries: dict[str, str] = {}
    current: list[str] = []
    for line in help_text.splitlines():
        m = re.match(r"^ {2}(-\S.*?)(?: {2,}(.*))?$", line)
        if m:
            current = [part.split()[0] for part in m.group(1).split(", ")]
            for o in current:
                entries[o] = m.group(2) or ""
        elif current and line.startswith(" " * 4) and line.strip():
            for o in current:
                entries[o] = f"{entries[o]} {line.strip()}".strip()
        else:
            current = []
    return entries


def run_help(module: str, *words: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", module, *words, "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_carpd_help_says_what_the_page_says(built: Path) -> None:
    text = text_of(built / "carpd.8")
    entries = help_entries(run_help("carpd"))
    assert set(entries) == option_strings(carpd_parser())
    options = flat(sections(text)["OPTIONS"])
    for option, help_line in entries.items():
        assert flat(help_line) in options, f"{option}: {help_line!r} is not on carpd(8)"


# --- carpctl(8) --------------------------------------------------------------------


def commands(
    parser: argparse.ArgumentParser, words: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], str, argparse.ArgumentParser]]:
    """(words, help line, parser) of every carpctl command, nested ones too."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {c.dest: c.help or "" for c in action._choices_actions}
            for name, sub in action.choices.items():
                yield (*words, name), helps[name], sub
                yield from commands(sub, (*words, name))


def test_every_carpctl_command_and_option_is_on_the_page(built: Path) -> None:
    page = sections(text_of(built / "carpctl.8"))
    parser = carpctl_parser()
    assert option_strings(parser) <= tagged(page["OPTIONS"])
    blocks = subsections(page["COMMANDS"])
    found = list(commands(parser))
    assert {w for w, _, _ in found} >= {("status",), ("sync", "push"), ("web-user",)}
    for words, _, sub in found:
        name = " ".join(words)
        assert name in blocks, f"carpctl {name}: no subsection in COMMANDS"
        wanted = option_strings(sub) - {"-h", "--help"}
        assert wanted <= tagged(blocks[name]), f"carpctl {name}: {wanted - tagged(blocks[name])}"
        # the command's usage line names its positionals
        usage = blocks[name].strip().splitlines()[0]
        for a in sub._actions:
            if not a.option_strings and not isinstance(a, argparse._SubParsersAction):
                shown = a.metavar or "|".join(a.choices or ())
                assert str(shown) in usage, f"carpctl {name}: {shown} not in {usage!r}"
    synopsis = flat(page["SYNOPSIS"])
    leaves = [w for w, _, sub in found if not any(cw[:-1] == w for cw, _, _ in found)]
    for words in leaves:
        assert re.search(r"carpctl \[options\] " + r" .*?".join(map(re.escape, words)), synopsis)


def test_carpctl_help_says_what_the_page_says(built: Path) -> None:
    text = text_of(built / "carpctl.8")
    top = help_entries(run_help("carpd.ctl"))
    assert set(top) == option_strings(carpctl_parser())
    everything = flat(text)
    for option, help_line in top.items():
        assert flat(help_line) in flat(sections(text)["OPTIONS"]), option
    blocks = subsections(sections(text)["COMMANDS"])
    for words, help_line, _ in commands(carpctl_parser()):
        assert flat(help_line) in everything, f"{words}: {help_line!r}"
        for option, line in help_entries(run_help("carpd.ctl", *words)).items():
            if option not in ("-h", "--help"):
                assert flat(line) in flat(blocks[" ".join(words)]), f"{words} {option}: {line!r}"


# --- carpd.toml(5) -------------------------------------------------------------------


def submodel(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = submodel(arg)
        if found is not None:
            return found
    return None


def model_keys(model: type[BaseModel] = ConfigFile, header: str = "") -> Iterator[tuple[str, str]]:
    """(table header, key) for every key of every table, array of tables and nested
    table of the model: ("[[sync.files]]", "path"), ...; internal fields left out."""
    path = header.strip("[]")
    for attr, field in model.model_fields.items():
        if field.description == INTERNAL:
            continue
        key = field.alias or attr
        sub = submodel(field.annotation)
        if sub is None:
            yield header, key
            continue
        inner = f"{path}.{key}" if path else key
        array = typing.get_origin(field.annotation) is tuple
        yield from model_keys(sub, f"[[{inner}]]" if array else f"[{inner}]")


def key_blocks(text: str) -> dict[tuple[str, str], str]:
    """(table header, key) -> the rendered text of that key's item."""
    out: dict[tuple[str, str], str] = {}
    for header, block in subsections(sections(text)["TABLES"]).items():
        key = None
        for line in block.splitlines():
            m = re.match(r"^ {7}(\w+) = ", line)
            if m:
                key = m.group(1)
                out[(header, key)] = ""
            if key is not None:
                out[(header, key)] += line + "\n"
    return out


def test_every_config_key_is_on_carpd_toml_5(built: Path) -> None:
    expected = list(model_keys())
    headers = {h for h, _ in expected}
    assert {"[global]", "[[carp]]", "[[pool]]", "[[sync.files]]", "[web]"} <= headers
    assert ("[[carp]]", "pass") in expected and ("[global]", "preempt") in expected
    assert len(expected) > 100
    blocks = key_blocks(text_of(built / "carpd.toml.5"))
    missing = [k for k in expected if k not in blocks]
    assert not missing, f"keys not on carpd.toml(5): {missing}"
    assert not set(blocks) - set(expected), "keys on the page that the model does not have"


def test_each_key_says_what_it_does_and_what_it_takes(built: Path) -> None:
    blocks = key_blocks(text_of(built / "carpd.toml.5"))
    for (header, key), block in blocks.items():
        assert re.search(r"Default: |Required\.", flat(block)), f"{header} {key}: no default"
    model_docs = {(t.header, k.name): k.doc for t in man_config.tables() for k in t.keys}
    undocumented = sorted(k for k, doc in model_docs.items() if not doc)
    assert not undocumented, f"keys without a docstring in carpd/config/tables/: {undocumented}"
    for where, doc in model_docs.items():
        first = " ".join(doc.replace("``", "").split()[:6])
        assert first in flat(blocks[where]), f"{where}: {first!r}"


def test_ranges_literals_and_names_come_through(built: Path) -> None:
    blocks = {k: flat(v) for k, v in key_blocks(text_of(built / "carpd.toml.5")).items()}
    assert "Allowed: 1-255. Required." in blocks[("[[carp]]", "vhid")]
    assert 'one of "carp", "vrrp3". Default: "carp".' in blocks[("[[carp]]", "protocol")]
    assert "pfSense: VHID Group" in blocks[("[[carp]]", "vhid")]
    assert "ucarp: --vhid" in blocks[("[[carp]]", "vhid")]
    assert "sysctl: net.inet.carp.preempt" in blocks[("[global]", "preempt")]
    assert "greater than 0, at most 60" in blocks[("[[carp]]", "pre_release_timeout")]
    assert "an interface name" in blocks[("[[carp]]", "carpdev")]


def test_names_and_overrides_name_real_keys() -> None:
    """man/names.py must follow a renamed or removed key."""
    keys = {(h.strip("[]"), k) for h, k in model_keys()}
    for facts in (names.NAMES, names.DEFAULTS, names.TYPES):
        assert set(facts) <= keys, set(facts) - keys
    ucarp = option_strings(make_ucarp_parser(add_help=False))
    from man.pages import ucarp_option

    for table, key in keys:
        option = ucarp_option(table, key)
        assert option is None or option in ucarp, (table, key, option)
    assert ucarp_option("carp", "vhid") == "--vhid"
    assert "preempt" in CarpConfig.model_fields


def test_a_secret_default_is_never_printed() -> None:
    class Secretive(BaseModel):
        password: SecretBytes = SecretBytes(b"hunter2")

    table = man_config.Table("secretive", False, Secretive, ())
    key = man_config.Key("password", Secretive.model_fields["password"], "")
    assert "hunter2" not in man_config.default_text(table, key)
