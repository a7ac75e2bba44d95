"""An argparse parser as man page parts: synopsis lines, option lists, commands.

argparse keeps its actions and subcommands in attributes with a leading underscore;
they have been the same since Python 3.2, and the tests fail if a page loses an option.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator

from man.roff import bold, escape, italic, line_safe, prose, quoted

Action = argparse.Action


def shown(parser: argparse.ArgumentParser) -> list[Action]:
    """The parser's actions that --help shows, subcommands left out."""
    return [
        a
        for a in parser._actions
        if a.help != argparse.SUPPRESS and not isinstance(a, argparse._SubParsersAction)
    ]


def optionals(actions: Iterable[Action]) -> list[Action]:
    return [a for a in actions if a.option_strings]


def positionals(actions: Iterable[Action]) -> list[Action]:
    return [a for a in actions if not a.option_strings]


def commands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """(name, the help line of its parent's list, parser) of each subcommand, in order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {c.dest: c.help or "" for c in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name, ""), sub


def _metavar(action: Action) -> str:
    if action.metavar is not None:
        return str(action.metavar)
    if action.choices is not None:
        return "|".join(str(c) for c in action.choices)
    return action.dest.upper() if action.option_strings else action.dest


def _value(action: Action) -> str:
    """What follows the option (or stands for the positional), in roff."""
    if action.option_strings and action.nargs == 0:
        return ""
    if action.choices is not None and action.metavar is None:
        one = "|".join(bold(str(c)) for c in action.choices)
    else:
        one = italic(_metavar(action))
    if action.nargs in (None, 1):
        return one
    if action.nargs == argparse.OPTIONAL:
        return f"[{one}]"
    if action.nargs in (argparse.ZERO_OR_MORE, argparse.REMAINDER):
        return f"[{one}\\~...]"
    if action.nargs == argparse.PARSER:  # a subcommand and its own arguments
        return f"{one} [{italic('ARGS')}]"
    if action.nargs == argparse.ONE_OR_MORE:
        return f"{one} [{one}\\~...]"
    return "\\~".join([one] * int(str(action.nargs)))


def invocation(action: Action) -> str:
    """``-c FILE, --config FILE`` in roff: an option list item's tag."""
    value = _value(action)
    if not action.option_strings:
        return value
    return ", ".join(bold(o) + (f"\\~{value}" if value else "") for o in action.option_strings)


def usage_item(action: Action) -> str:
    """``[-c FILE]`` for a synopsis: the first spelling, as argparse's usage has it."""
    if not action.option_strings:
        return _value(action)
    value = _value(action)
    text = bold(action.option_strings[0]) + (f"\\~{value}" if value else "")
    return text if action.required else f"[{text}]"


def help_text(action: Action, prog: str) -> str:
    """The help as --help prints it (%(default)s and the like filled in)."""
    text = action.help or ""
    if "%" in text:
        text = text % {**vars(action), "prog": prog}
    return text


def synopsis(words: str, items: Iterable[str]) -> str:
    """A .SY block: the command (words in bold) and its items, wrapped with a hanging
    indent."""
    return f".SY {quoted(words)}\n{' '.join(items)}\n.YS\n"


def option_list(actions: Iterable[Action], prog: str) -> str:
    out = []
    for a in actions:
        out.append(f".TP\n{line_safe(invocation(a))}\n{prose(help_text(a, prog))}\n")
    return "".join(out)


def heading(text: str) -> str:
    return f".SS {quoted(text)}\n"


def paragraph(text: str) -> str:
    return f".PP\n{prose(text)}\n"


def plain(text: str) -> str:
    """Text that is not prose (no ``code`` markup): escaped only."""
    return line_safe(escape(text))
