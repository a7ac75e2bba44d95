"""The ``[ifstated]`` table: an OpenBSD ifstated.conf run by carpd, parsed at load time
from the text the loader read."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field, ValidationInfo
from pydantic_core import PydanticCustomError

from carpd.config.files import FileInput, content
from carpd.config.values import Frozen, base_dir, missing_extra, resolve_path


def _path(value: object, base: Path | None, credentials: str | None) -> object:
    return resolve_path(value, base)


def _ifstated_file(value: object, info: ValidationInfo) -> object:
    """The file must read and parse (line and column in the message), before the
    network is touched; the daemon reads and parses it again when it starts it."""
    path = _path(value, base_dir(info), None)
    if not isinstance(path, Path):
        return path
    text = content(info, "text", path, "file_unreadable")
    if not isinstance(text, str):
        return path  # validated without the loader, which reads it (IfstatedConfig(file=...))
    if (why := missing_extra(info, "ifstated")) is not None:
        raise PydanticCustomError("missing_extra", "{why}", {"why": why})
    from carpd.ifstated import IfstatedError, parse  # lark: only for a config that has one

    defines = (info.data or {}).get("defines") or {}
    try:
        parse(text, str(path), defines)
    except IfstatedError as e:
        raise PydanticCustomError("ifstated", "{error}", {"error": str(e)}) from None
    return path


class IfstatedConfig(Frozen):
    """The ``[ifstated]`` table: an OpenBSD ifstated.conf run by carpd, with vhids as
    interfaces (``lan.link.up``: MASTER, ``.down``: BACKUP, ``.unknown``: INIT)."""

    # Before file: the file is parsed with them (ifstated -D macro=value).
    # (pydantic copies a default: the {} is not shared)
    defines: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], str] = {}  # noqa: RUF012
    """Macros for the file, as ifstated -D name=value."""
    file: Annotated[Path, BeforeValidator(_ifstated_file), FileInput(_path, "text")] | None = None
    """An OpenBSD ifstated.conf(5) run by carpd. A vhid is an interface by its [[carp]]
    name: ``name.link.up`` while MASTER, ``.down`` while BACKUP, ``.unknown`` in INIT. It is
    parsed when the configuration is loaded, and read again on SIGHUP."""
    timeout: float = Field(default=30.0, gt=0, le=3600, strict=True, allow_inf_nan=False)
    """Seconds a ``run`` command, or an external test's command, may run; then it is killed.
    """
