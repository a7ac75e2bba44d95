"""The per-node overlay: one shared carpd.toml for every node, and each node's own
values (carpdevs, advskew or priority, unicast peers, node addresses, the sync peer) in
a small file of its own that is never synced (``[global] overlay``).

    # /etc/carpd/node.toml on fw2
    [carp.lan]            # the [[carp]] named "lan"
    advskew = 100
    carpdev = "eth1"
    [pool.web]            # the [[pool]] named "web"
    nodes = ["1:100", "2:0"]
    [conntrackd]
    address = "203.0.113.2"
    peer = "203.0.113.1"

Its values replace the shared file's before the whole is validated; a problem with one
of them is reported with the overlay's file and key (``node.toml: carp.lan.advskew``).
pfSense copies the advskew and adds 100 on the way; OPNsense copies per-node fields to
both nodes (opnsense/core #8120): here they never travel.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from carpd.config.errors import ConfigError
from carpd.config.values import Loc

# Arrays of tables that the overlay cannot reach into: they have no names to key by.
_ARRAYS = ("action", "follow")


def read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the overlay: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: TOML syntax error: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None


def apply(
    data: Mapping[str, Any], overlay: Mapping[str, Any], path: Path
) -> tuple[dict[str, Any], dict[Loc, str]]:
    """The shared document with the overlay's values in it, and where each came from
    (a loc in the document -> the overlay's key path)."""
    merged = copy.deepcopy(dict(data))
    origins: dict[Loc, str] = {}
    for table, value in overlay.items():
        if table in _ARRAYS:
            raise ConfigError(f"{path}: {table}: [[{table}]] tables are shared: not in an overlay")
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: {table}: must be a table")
        if table in ("carp", "pool"):  # arrays of tables with names: keyed by name
            _named(merged, table, value, path, origins)
            continue
        target = merged.setdefault(table, {})
        if not isinstance(target, dict):
            raise ConfigError(f"{path}: {table}: the shared file's {table} is not a table")
        for key, v in value.items():
            target[key] = v
            origins[(table, key)] = f"{table}.{key}"
    return merged, origins


def _named(
    merged: dict[str, Any], table: str, tables: dict[str, Any], path: Path, origins: dict[Loc, str]
) -> None:
    items = merged.get(table)
    items = items if isinstance(items, list) else []
    names = {
        (t.get("name") or f"carp{t.get('vhid')}"): i
        for i, t in enumerate(items)
        if isinstance(t, dict)
    }
    for name, keys in tables.items():
        if name not in names:
            known = ", ".join(sorted(names)) or "none"
            raise ConfigError(
                f"{path}: {table}.{name}: no [[{table}]] of that name (there are: {known})"
            )
        if not isinstance(keys, dict):
            raise ConfigError(f"{path}: {table}.{name}: must be a table of its keys")
        if "name" in keys:
            raise ConfigError(f"{path}: {table}.{name}.name: a name is shared: it keys the overlay")
        i = names[name]
        for key, v in keys.items():
            items[i][key] = v
            origins[(table, i, key)] = f"{table}.{name}.{key}"


def origin_of(origins: Mapping[Loc, str], loc: Loc) -> str | None:
    """The overlay key a problem at ``loc`` (or inside it) comes from, if any."""
    for n in range(len(loc), 0, -1):
        key = origins.get(loc[:n])
        if key is not None:
            rest = loc[n:]
            return key + "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in rest)
    return None
