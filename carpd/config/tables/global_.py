"""The ``[global]`` table: the node's own settings, and defaults for every vhid."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from carpd.config.values import Facility, Frozen, GroupName, LogLevel, PathSetting, StrictBool

SERVICE_INTERVAL_MIN, SERVICE_INTERVAL_MAX = 0.1, 86400  # [global] service_interval
LIFETIME_MIN, LIFETIME_MAX = 2, 86400  # [global] address_lifetime, in seconds


class GlobalConfig(Frozen):
    """The ``[global]`` table: the node's own settings, and defaults for every vhid."""

    control_socket: PathSetting = Path("/run/carpd/carpd.sock")
    """The Unix socket ``carpctl`` talks to (mode 0660, owner root, group
    ``control_group``); ``carpd --socket`` overrides it."""
    preempt: StrictBool = False
    """The default for every [[carp]] without a ``preempt`` of its own: a BACKUP that
    advertises more often than the MASTER (a lower advbase, then advskew) takes over. false,
    as on the BSDs; VRRPv3 vhids preempt unless they say otherwise (RFC 5798)."""
    garp_refresh: float = Field(default=0, ge=0, le=86400, strict=True, allow_inf_nan=False)
    """The default for every [[carp]] without a ``garp_refresh`` of its own: a MASTER sends
    its gratuitous ARPs and unsolicited NAs again every this many seconds (keepalived's
    ``garp_master_refresh``). 0: off, as keepalived: a MASTER announces on taking over, on
    a link up, after a resume and after putting back an address; a refresh only helps a
    switch or a client that forgets or missed those, at a broadcast per address each time."""
    log_level: LogLevel = "info"
    """The least severe messages that are logged. Logs go to stderr (the journal under
    systemd)."""
    syslog: StrictBool = False
    """Also log to syslog (/dev/log), with ``syslog_facility``. Without /dev/log (a
    container), one warning, then stderr alone."""
    syslog_facility: Facility = "daemon"
    """The syslog facility, with ``syslog = true``."""
    hook_timeout: float = Field(default=30.0, gt=0, strict=True, allow_inf_nan=False)
    """Seconds an ``up`` or ``down`` hook may run; then it is killed with its process group.
    Hooks never hold up the adverts."""
    control_group: GroupName | None = None
    """A group that may use the control socket besides root (the socket's mode is 0660),
    e.g. for ``carpctl service-status``. Unset: root only."""
    state_dir: PathSetting = Path("/var/lib/carpd")
    """Where persistent state lives: maintenance mode (the file ``maintenance``), what
    ``carpctl sync status`` found (``sync/status.json``) and the sync journal."""
    service_checks: PathSetting = Path("/etc/carpd/service-status.d")
    """A directory of service checks (OPNsense's rc.carp_service_status.d): every executable
    in it is run; an exit other than 0, or none within ``service_timeout`` seconds, demotes
    the node by 1048576 (2^20) until every check passes again."""
    service_interval: float = Field(default=5.0, strict=True, allow_inf_nan=False)
    """Also run the service checks every this many seconds (keepalived's track_script is
    periodic too): 0.1 to 86400, or 0 for at start-up and on ``carpctl service-status``
    only. A check is a process: one that does nothing costs about 1.6 ms of CPU."""
    service_timeout: float = Field(default=10.0, gt=0, strict=True, allow_inf_nan=False)
    """Seconds a service check may run; then it is killed and counts as failed."""
    # Demotion factors; FreeBSD's defaults (net.inet.carp.*_demotion_factor = 240).
    ifdown_demotion_factor: int = Field(default=240, ge=0, le=1 << 24, strict=True)
    """Demotion while a carpdev has lost its link (its vhids go INIT)."""
    senderr_demotion_factor: int = Field(default=240, ge=0, le=1 << 24, strict=True)
    """Demotion after 3 adverts in a row could not be sent; lifted after 3 good ones."""
    maintenance_demotion_factor: int = Field(default=240, ge=1, le=1 << 24, strict=True)
    """Demotion in persistent maintenance mode (``carpctl maintenance on``)."""
    startup_demotion_factor: int = Field(default=240, ge=0, le=1 << 24, strict=True)
    """Demotion at start-up until the first service checks have run, so a rebooting node
    does not take the role before its services are up."""
    overlay: PathSetting | None = None
    """A TOML file of this node's own values (carpdevs, advskew or priority, peers, node
    addresses, the sync peer), merged over this file before it is validated, so that one
    carpd.toml serves every node and syncs as it is (see OVERLAY)."""
    realtime_priority: int | None = Field(default=None, ge=1, le=99, strict=True)
    """Run under SCHED_FIFO at this priority (keepalived's vrrp_rt_priority), for adverts
    every 10 ms on a busy machine; needs CAP_SYS_NICE. What carpd starts still runs under
    the normal policy. Unset: the policy carpd was started with."""
    node_name: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$", strict=True
    )
    """This node's name in status (``carpctl status``, /api/status) and the status page's
    title: letters, digits, ``.``, ``_`` and ``-``, at most 63. Unset: the host name."""
    address_lifetime: Literal["auto"] | Annotated[int, Field(strict=True)] = "auto"
    """Seconds a vhid's address lives on the host unless carpd renews it (valid and
    preferred lifetime: an IPv6 address is never deprecated), so that the kernel removes
    the addresses of a carpd that died (kill -9, an OOM kill, a crash) by itself instead of
    two nodes answering for them. ``"auto"``: the vhid's master-down interval rounded up,
    plus 1 s, renewed every second. 2 to 86400 seconds: renewed three times per lifetime
    (fewer netlink messages, a longer overlap after a crash). 0: none (forever, the
    kernel's default)."""

    @field_validator("address_lifetime", mode="before")
    @classmethod
    def _address_lifetime_range(cls, value: object) -> object:
        if value == "auto" or (
            isinstance(value, int)
            and not isinstance(value, bool)
            and (value == 0 or LIFETIME_MIN <= value <= LIFETIME_MAX)
        ):
            return value
        raise PydanticCustomError(
            "address_lifetime_range",
            f"allowed range is {LIFETIME_MIN}-{LIFETIME_MAX} (whole seconds), "
            '0 for none, or "auto"',
        )

    @field_validator("service_interval")
    @classmethod
    def _service_interval_range(cls, value: float) -> float:
        if value != 0 and not SERVICE_INTERVAL_MIN <= value <= SERVICE_INTERVAL_MAX:
            raise PydanticCustomError(
                "service_interval_range",
                f"allowed range is {SERVICE_INTERVAL_MIN:g}-{SERVICE_INTERVAL_MAX} seconds, "
                "or 0 for no periodic runs",
            )
        return value
