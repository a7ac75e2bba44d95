"""The value types of the configuration: addresses, names, paths, and the errors they raise.

Each is an annotated type whose validator is pure: it reads no file and no clock. Paths
are taken from validation context ``base_dir`` (a Path): the config file's directory, or
the cwd for a command line.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, ValidationInfo
from pydantic_core import PydanticCustomError

Loc = tuple[str | int, ...]
LogLevel = Literal["debug", "info", "warning", "error"]
Facility = Literal[
    "auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news", "syslog",
    "user", "uucp", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
    "local7",
]  # fmt: skip
Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address
Protocol = Literal["carp", "vrrp3"]

# A field's description when it is not a key of the file (the man pages and the list of
# allowed keys leave it out).
INTERNAL = "set by carpd, not a key of the file"


class Frozen(BaseModel):
    """A table: frozen (settings compare and hash by meaning), unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _interface(value: object) -> Interface:
    # Not pydantic's IPvAnyInterface: it takes a TOML integer for an address (3221225985
    # would be 192.0.2.1/32), which is never what a user meant.
    if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return value  # one validated already (a [[pool]]'s, handed to its vhids)
    if isinstance(value, str):
        try:
            return ipaddress.ip_interface(value)
        except ValueError:
            pass
    raise PydanticCustomError("ip_any_interface", "not an address/prefix")


AddressSetting = Annotated[Interface, PlainValidator(_interface)]


def _address(value: object) -> IPAddr:
    # A string only, as for _interface: never a TOML integer.
    if isinstance(value, str):
        try:
            return ipaddress.ip_address(value)
        except ValueError:
            pass
    raise PydanticCustomError("ip_any_address", "not an IP address")


AddressValue = Annotated[IPAddr, PlainValidator(_address)]


def _v4(value: object) -> ipaddress.IPv4Address:
    address = _address(value)
    if not isinstance(address, ipaddress.IPv4Address):
        raise PydanticCustomError("ip_v4_address", "not an IPv4 address")
    return address


IPv4Value = Annotated[ipaddress.IPv4Address, PlainValidator(_v4)]


def one_or_more(value: object) -> object:
    """``listen = "192.0.2.1"`` is ``listen = ["192.0.2.1"]``."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return value
    raise PydanticCustomError("one_or_more", "not an address or an array of addresses")


class Conflict(NamedTuple):
    """One cross-check failure. ``loc`` and ``other`` are relative to the error's loc;
    ``message`` may name ``other`` with the placeholder ``{other}``."""

    loc: Loc
    value: object
    message: str
    other: Loc = ()


def conflicts(*found: Conflict) -> PydanticCustomError:
    return PydanticCustomError("conflict", "conflicting settings", {"conflicts": found})


def exactly_one(a: object, b: object, keys: tuple[str, str]) -> None:
    if (a is None) == (b is None):
        found = "neither" if a is None else "both"
        raise PydanticCustomError("one_of", "{found}", {"found": found, "keys": keys})


def context(info: ValidationInfo) -> dict[str, Any]:
    """The validation context (empty when validated without one)."""
    return info.context if isinstance(info.context, dict) else {}


def missing_extra(info: ValidationInfo, extra: str) -> str | None:
    """Why an extra's libraries cannot be used (context ``extras``, as the loader found
    them), or None: installed, or validated without the loader (the import fails later)."""
    extras = context(info).get("extras")
    return extras.get(extra) if isinstance(extras, dict) else None


def _control_character(text: str) -> str | None:
    """The first control character in ``text``, spelled as Python would (None: none)."""
    return next((repr(c)[1:-1] for c in text if c < " " or "\x7f" <= c <= "\x9f"), None)


def resolve_path(value: object, base_dir: Path | None) -> object:
    """A path string as a Path, relative ones taken from ``base_dir``; anything else as
    it is (pydantic then says it is not a path)."""
    if isinstance(value, str | Path):
        if str(value) == "":
            raise PydanticCustomError("empty_path", "must not be empty")
        # A newline would start a line of its own in a file written from the config
        # (conntrackd.conf), and no real path holds one.
        if (found := _control_character(str(value))) is not None:
            raise PydanticCustomError(
                "path_control_character",
                "contains the control character {found}: a path may hold none",
                {"found": found},
            )
        path = Path(value)
        return base_dir / path if base_dir is not None and not path.is_absolute() else path
    return value


def base_dir(info: ValidationInfo) -> Path | None:
    base = context(info).get("base_dir")
    return Path(base) if base is not None else None


def _resolve_path(value: object, info: ValidationInfo) -> object:
    """Relative paths are taken from the config file's directory (cwd for a command line)."""
    return resolve_path(value, base_dir(info))


PathSetting = Annotated[Path, BeforeValidator(_resolve_path)]


# Linux's rule for interface names (no '/', ':' or whitespace), and no control characters.
_IFNAME = r"^[^/:\s\x00-\x1f\x7f]+$"
# Names that end up in generated text (nft scripts, conntrackd.conf, macvlan names):
# nothing that quotes, ends a block or starts a comment there.
SAFE_NAME = r"^[A-Za-z0-9_.-]+$"
SAFE_CHARS = "letters, digits, '.', '_' and '-'"


def _ifname(description: str, pattern: str = _IFNAME) -> Any:
    return Field(min_length=1, max_length=15, pattern=pattern, description=description)


IfName = Annotated[
    str,
    _ifname("an interface name: 1-15 characters, no '/', ':', whitespace or control characters"),
]
Name = Annotated[str, _ifname(f"a name of 1-15 characters: {SAFE_CHARS}", SAFE_NAME)]
StrictBool = Annotated[bool, Field(strict=True)]
GroupName = Annotated[
    str,
    _ifname("a group name of 1-15 characters, no '/', ':', whitespace or control characters"),
]
MacAddress = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")]
