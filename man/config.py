"""The config model as carpd.toml(5)'s tables and keys: type, default, allowed values,
the names other systems give it, and what it does (the field's docstring)."""

from __future__ import annotations

import ast
import inspect
import ipaddress
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import annotated_types as at
from pydantic import BaseModel, SecretBytes
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from carpd.config.model import INTERNAL, ConfigFile, PassFile
from man import names


@dataclass(frozen=True)
class Key:
    name: str  # as written in the file (the alias: pass, not pass_)
    field: FieldInfo
    doc: str


@dataclass(frozen=True)
class Table:
    path: str  # "global", "carp", "sync.files"
    array: bool  # [[path]]: an array of tables
    model: type[BaseModel]
    keys: tuple[Key, ...]

    @property
    def header(self) -> str:
        return f"[[{self.path}]]" if self.array else f"[{self.path}]"


def submodel(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = submodel(arg)
        if found is not None:
            return found
    return None


def docstrings(model: type[BaseModel]) -> dict[str, str]:
    """Each field's attribute docstring (the string right after it), base classes too.

    Not pydantic's use_attribute_docstrings: that would make them the fields'
    descriptions, which carpd's error messages use for what a pattern allows."""
    found: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        body = ast.parse(inspect.getsource(cls)).body[0]
        assert isinstance(body, ast.ClassDef)
        for stmt, after in zip(body.body, body.body[1:], strict=False):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                found[stmt.target.id] = inspect.cleandoc(after.value.value)
    return found


def tables(model: type[BaseModel] = ConfigFile, path: str = "") -> Iterator[Table]:
    """Every table and array of tables under the model, each before the ones inside it."""
    docs = docstrings(model)
    keys, inner = [], []
    for attr, field in model.model_fields.items():
        if field.description == INTERNAL:
            continue
        name = field.alias or attr
        sub = submodel(field.annotation)
        if sub is None:
            keys.append(Key(name, field, docs.get(attr, "")))
        else:
            array = typing.get_origin(field.annotation) is tuple
            inner.append((f"{path}.{name}" if path else name, array, sub))
    if path:
        yield Table(path, array_of(model, path), model, tuple(keys))
    for sub_path, _, sub in inner:
        yield from tables(sub, sub_path)


def array_of(model: type[BaseModel], path: str) -> bool:
    """Whether the table at path is an array of tables (walked again from the top)."""
    current: type[BaseModel] = ConfigFile
    array = False
    for part in path.split("."):
        field = next(f for a, f in current.model_fields.items() if (f.alias or a) == part)
        array = typing.get_origin(field.annotation) is tuple
        found = submodel(field.annotation)
        assert found is not None
        current = found
    assert current is model
    return array


# --- a key's facts ------------------------------------------------------------------


def _strip(annotation: object) -> tuple[object, list[object]]:
    """The type under Annotated and X | None, and the metadata found on the way."""
    meta: list[object] = []
    while True:
        if typing.get_origin(annotation) is typing.Annotated:
            meta += list(annotation.__metadata__)  # type: ignore[attr-defined]
            annotation = typing.get_args(annotation)[0]
            continue
        args = typing.get_args(annotation)
        if _is_union(annotation) and type(None) in args:
            rest = [a for a in args if a is not type(None)]
            if len(rest) == 1:
                annotation = rest[0]
                continue
        return annotation, meta


def _is_union(annotation: object) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


_WORDS: dict[object, str] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    Path: "path",
    PassFile: "path",
    SecretBytes: "string (a secret)",
    ipaddress.IPv4Address: "IPv4 address",
}


