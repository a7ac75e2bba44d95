"""The ``[web]`` table: the status page, /api/status and /metrics."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import BeforeValidator, Field, ValidationInfo, model_validator

from carpd.config.values import (
    AddressValue,
    Conflict,
    Frozen,
    IPAddr,
    PathSetting,
    StrictBool,
    conflicts,
    missing_extra,
    one_or_more,
)


class WebConfig(Frozen):
    """The ``[web]`` table: the status page, /api/status and /metrics, served by carpd."""

    enabled: StrictBool = False
    """Serve the status page, /api/status and /metrics (needs carpd[web]). A reload
    applies a change of [web] without a restart; one that cannot start (a port taken, a
    TLS file that does not load) refuses the reload and the running page stays."""
    listen: Annotated[
        tuple[AddressValue, ...], BeforeValidator(one_or_more), Field(min_length=1)
    ] = (ipaddress.IPv4Address("127.0.0.1"),)
    """The addresses to listen on: one (a string) or several (an array), e.g.
    ``["127.0.0.1", "192.0.2.1"]``. Reading through a loopback address needs no user;
    through any other, every request needs one, so it needs ``users_file``. 0.0.0.0 or ::
    listens on every address of its family (a loopback one stays free), and then no other
    address of that family may be listed."""
    port: int = Field(default=8473, ge=1, le=65535, strict=True)
    """The TCP port."""
    tls_cert: PathSetting | None = None
    """HTTPS with this certificate chain (PEM) and ``tls_key``: both or neither."""
    tls_key: PathSetting | None = None
    """The private key (PEM) of ``tls_cert``."""
    users_file: PathSetting | None = None
    """Users for HTTP basic authentication, "name:scrypt$..." lines as ``carpctl web-user``
    prints them. Every change (POST), and reading through an address of ``listen`` that
    is not a loopback one, needs one; a reload reads the file again."""
    read_only: StrictBool = False
    """No buttons: every POST is refused."""
    max_connections: int = Field(default=64, ge=1, le=10_000, strict=True)
    """At most this many connections at once; a new one pushes out the oldest, so idle and
    slow clients cannot crowd out the page."""

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> WebConfig:
        found = []
        if (self.tls_cert is None) != (self.tls_key is None):
            key, other = ("tls_cert", "tls_key") if self.tls_cert else ("tls_key", "tls_cert")
            found.append(Conflict((key,), str(getattr(self, key)), "needs {other}", (other,)))
        if self.enabled and (why := missing_extra(info, "web")) is not None:
            found.append(Conflict(("enabled",), True, why))
        seen: set[IPAddr] = set()
        for i, address in enumerate(self.listen):
            if address in seen:
                found.append(Conflict(("listen", i), str(address), "listed twice"))
            seen.add(address)
            wildcard = next(
                (a for a in self.listen if a.is_unspecified and a.version == address.version),
                address,
            )
            if wildcard != address:
                found.append(
                    Conflict(("listen", i), str(address), f"{wildcard} listens on it already")
                )
        remote = [(i, a) for i, a in enumerate(self.listen) if not a.is_loopback]
        if self.enabled and remote and self.users_file is None:
            i, address = remote[0]
            found.append(
                Conflict(
                    ("listen", i) if len(self.listen) > 1 else ("listen",),
                    str(address),
                    "not a loopback address, so every request from elsewhere needs a user: "
                    "set {other}",
                    ("users_file",),
                )
            )
        if found:
            raise conflicts(*found)
        return self
