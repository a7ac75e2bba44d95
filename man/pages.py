"""The three pages: each template filled with what the parsers and the model say."""

from __future__ import annotations

import argparse
import datetime
import os
from pathlib import Path

from carpd import __version__
from carpd.config import ucarp_cli
from carpd.config.model import CarpConfig
from carpd.ctl.main import make_parser as carpctl_parser
from carpd.daemon.service.main import make_parser as carpd_parser
from man import cli, config, names
from man.roff import bold, escape, fill, prose, quoted

HERE = Path(__file__).parent


def header_parts() -> dict[str, str]:
    """The date of the .TH line: $SOURCE_DATE_EPOCH when set (reproducible builds)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (
        datetime.datetime.fromtimestamp(int(epoch), datetime.UTC)
        if epoch
        else datetime.datetime.now(datetime.UTC)
    )
    return {"DATE": quoted(when.strftime("%Y-%m-%d")), "VERSION": quoted(f"carpd {__version__}")}


def carpd_page() -> str:
    parser = carpd_parser()
    ucarp_actions = ucarp_cli.make_ucarp_parser(add_help=False)._actions
    ucarp = {o for a in ucarp_actions for o in a.option_strings}
    actions = cli.optionals(cli.shown(parser))
    is_ucarp = [bool(set(a.option_strings) & ucarp) for a in actions]
    own = [a for a, u in zip(actions, is_ucarp, strict=True) if not u]
    theirs = [a for a, u in zip(actions, is_ucarp, strict=True) if u]
    once = [a for a in own if isinstance(a, argparse._HelpAction | argparse._VersionAction)]
    run = [a for a in own if a not in once]
    synopsis = cli.synopsis("carpd", map(cli.usage_item, run))
    synopsis += cli.synopsis("carpd", map(cli.usage_item, theirs))
    synopsis += "".join(cli.synopsis("carpd", [cli.usage_item(a).strip("[]")]) for a in once)
    options = cli.option_list(own, "carpd")
    options += cli.heading("ucarp-compatible options")
    options += cli.paragraph(
        "The options of ucarp(8), with ucarp's meanings; see UCARP COMMAND LINE. "
        "They stand for one [[carp]] table named carp0 and cannot be mixed with --config."
    )
    options += cli.option_list(theirs, "carpd")
    importing, import_synopsis = _import_section()
    template = (HERE / "carpd.8.in").read_text()
    parts = {"SYNOPSIS": synopsis + import_synopsis, "OPTIONS": options, "IMPORT": importing}
    return fill(template, {**header_parts(), **parts})


def _import_section() -> tuple[str, str]:
    """``carpd import``'s sources, each with its usage, help and options; and their
    synopsis lines."""
    from carpd.importer.cli import make_parser as import_parser

    out, synopsis = [], ""
    for name, help_line, sub in cli.commands(import_parser()):
        actions = [a for a in cli.shown(sub) if not _is_help(a)]
        items = [bold(name), *map(cli.usage_item, cli.optionals(actions))]
        items += map(cli.usage_item, cli.positionals(actions))
        synopsis += cli.synopsis("carpd import", items)
        out.append(cli.heading(f"carpd import {name}"))
        out.append(cli.paragraph(help_line))
        listed = [a for a in cli.positionals(actions) if a.help] + cli.optionals(actions)
        out.append(cli.option_list(listed, f"carpd import {name}"))
    return "".join(out), synopsis


def _leaves(parser: argparse.ArgumentParser, words: list[str]) -> list[list[str]]:
    """The words of every command that takes no further subcommand."""
    out = []
    for name, _, sub in cli.commands(parser):
        out += _leaves(sub, [*words, name]) or [[*words, name]]
    return out


def _is_help(action: argparse.Action) -> bool:
    return isinstance(action, argparse._HelpAction)


def _command_usage(parser: argparse.ArgumentParser, words: list[str]) -> list[str]:
    """The usage items after ``carpctl [options]`` for the command named by words."""
    out: list[str] = []
    current = parser
    for word in words:
        current = next(sub for name, _, sub in cli.commands(current) if name == word)
        actions = [a for a in cli.shown(current) if not _is_help(a)]
        out.append(bold(word))
        out += [cli.usage_item(a) for a in cli.optionals(actions)]
        out += [cli.usage_item(a) for a in cli.positionals(actions)]
    return out


def _commands_section(
    top: argparse.ArgumentParser, parser: argparse.ArgumentParser, words: list[str]
) -> str:
    """A subsection per command: its usage, its help line, its description and the
    options (and the positionals that have a help) it takes; nested commands after it."""
    out = []
    for name, help_line, sub in cli.commands(parser):
        path = [*words, name]
        out.append(cli.heading(" ".join(path)))
        usage = " ".join(["\\fBcarpctl\\fR [\\fIoptions\\fR]", *_command_usage(top, path)])
        out.append(f".PP\n{usage}\n")
        out.append(cli.paragraph(help_line))
        if sub.description and sub.description != help_line:
            out.append(cli.paragraph(sub.description))
        actions = [a for a in cli.shown(sub) if not _is_help(a)]
        listed = [a for a in cli.positionals(actions) if a.help] + cli.optionals(actions)
        if listed:
            out.append(cli.option_list(listed, f"carpctl {' '.join(path)}"))
        out.append(_commands_section(top, sub, path))
    return "".join(out)


def carpctl_page() -> str:
    parser = carpctl_parser()
    top = cli.optionals(cli.shown(parser))
    synopsis = cli.synopsis(
        "carpctl", [*(cli.usage_item(a) for a in top), cli.usage_item(_subcommands(parser))]
    )
    for words in _leaves(parser, []):
        synopsis += cli.synopsis("carpctl", ["[\\fIoptions\\fR]", *_command_usage(parser, words)])
    parts = {
        **header_parts(),
        "SYNOPSIS": synopsis,
        "OPTIONS": cli.option_list(top, "carpctl"),
        "COMMANDS": _commands_section(parser, parser, []),
    }
    return fill((HERE / "carpctl.8.in").read_text(), parts)


def _subcommands(parser: argparse.ArgumentParser) -> argparse.Action:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


# --- carpd.toml(5) ------------------------------------------------------------------


def ucarp_option(table: str, key: str) -> str | None:
    """The ucarp option that sets this key (carpd.config.ucarp_cli's own table)."""
    if table == "carp" or (table == "global" and key not in CarpConfig.model_fields):
        return ucarp_cli._OPTION.get(key)
    return None


def elsewhere(table: str, key: str) -> list[tuple[str, str]]:
    """(system, its name) for the key, in a fixed order."""
    found = names.NAMES.get((table, key), {})
    out = [(label, found[system]) for system, label in _SYSTEMS if system in found]
    option = ucarp_option(table, key)
    return out + ([("ucarp", option)] if option else [])


_SYSTEMS = (
    ("pfsense", "pfSense"),
    ("ifconfig", "ifconfig(8)"),
    ("sysctl", "sysctl"),
    ("keepalived", "keepalived"),
)


def key_item(table: config.Table, key: config.Key) -> str:
    kind = names.TYPES.get((table.path, key.name)) or config.type_text(key.field.annotation)
    lines = [".TP", f"{bold(key.name)} = \\fI{escape(kind)}\\fR"]
    if key.doc:
        lines.append(prose(key.doc))
    facts = []
    allowed = config.allowed(key.field)
    if allowed:
        facts.append(f"Allowed: {'; '.join(allowed)}.")
    default = config.default_text(table, key)
    facts.append("Required." if default == "required" else f"Default: {default}.")
    lines += [".br", escape(" ".join(facts))]
    other = elsewhere(table.path, key.name)
    if other:
        lines += [".br", escape("; ".join(f"{label}: {name}" for label, name in other) + ".")]
    return "\n".join(lines) + "\n"


def tables_section() -> str:
    ordered = sorted(config.tables(), key=lambda t: (t.path != "global", t.path != "carp"))
    out = []
    for table in ordered:
        out.append(cli.heading(table.header))
        intro = (table.model.__doc__ or "").strip().split("\n\n")[0]
        if intro:
            out.append(cli.paragraph(intro))
        out += [key_item(table, k) for k in table.keys]
    return "".join(out)


def names_section() -> str:
    """Every other system's name for a key, by system: for a reader who knows that one."""
    by_system: dict[str, dict[str, list[str]]] = {
        label: {} for label in [*(label for _, label in _SYSTEMS), "ucarp"]
    }
    for table in config.tables():
        for key in table.keys:
            for label, name in elsewhere(table.path, key.name):
                by_system[label].setdefault(name, []).append(f"{table.header} {key.name}")
    out = []
    for label, keys in by_system.items():
        if keys:
            out.append(cli.heading(label))
            for name, where in sorted(keys.items(), key=lambda item: item[0].lower()):
                out.append(f".TP\n{cli.plain(name)}\n{cli.plain(', '.join(where))}\n")
    return "".join(out)


def carpd_toml_page() -> str:
    parts = {**header_parts(), "TABLES": tables_section(), "NAMES": names_section()}
    return fill((HERE / "carpd.toml.5.in").read_text(), parts)


PAGES = {"carpd.8": carpd_page, "carpctl.8": carpctl_page, "carpd.toml.5": carpd_toml_page}
