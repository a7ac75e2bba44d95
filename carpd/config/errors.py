"""ConfigError, and turning pydantic's errors into one line per problem for the user.

Each line: ``<source>: <key> = <value>: <what is allowed>``. Ranges and lengths are
read from the models' Field constraints. A password is never shown, only its length.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretBytes, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from carpd.config.document import ConfigFile
from carpd.config.values import INTERNAL, Conflict, Loc
from carpd.core.auth import MAX_PASSWORD_LEN


class ConfigError(Exception):
    """An unusable configuration. ``str()`` is the complete message, one line per problem."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    @property
    def problems(self) -> list[str]:
        return self.message.splitlines()


# A table of an array of tables goes by its name where it has one (a [[carp]] named
# "lan" is ``carp "lan"``), otherwise by its index and the key users tell it by
# (``follow[1] (interface "wan1")``), or its index alone.
_NAME_KEY: dict[Loc, str] = {("carp",): "name", ("pool",): "name", ("action",): "name"}
_HINT_KEY: dict[Loc, str] = {("carp",): "vhid", ("follow",): "interface", ("sync", "files"): "path"}

# loc of a table in an array of tables, and the rest of the loc -> how it is named
Label = Callable[[Loc, Loc], str]


def key_path(loc: Loc, label: Label | None = None) -> str:
    """("carp", 0, "addresses", 1) -> 'carp "lan".addresses[1]' (with the document's
    ``label``) or "carp[0].addresses[1]" (without)."""
    out = ""
    for n, seg in enumerate(loc):
        if isinstance(seg, int):
            arrays = _HINT_KEY.keys() | _NAME_KEY.keys()
            named = label(loc[: n + 1], loc[n + 1 :]) if label and loc[:n] in arrays else ""
            out += named or f"[{seg}]"
        else:
            out += f".{seg}" if out else seg
    return out


def document_label(data: Mapping[str, Any]) -> Label:
    """How the tables of a TOML-shaped document are named in messages: by a name that
    only one table of its array has, else by index (and the key users know it by); never
    by the very key that is at fault."""

    def label(table: Loc, rest: Loc) -> str:
        items: Any = data
        for seg in table[:-1]:
            items = items.get(seg) if isinstance(items, Mapping) else None
        index = table[-1]
        if not isinstance(items, list | tuple) or not isinstance(index, int):
            return ""
        item = items[index] if index < len(items) else None
        if not isinstance(item, Mapping):
            return ""
        where = table[:-1]
        key = _NAME_KEY.get(where)
        name = item.get(key) if key else None
        if isinstance(name, str) and name and rest[:1] != (key,):
            same = [t for t in items if isinstance(t, Mapping) and t.get(key) == name]
            if len(same) == 1:
                return f" {show(name)}"
        hint = _HINT_KEY.get(where)
        value = item.get(hint) if hint else None
        if isinstance(value, int | str) and not isinstance(value, bool) and rest[:1] != (hint,):
            return f"[{index}] ({hint} {show(value)})"
        return f"[{index}]"

    return label


@dataclass(frozen=True)
class Naming:
    """How a source names a loc: TOML key paths, or ucarp options."""

    name: Callable[[Loc], str] = key_path
    mention: Callable[[Loc], str] = lambda loc: str(loc[-1])
    missing: str = "missing required key"
    # Where a loc's value came from instead, if not the source: (file, key path).
    origin: Callable[[Loc], tuple[str, str] | None] = lambda loc: None


TOML = Naming()

_TYPE_TEXT = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "bytes_type": "must be a string",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "path_type": "must be a path string",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "dict_type": "must be a table",
    "tuple_type": "must be an array",
    "list_type": "must be an array",
    "ip_v4_address": "not an IPv4 address (e.g. 192.0.2.1)",
    "ip_any_address": "not an IP address (e.g. 192.0.2.1 or 2001:db8::1)",
    "ip_any_interface": "not an address/prefix (e.g. 192.0.2.100/24 or 2001:db8::100/64)",
}
_BOUND_NAMES = ("ge", "gt", "le", "lt", "min_length", "max_length")


def config_error(exc: ValidationError, source: str, naming: Naming = TOML) -> ConfigError:
    lines: dict[str, None] = {}
    for err in exc.errors():
        for loc, shown, text in _explain(err, naming):
            file, key = naming.origin(loc) or (source, naming.name(loc))
            where = " = ".join(s for s in (key, shown) if s)
            lines[f"{file}: {where}: {text}" if where else f"{file}: {text}"] = None
    return ConfigError("\n".join(lines))


