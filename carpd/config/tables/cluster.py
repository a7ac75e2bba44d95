"""The ``[cluster]`` table: the other nodes of the pair, as the cluster view reads them."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from carpd.config.files import WebPassFileField
from carpd.config.values import SAFE_NAME, Conflict, Frozen, PathSetting, conflicts, missing_extra

# https://host, https://host:port or https://[v6]:port, and nothing else: no path, and
# no user or password (the credential comes from passfile, never from a URL in a file).
_URL = r"^https://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?/?$"
# A certificate's SHA-256, as `openssl x509 -fingerprint -sha256` prints it (or bare hex).
_FINGERPRINT = r"^(?i:(sha256:?)?[0-9a-f]{2}(:?[0-9a-f]{2}){31})$"


def _no_credentials(value: object) -> object:
    if isinstance(value, str) and "@" in value:
        raise PydanticCustomError(
            "url_credentials",
            "a user or password in the URL: give them as user and passfile",
        )
    return value


Url = Annotated[
    str,
    BeforeValidator(_no_credentials),
    Field(pattern=_URL, description="https:// with a host and an optional port, nothing else"),
]


class ClusterPeer(Frozen):
    """A ``[[cluster.peer]]``: another node, read through its status page's API."""

    name: str = Field(min_length=1, max_length=64, pattern=SAFE_NAME)
    """The node's name in the cluster view (its ``[global] node_name``, usually)."""
    url: Url
    """Its status page: ``https://192.0.2.2:8473`` (its ``[web]``, with ``tls_cert``)."""
    user: str = Field(default="cluster", min_length=1, max_length=64, pattern=SAFE_NAME)
    """The user of its ``[web] users_file`` to read as (``carpctl web-user`` there). A
    drill also hands back through it, so that user needs ``read_only = false``."""
    passfile: WebPassFileField
    """A file whose first line is that user's password; ``%d/NAME`` is NAME in systemd's
    credentials directory (LoadCredential= in the unit)."""
    ca_file: PathSetting | None = None
    """Trust only certificates signed by this CA (PEM) for this peer."""
    fingerprint: str | None = Field(
        default=None,
        pattern=_FINGERPRINT,
        description="a SHA-256 in hex (64 digits, colons and a sha256: prefix allowed)",
    )
    """Trust exactly the certificate with this SHA-256 (pinned: ``openssl x509 -noout
    -fingerprint -sha256 -in cert.pem``). With neither, the system's CAs decide."""

    @property
    def pin(self) -> bytes | None:
        """The pinned certificate's SHA-256, as bytes."""
        if self.fingerprint is None:
            return None
        text = self.fingerprint.lower().removeprefix("sha256").replace(":", "")
        return bytes.fromhex(text)


class ClusterConfig(Frozen):
    """The ``[cluster]`` table: the other nodes of the pair. carpd reads each one's
    status every ``interval`` seconds, in the background, each read bounded by
    ``timeout`` (a peer that does not answer is shown as such and never holds up
    anything else); `carpctl cluster status`, the page and `carpctl drill` show and use
    what it read."""

    interval: float = Field(default=5.0, ge=1, le=3600, strict=True, allow_inf_nan=False)
    """Seconds between two reads of each peer."""
    timeout: float = Field(default=2.0, gt=0, le=60, strict=True, allow_inf_nan=False)
    """Seconds one read may take (connection, TLS and answer); then the peer is shown as
    not answering. Less than ``interval``."""
    peer: tuple[ClusterPeer, ...] = ()
    """The other nodes, one [[cluster.peer]] table each."""

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> ClusterConfig:
        found = []
        if self.peer and self.timeout >= self.interval:
            found.append(Conflict(("timeout",), self.timeout, "must be less than {other}",
                                  ("interval",)))  # fmt: skip
        if self.peer and (why := missing_extra(info, "web")) is not None:
            found.append(Conflict(("peer",), self.peer[0].name, why))
        names: dict[str, int] = {}
        for i, p in enumerate(self.peer):
            j = names.setdefault(p.name, i)
            if j != i:
                found.append(Conflict(("peer", i, "name"), p.name, "also {other}", ("peer", j)))
            if p.ca_file is not None and p.fingerprint is not None:
                found.append(Conflict(("peer", i, "fingerprint"), p.fingerprint,
                                      "pins the certificate: {other} would not be used",
                                      ("peer", i, "ca_file")))  # fmt: skip
        if found:
            raise conflicts(*found)
        return self
