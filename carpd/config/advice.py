"""Settings that are valid but known to misbehave: warned about, never refused."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

from carpd.config.document import Config


def advisories(config: Config) -> list[str]:
    """One line per questionable setting, naming the file, the vhid and the key."""
    notes = []
    for c in config.carp:
        where = f"{config.source}: {c.name} (vhid {c.vhid} on {c.carpdev})"
        if c.protocol == "carp" and c.deadratio == 1:
            # The master-down interval then equals the advert interval: a backup with
            # the master's advskew times out just as the next advert is due, wins or
            # loses the tie, and does it again (the simulation shows a flip per few
            # seconds); one lost advert is a failover.
            notes.append(
                f"{where}: deadratio = 1: a BACKUP with the master's advskew times out "
                "as each advert is due and flips to MASTER and back, and one lost advert "
                "fails over; 2 or more (default 3) is safe"
            )
    notes += _plain_http(config)
    notes += _open_secrets(config)
    return notes


def _plain_http(config: Config) -> list[str]:
    """Basic auth without TLS on an address others reach: the passwords cross the
    network in the clear (base64), for anyone on the path to read."""
    web = config.web
    remote = [a for a in web.listen if not a.is_loopback]
    if not web.enabled or not remote or web.tls_cert is not None:
        return []
    return [
        f'{config.source}: web.listen = "{remote[0]}": not a loopback address, and no '
        "tls_cert: users' passwords (HTTP basic authentication) cross the network in the "
        "clear; set tls_cert and tls_key"
    ]


def _secret_files(config: Config) -> Iterator[tuple[str, Path]]:
    for c in config.carp:  # a [[pool]]'s vhids carry its passfile
        if c.passfile is not None:
            yield f"{c.name} (vhid {c.vhid} on {c.carpdev}): passfile", c.passfile.path
    for key in ("tls_key", "users_file"):
        path = getattr(config.web, key)
        if path is not None:
            yield f"web.{key}", path


def _open_secrets(config: Config) -> list[str]:
    """A password, a private key or password hashes that other local users can read
    (or change): whoever reads a passfile can forge adverts."""
    notes, seen = [], set()
    for key, path in _secret_files(config):
        if path in seen:
            continue
        seen.add(path)
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            continue  # missing or unreadable: the load or --check says so
        if mode & 0o077:
            can = "read" if mode & 0o044 else "change"
            notes.append(
                f'{config.source}: {key} = "{path}": mode {mode:04o}: users other than its '
                f"owner can {can} it; chmod 600 {path}"
            )
    return notes
