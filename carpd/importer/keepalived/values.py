"""keepalived's words as values: numbers, command lines, and how the report names a
statement."""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

from carpd.importer.parse import Node


def label(node: Node) -> str:
    """How the report names a statement: its keyword, and a block's name."""
    if node.children is not None and node.args:
        return f"{node.keyword} {node.args[0]}"
    return node.keyword


def command(args: Iterable[str]) -> list[str]:
    """A keepalived script command line (quoted as one word or given as several) as
    argv, split as a shell would (keepalived splits it the same way, without one)."""
    try:
        return shlex.split(" ".join(args))
    except ValueError:
        return list(args)


def number(node: Node, i: int) -> Decimal | None:
    try:
        d = Decimal(node.args[i])
    except (IndexError, InvalidOperation):
        return None
    return d if d.is_finite() else None


def integer(node: Node, i: int) -> int | None:
    try:
        return int(node.args[i], 10)
    except (IndexError, ValueError):
        return None


def num(d: Decimal) -> int | float:
    """A TOML number: an integer when it is one (``advbase = 1``, not ``1.0``)."""
    return int(d) if d == d.to_integral_value() else float(d)