def type_text(annotation: object) -> str:
    """What a TOML writer must write, in words."""
    annotation, _ = _strip(annotation)
    if annotation in _WORDS:
        return _WORDS[annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "string"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "string"
    if origin is tuple:
        return f"array of {_plural(type_text(args[0]))}"
    if origin is dict:
        return f"table of {_plural(type_text(args[1]))}"
    if _is_union(annotation):
        kinds = {_strip(a)[0] for a in args}
        if kinds <= {ipaddress.IPv4Interface, ipaddress.IPv6Interface}:
            return "address/prefix"
        if kinds <= {ipaddress.IPv4Address, ipaddress.IPv6Address}:
            return "IP address"
        return " or ".join(dict.fromkeys(type_text(a) for a in args))
    raise TypeError(f"no words for {annotation!r}: add it to man/config.py")


def _plural(words: str) -> str:
    return words + ("es" if words.endswith(("s", "x")) else "s")


def _bounds(meta: list[object]) -> tuple[dict[str, object], str | None, str | None]:
    """Bounds (ge, gt, le, lt, min_length, max_length), pattern and the pattern's words
    (a Field description) from metadata, nested Field()s included."""
    bounds: dict[str, object] = {}
    pattern = words = None
    for m in meta:
        if isinstance(m, FieldInfo):
            inner, p, w = _bounds(list(m.metadata))
            bounds |= inner
            pattern, words = p or pattern, w or words
            if m.description and m.description != INTERNAL:
                words = m.description
            continue
        for name in ("ge", "gt", "le", "lt", "min_length", "max_length"):
            value = getattr(m, name, None)
            if value is not None and isinstance(m, at.BaseMetadata | at.GroupedMetadata):
                bounds[name] = value
        pattern = getattr(m, "pattern", None) or pattern
    return bounds, pattern, words


def allowed(field: FieldInfo) -> list[str]:
    """The allowed values, from the Field constraints, literals and enums."""
    return _allowed(field.annotation, [*field.metadata, field], item=False)


def _allowed(annotation: object, meta: list[object], *, item: bool) -> list[str]:
    base, found = _strip(annotation)
    bounds, pattern, words = _bounds(meta + found)
    out = []
    origin, args = typing.get_origin(base), typing.get_args(base)
    if origin is typing.Literal:
        out.append("one of " + ", ".join(f'"{v}"' for v in args))
    elif isinstance(base, type) and issubclass(base, Enum):
        out.append("one of " + ", ".join(f'"{m.value}"' for m in base))
    if words:  # what a valid value is, as the error messages say it: lengths included
        bounds = {k: v for k, v in bounds.items() if not k.endswith("_length")}
    text = _range(bounds, string=base in (str, SecretBytes), array=origin is tuple)
    if text:
        out.append(text)
    if words:
        out.append(words)
    elif pattern:
        out.append(f"matching {pattern}")
    if origin is tuple:
        out += [f"each {t}" for t in _allowed(args[0], [], item=True)]
    elif origin is dict:
        out += [f"each name {t}" for t in _allowed(args[0], [], item=True)]
    return out


def _range(b: dict[str, object], *, string: bool, array: bool) -> str:
    parts = []
    low, high = b.get("ge"), b.get("le")
    if low is not None and high is not None:
        parts.append(f"{low}-{high}")
    else:
        words = (("gt", "greater than"), ("ge", "at least"), ("lt", "less than"), ("le", "at most"))
        parts += [f"{word} {b[k]}" for k, word in words if k in b]
    short, long = b.get("min_length"), b.get("max_length")
    unit = "characters" if string else "entries" if array else "items"
    if short is not None and long is not None:
        parts.append(f"{short}-{long} {unit}")
    elif long is not None:
        parts.append(f"at most {long} {unit}")
    elif short is not None:
        parts.append("not empty" if short == 1 else f"at least {short} {unit}")
    return ", ".join(parts)


def _is_secret(annotation: object) -> bool:
    if annotation in (SecretBytes, PassFile):
        return True
    return any(_is_secret(a) for a in typing.get_args(annotation))


def default_text(table: Table, key: Key) -> str:
    """The default as TOML spells it; "required", or "unset" for None. A secret's
    default is never printed."""
    override = names.DEFAULTS.get((table.path, key.name))
    if override is not None:
        return override
    value = key.field.default
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "unset"
    if _is_secret(key.field.annotation):
        return "(not shown)"
    return toml(value)


def toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path | ipaddress.IPv4Address | ipaddress.IPv6Address):
        return f'"{value}"'
    if isinstance(value, Enum):
        return f'"{value.value}"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml(v)}" for k, v in value.items()) + "}"
    return str(value)
