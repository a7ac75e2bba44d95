"""Files a configuration names and carpd reads when it loads it: a passfile, an
ifstated.conf.

The models read nothing. A field that names such a file carries a ``FileInput``; the
loader (carpd.config.load) finds every one in the document (``wanted``), reads the files
and passes what it found in validation context ``files``; the field's validator makes
the value from that, or the same error it would give had it read the file itself
(``cannot read it: No such file or directory``), under the same key. Context
``credentials`` is $CREDENTIALS_DIRECTORY, as the loader found it.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, PlainSerializer, PlainValidator, SecretBytes, ValidationInfo
from pydantic_core import PydanticCustomError

from carpd.config.values import base_dir, context, resolve_path
from carpd.core.auth import MAX_PASSWORD_LEN

MAX_WEB_PASSWORD_LEN = 1024

Kind = Literal["bytes", "text"]
# What reading a file gave: its content, or what reading it raised.
Read = bytes | str | Exception
# Validation context "files": (kind, path) -> what reading it gave.
Files = Mapping[tuple[Kind, Path], Read]


@dataclass(frozen=True)
class FileInput:
    """Marks a field whose value names a file the loader reads before validation.
    ``resolve`` gives its path from the value, the base directory and the credentials
    directory; a value that names no file raises the validator's error, or is returned
    as it is (the loader then reads nothing)."""

    resolve: Callable[[object, Path | None, str | None], object]
    kind: Kind


def content(info: ValidationInfo, kind: Kind, path: Path, error: str) -> bytes | str | None:
    """What the loader read at ``path`` (None: validated without the loader). A file it
    could not read raises ``error``: "cannot read it: <reason>"; one it could not decode
    raises what decoding raised."""
    files = context(info).get("files")
    got = files.get((kind, path)) if isinstance(files, Mapping) else None
    if isinstance(got, OSError):
        reason = {"reason": got.strerror or str(got)}
        raise PydanticCustomError(error, "cannot read it: {reason}", reason) from None
    if isinstance(got, Exception):
        raise got
    return got


def wanted(
    model: type[BaseModel], data: object, base: Path | None, credentials: str | None
) -> Iterator[tuple[Kind, Path]]:
    """The files the document ``data`` names in fields marked with FileInput, as
    ``model`` would validate it (values that name no file are left to the validators)."""
    if not isinstance(data, Mapping):
        return
    for name, info in model.model_fields.items():
        value = data.get(info.alias or name)
        if value is None:
            continue
        marker = _marker(info.annotation, info.metadata)
        if marker is not None:
            try:
                path = marker.resolve(value, base, credentials)
            except PydanticCustomError:
                continue
            if isinstance(path, Path):
                yield marker.kind, path
            continue
        sub = _submodel(info.annotation)
        if sub is None:
            continue
        array = typing.get_origin(info.annotation) is tuple
        for item in (value if isinstance(value, list | tuple) else ()) if array else (value,):
            yield from wanted(sub, item, base, credentials)


def _marker(annotation: object, metadata: list[object]) -> FileInput | None:
    for m in metadata:
        if isinstance(m, FileInput):
            return m
    if typing.get_origin(annotation) is Annotated:
        return _marker(typing.get_args(annotation)[0], list(annotation.__metadata__))  # type: ignore[attr-defined]
    for arg in typing.get_args(annotation):
        if (m := _marker(arg, [])) is not None:
            return m
    return None


def _submodel(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if (sub := _submodel(arg)) is not None:
            return sub
    return None


# --- the passfile ----------------------------------------------------------------------


@dataclass(frozen=True)
class PassFile:
    """A passfile and the password read from it at load time (never in repr)."""

    path: Path
    secret: SecretBytes = field(repr=False)


def passfile_path(value: object, base: Path | None, credentials: str | None) -> object:
    if isinstance(value, str) and value.startswith("%d/"):
        # systemd's specifier for the credentials directory (LoadCredential= in the unit)
        if not credentials:
            raise PydanticCustomError(
                "no_credentials",
                "%d is systemd's credentials directory, and $CREDENTIALS_DIRECTORY is not "
                "set (LoadCredential= in the unit)",
            )
        value = str(Path(credentials) / value[3:])
    return resolve_path(value, base)


def _read_passfile(value: object, info: ValidationInfo, max_length: int) -> PassFile:
    if isinstance(value, PassFile):
        return value
    path = passfile_path(value, base_dir(info), context(info).get("credentials"))
    if not isinstance(path, Path):
        raise PydanticCustomError("path_type", "must be a path string")
    data = content(info, "bytes", path, "passfile_unreadable")
    if not isinstance(data, bytes):
        raise PydanticCustomError("passfile_unread", "not read: carpd.config.load reads it")
    # Like ucarp: the first line, without its newline.
    secret = data.split(b"\n", 1)[0]
    if len(secret) > max_length:
        raise PydanticCustomError(
            "password_too_long",
            "the password in it is too long",
            {"max_length": max_length, "actual_length": len(secret)},
        )
    return PassFile(path, SecretBytes(secret))


def _passfile(value: object, info: ValidationInfo) -> PassFile:
    return _read_passfile(value, info, MAX_PASSWORD_LEN)


def _web_passfile(value: object, info: ValidationInfo) -> PassFile:
    if isinstance(value, PassFile):
        return value
    found = _read_passfile(value, info, MAX_WEB_PASSWORD_LEN)
    if not found.secret.get_secret_value():
        raise PydanticCustomError("password_empty", "its first line is empty: no password")
    return found


PassFileField = Annotated[
    PassFile,
    PlainValidator(_passfile),
    PlainSerializer(lambda pf: str(pf.path), return_type=str),
    FileInput(passfile_path, "bytes"),
]
# A password for a peer's status page (HTTP basic): read like a passfile, any length up
# to MAX_WEB_PASSWORD_LEN, never empty.
WebPassFileField = Annotated[
    PassFile,
    PlainValidator(_web_passfile),
    PlainSerializer(lambda pf: str(pf.path), return_type=str),
    FileInput(passfile_path, "bytes"),
]