def _explain(err: ErrorDetails, naming: Naming) -> Iterator[tuple[Loc, str | None, str]]:
    loc: Loc = tuple(err["loc"])
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    parent, info = _walk(loc)
    if kind == "conflict":
        for c in typing.cast(tuple[Conflict, ...], ctx["conflicts"]):
            other = naming.name(loc + c.other)
            yield loc + c.loc, show(c.value), c.message.format(other=other)
    elif kind == "too_short" and isinstance(value, list | tuple) and value:
        return  # items failed and were dropped; those errors are reported already
    elif kind == "missing":
        yield loc, None, _missing(loc, naming)
    elif kind == "extra_forbidden":
        yield loc, None, f"unknown key (allowed keys: {', '.join(_keys(parent))})"
    elif kind == "password_source":
        a, b = naming.mention((*loc, "pass")), naming.mention((*loc, "passfile"))
        yield loc, None, f"exactly one of {a} or {b} is required (found {ctx['found']})"
    elif kind == "internal_key":
        yield loc, None, f"unknown key ({ctx.get('by', 'a [[pool]] table sets it for its vhids')})"
    elif kind == "nothing_to_run":
        yield ("carp",), None, f"{naming.missing}: at least one [[carp]] table is required"
    elif kind == "one_of":
        a, b = (naming.mention((*loc, k)) for k in ctx["keys"])
        yield loc, None, f"exactly one of {a} or {b} is required (found {ctx['found']})"
    elif info is not None and _is_secret(info.annotation):
        yield loc, _hidden(value), _secret_text(kind, ctx, value)
    elif kind == "url_credentials":  # the value may hold a password: never shown
        yield loc, _hidden(value), err["msg"]
    else:
        yield loc, show(value), _text(kind, loc, info, ctx, err["msg"])


def _text(kind: str, loc: Loc, info: FieldInfo | None, ctx: dict[str, Any], msg: str) -> str:
    bounds = _bounds(info)
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return _range_text(bounds)
    if kind in ("too_short", "too_long", "string_too_short", "string_too_long"):
        return _length_text(loc, bounds, string=kind.startswith("string"))
    if kind == "string_pattern_mismatch" and info is not None and info.description:
        return f"not {info.description}"
    if kind == "literal_error" and info is not None:
        values = ", ".join(show(v) for v in _literal_values(info.annotation))
        return f"allowed values: {values}"
    if kind == "password_too_long":
        n, most = ctx["actual_length"], ctx["max_length"]
        why = _why(most) if most == MAX_PASSWORD_LEN else ""
        return f"the password in it has {n} characters, at most {most} are allowed{why}"
    if (loc == ("carp",) or loc == ("global",)) and kind in ("tuple_type", "model_type"):
        return f"must be {'an array of tables [[carp]]' if loc[0] == 'carp' else 'a table'}"
    return _TYPE_TEXT.get(kind, msg)


def _range_text(b: dict[str, Any]) -> str:
    low, high = b.get("ge"), b.get("le")
    if low is not None and high is not None:
        return f"allowed range is {low}-{high}"
    words = {"ge": "at least", "gt": "greater than", "le": "at most", "lt": "less than"}
    parts = [f"{word} {b[k]}" for k, word in words.items() if k in b]
    return "must be " + " and ".join(parts)


def _length_text(loc: Loc, b: dict[str, Any], *, string: bool) -> str:
    low, high = b.get("min_length"), b.get("max_length")
    if loc == ("carp",):
        return "at least one [[carp]] table is required"
    if not string and low == 1 and high is None:
        return "must not be empty"
    unit = " characters" if string else " entries"
    if low is not None and high is not None:
        return f"allowed length is {low}-{high}{unit}"
    return f"at least {low}{unit}" if high is None else f"at most {high}{unit}"


def _secret_text(kind: str, ctx: dict[str, Any], value: object) -> str:
    if kind in ("too_long", "bytes_too_long"):
        most = ctx["max_length"]
        return f"at most {most} {_unit(value)}{_why(most)}"
    return _TYPE_TEXT.get(kind, "not a valid password")


def _why(most: int) -> str:
    return f" (ucarp and the BSDs use only {most})"


def _unit(value: object) -> str:
    ascii_only = not isinstance(value, str) or value.isascii()
    return "characters" if ascii_only else "bytes"


def _hidden(value: object) -> str:
    if isinstance(value, str):
        return f"<hidden, {len(value.encode())} {_unit(value)}>"
    return "<hidden>"


def _missing(loc: Loc, naming: Naming) -> str:
    if loc == ("carp",):
        return f"{naming.missing}: at least one [[carp]] table is required"
    return naming.missing


def show(value: object) -> str:
    """A value as TOML would spell it, shortened."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str | Path):
        text = json.dumps(str(value), ensure_ascii=False)
    elif isinstance(value, list | tuple):
        text = "[" + ", ".join(show(v) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k} = {show(v)}" for k, v in value.items()) + "}"
    else:
        text = str(value)
    return text if len(text) <= 80 else text[:76] + " ..."


def _walk(loc: Loc) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The model a loc ends in, and the field it names (None if not a known key)."""
    model: type[BaseModel] | None = ConfigFile
    info: FieldInfo | None = None
    for seg in loc:
        if isinstance(seg, int):
            continue
        if model is None:
            return None, None
        info = next((f for n, f in model.model_fields.items() if (f.alias or n) == seg), None)
        if info is None:
            return model, None
        model = _submodel(info.annotation)
    return model, info


def _submodel(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _submodel(arg)
        if found is not None:
            return found
    return None


def _keys(model: type[BaseModel] | None) -> list[str]:
    fields = model.model_fields.items() if model is not None else ()
    return [f.alias or n for n, f in fields if f.description != INTERNAL]


def _is_secret(annotation: object) -> bool:
    if annotation is SecretBytes:
        return True
    return any(_is_secret(a) for a in typing.get_args(annotation))


def _literal_values(annotation: object) -> list[object]:
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    return [v for a in typing.get_args(annotation) for v in _literal_values(a)]


def _bounds(info: FieldInfo | None) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in info.metadata if info is not None else ():
        for name in _BOUND_NAMES:
            if getattr(item, name, None) is not None:
                found[name] = getattr(item, name)
    return found
