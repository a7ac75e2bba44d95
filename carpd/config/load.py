"""Reading the TOML file, and the one validation path shared with the ucarp command line."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from carpd.config import extras, overlay
from carpd.config.document import Config, ConfigFile, expand
from carpd.config.errors import TOML, ConfigError, Naming, config_error, document_label, key_path
from carpd.config.files import Files, Kind, Read, wanted
from carpd.config.tables.global_ import GlobalConfig
from carpd.config.values import Loc

DEFAULT_PATH = Path("/etc/carpd/carpd.toml")

# tomllib (3.11) puts the position only in the text: "Invalid value (at line 3, column 8)".
_WHERE = re.compile(
    r"^(?P<msg>.*?) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$"
)


def validate_config(
    data: Mapping[str, object], *, source: str, base_dir: Path, naming: Naming = TOML
) -> Config:
    """Validate a TOML-shaped document. Relative paths in it are taken from base_dir."""
    if naming.name is key_path:  # TOML keys: tables named as this document names them
        naming = _labelled(naming, data)
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    context = {
        "base_dir": base_dir,
        "credentials": credentials,
        "files": read_files(ConfigFile, data, base_dir, credentials),
        "extras": extras.absent(),
    }
    try:
        doc = ConfigFile.model_validate(data, context=context)
    except ValidationError as e:
        # "from None": pydantic's own text would carry the input values, passwords too.
        raise config_error(e, source, naming) from None
    return expand(doc, source)


def read_files(
    model: type[BaseModel], data: Mapping[str, object], base_dir: Path, credentials: str | None
) -> Files:
    """Every file the document names that validation needs (passfiles, the ifstated
    file), read now, so that the models read nothing: its content, or what reading it
    raised (validation names the key, the value and the reason)."""
    files: dict[tuple[Kind, Path], Read] = {}
    for kind, path in wanted(model, data, base_dir, credentials):
        try:
            files[kind, path] = path.read_bytes() if kind == "bytes" else path.read_text()
        except (OSError, ValueError) as e:  # ValueError: not text in the locale's encoding
            files[kind, path] = e
    return files


def load_config(path: str | Path = DEFAULT_PATH) -> Config:
    """Read and validate a carpd.toml. Raises ConfigError naming the file and each problem.

    Relative paths in the file (passfile, up, down, control_socket) are taken from the
    file's directory. Passfiles and the ifstated file are read now (read_files).
    """
    path = Path(path)
    data, base_dir, naming = _read_document(path)
    return validate_config(data, source=str(path), base_dir=base_dir, naming=naming)


def file_naming(path: str | Path) -> Naming:
    """How a problem with a key of the file at ``path`` is named, as load_config names
    them (for problems found after loading: ``carpd --check`` on this node)."""
    data, _, naming = _read_document(Path(path))
    return _labelled(naming, data)


def _labelled(naming: Naming, data: Mapping[str, object]) -> Naming:
    return dataclasses.replace(naming, name=functools.partial(key_path, label=document_label(data)))


class _GlobalTable(BaseModel):
    """A document's [global] table alone; the rest is not looked at."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    global_: GlobalConfig = Field(default=GlobalConfig(), alias="global")


def load_global(path: str | Path = DEFAULT_PATH) -> GlobalConfig:
    """The [global] table of a carpd.toml (with its overlay's values), validated as
    load_config does, for carpctl: it needs the control socket, and reads no passfile or
    credential (those are carpd's, and often not readable to carpctl's user).
    Raises ConfigError naming the file and each problem of the table.
    """
    path = Path(path)
    data, base_dir, naming = _read_document(path)
    try:
        table = _GlobalTable.model_validate(
            {"global": data.get("global", {})}, context={"base_dir": base_dir}
        )
    except ValidationError as e:
        raise config_error(e, str(path), naming) from None
    return table.global_


def _read_document(path: Path) -> tuple[dict[str, Any], Path, Naming]:
    """The file's TOML with its overlay merged in, the directory its relative paths are
    taken from, and how a problem is named (the overlay's keys by the overlay's file)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (see examples/carpd.toml)") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ConfigError(f"{path}: line {line}: not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {_syntax(str(e))}") from None
    base_dir = path.absolute().parent
    naming = TOML
    g = data.get("global")
    if isinstance(g, dict) and isinstance(g.get("overlay"), str) and g["overlay"]:
        node = base_dir / g["overlay"]  # relative to the shared file, as every path
        data, origins = overlay.apply(data, overlay.read(node), node)

        def origin(loc: Loc) -> tuple[str, str] | None:
            key = overlay.origin_of(origins, loc)
            return (str(node), key) if key is not None else None

        naming = dataclasses.replace(TOML, origin=origin)
    return data, base_dir, naming


def _syntax(message: str) -> str:
    m = _WHERE.match(message)
    if m is None:
        return f"TOML syntax error: {message}"
    msg = m["msg"][:1].lower() + m["msg"][1:]
    where = f"line {m['line']}, column {m['col']}" if m["line"] else "at the end of the file"
    return f"{where}: TOML syntax error: {msg}"
