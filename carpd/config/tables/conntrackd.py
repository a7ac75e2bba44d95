"""The ``[conntrackd]`` table: connection-state sync driven around carpd's transitions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from carpd.config.values import (
    SAFE_CHARS,
    SAFE_NAME,
    AddressValue,
    Conflict,
    Frozen,
    PathSetting,
    StrictBool,
    conflicts,
)


class ConntrackdConfig(Frozen):
    """The ``[conntrackd]`` table: carpd drives conntrackd (connection-state sync, the
    pfsync of Linux firewall pairs) around its own transitions."""

    enabled: StrictBool = False
    """Drive conntrackd (connection-state sync, the pfsync of Linux firewall pairs) around
    carpd's transitions: the peer's connections are committed before the addresses go up
    (carpd(8), STATE SYNC)."""
    binary: PathSetting = Path("/usr/sbin/conntrackd")
    """The conntrackd program."""
    config: PathSetting = Path("/etc/conntrackd/conntrackd.conf")
    """conntrackd's configuration (``carpd --conntrackd-conf`` writes one)."""
    expectations: StrictBool = False
    """Commit the expectation cache too (-c expect), with ExpectationSync in conntrackd.conf
    (FTP, SIP)."""
    commit_timeout: float = Field(default=2.0, gt=0, le=60, strict=True, allow_inf_nan=False)
    """Seconds the commit may hold the addresses back on becoming MASTER, on top of a
    second per 50,000 of the peer's connections (conntrackd's last count of them: half the
    slowest commit rate measured); then they go up anyway and the commit finishes on its
    own."""
    max_entries: int | None = Field(default=None, ge=1024, le=1 << 26, strict=True)
    """The connections the firewall's table holds at most: ``carpd --conntrackd-conf``
    sizes conntrackd's caches (HashSize, HashLimit), its netlink event buffer and its sync
    socket buffers from it. Unset: the node's ``net.netfilter.nf_conntrack_max`` when
    the file is written (the kernel refuses connections beyond it anyway)."""
    external_cache: StrictBool = True
    """Keep the peer's connections in conntrackd's external cache and commit them into
    the kernel on becoming MASTER (the addresses wait for the commit). false: the
    BACKUP's conntrackd writes them straight into its kernel table as they arrive
    (``DisableExternalCache On``), so there is nothing to commit at a takeover, at a cost:
    the BACKUP's kernel table holds the peer's connections with the peer's timeouts
    (docs/firewall.md, "At scale")."""
    command_timeout: float = Field(default=10.0, gt=0, le=120, strict=True, allow_inf_nan=False)
    """Seconds any other conntrackd command (-f, -R, -B, -t, -n, -s) may take."""
    demotion_factor: int = Field(default=240, ge=0, le=1 << 24, strict=True)
    """Demotion while the bulk resync is not done, conntrackd does not answer, or the sync
    link is down."""
    bulk_timeout: float = Field(default=60.0, gt=0, le=3600, strict=True, allow_inf_nan=False)
    """Seconds to wait for the peer's table (after start-up, a restart of conntrackd, the
    sync link coming back); then it counts as done, as in pfsync, so a dead peer cannot keep
    the node demoted. It must cover the whole table: conntrackd took in 13,000-40,000
    connections a second on a 2-core machine (the slower without an external cache), so a
    million needs 120."""
    interface: Annotated[str, Field(min_length=1, max_length=15, pattern=SAFE_NAME)] | None = Field(
        default=None, description=f"an interface name of 1-15 characters: {SAFE_CHARS}"
    )
    """The dedicated sync link: demoted while it is down, a bulk resync when it comes back;
    ``carpd --conntrackd-conf`` writes it into conntrackd.conf (so letters, digits, ``.``,
    ``_`` and ``-`` only)."""
    address: AddressValue | None = None
    """This node's address on the sync link."""
    peer: AddressValue | None = None
    """The other node's address on the sync link (the family of ``address``)."""
    port: int = Field(default=3780, ge=1, le=65535, strict=True)
    """conntrackd's UDP port on the sync link."""
    run_dir: PathSetting = Path("/run/conntrackd")
    """conntrackd's lock file, Unix socket and log, for ``carpd --conntrackd-conf``: one
    directory per instance; no whitespace or ``"`` (conntrackd's lexer ends a path there)."""
    stop_with_carpd: StrictBool = False
    """Stop the conntrackd that carpd started (and only that one) when carpd exits, after
    the hand-over. false: it keeps running, as systemd's KillMode=process in carpd's unit
    intends, so a restart of carpd keeps the connection table; status and the log at exit
    say so."""

    @field_validator("run_dir")
    @classmethod
    def _one_conntrackd_word(cls, value: Path) -> Path:
        # conntrackd.conf's lexer ends a path at a blank or '"': what followed would be
        # read as more of the file (a "}" and a block of one's own).
        if any(c.isspace() or c == '"' for c in str(value)):
            raise PydanticCustomError(
                "conntrackd_path", "conntrackd.conf cannot hold a path with whitespace or '\"'"
            )
        return value

    @model_validator(mode="after")
    def _one_family(self) -> ConntrackdConfig:
        a, p = self.address, self.peer
        if a is not None and p is not None and a.version != p.version:
            raise conflicts(
                Conflict(("peer",), str(p), "not the address family of {other}", ("address",))
            )
        return self
