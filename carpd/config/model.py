"""The validated configuration: frozen pydantic models, one set for TOML and ucarp options.

Input keys are the TOML keys (``pass``, ``global``); validation context ``base_dir``
(a Path) anchors relative paths: the config file's directory, or the cwd for a command
line. Settings are equal (``==``) and hash alike exactly when they mean the same thing,
so a SIGHUP reload can keep the vhids whose settings did not change.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SecretBytes,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from carpd.config.extras import missing
from carpd.core.auth import MAX_PASSWORD_LEN, HmacVariant
from carpd.core.machine import Tiebreak
from carpd.core.timing import DEFAULT_DEADRATIO

Loc = tuple[str | int, ...]
LogLevel = Literal["debug", "info", "warning", "error"]
Facility = Literal[
    "auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news", "syslog",
    "user", "uucp", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
    "local7",
]  # fmt: skip
Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address


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
Protocol = Literal["carp", "vrrp3"]


class Conflict(NamedTuple):
    """One cross-check failure. ``loc`` and ``other`` are relative to the error's loc;
    ``message`` may name ``other`` with the placeholder ``{other}``."""

    loc: Loc
    value: object
    message: str
    other: Loc = ()


def conflicts(*found: Conflict) -> PydanticCustomError:
    return PydanticCustomError("conflict", "conflicting settings", {"conflicts": found})


def _base_dir(info: ValidationInfo) -> Path | None:
    ctx = info.context if isinstance(info.context, dict) else {}
    base = ctx.get("base_dir")
    return Path(base) if base is not None else None


def _control_character(text: str) -> str | None:
    """The first control character in ``text``, spelled as Python would (None: none)."""
    return next((repr(c)[1:-1] for c in text if c < " " or "\x7f" <= c <= "\x9f"), None)


def _resolve_path(value: object, info: ValidationInfo) -> object:
    """Relative paths are taken from the config file's directory (cwd for a command line)."""
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
        path, base = Path(value), _base_dir(info)
        return base / path if base is not None and not path.is_absolute() else path
    return value


PathSetting = Annotated[Path, BeforeValidator(_resolve_path)]


@dataclass(frozen=True)
class PassFile:
    """A passfile and the password read from it at load time (never in repr)."""

    path: Path
    secret: SecretBytes = field(repr=False)


def _read_passfile(value: object, info: ValidationInfo) -> PassFile:
    if isinstance(value, PassFile):
        return value
    if isinstance(value, str) and value.startswith("%d/"):
        # systemd's specifier for the credentials directory (LoadCredential= in the unit)
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        if not creds:
            raise PydanticCustomError(
                "no_credentials",
                "%d is systemd's credentials directory, and $CREDENTIALS_DIRECTORY is not "
                "set (LoadCredential= in the unit)",
            )
        value = str(Path(creds) / value[3:])
    path = _resolve_path(value, info)
    if not isinstance(path, Path):
        raise PydanticCustomError("path_type", "must be a path string")
    try:
        data = path.read_bytes()
    except OSError as e:
        reason = {"reason": e.strerror or str(e)}
        raise PydanticCustomError(
            "passfile_unreadable", "cannot read it: {reason}", reason
        ) from None
    # Like ucarp: the first line, without its newline.
    secret = data.split(b"\n", 1)[0]
    if len(secret) > MAX_PASSWORD_LEN:
        raise PydanticCustomError(
            "password_too_long",
            "the password in it is too long",
            {"max_length": MAX_PASSWORD_LEN, "actual_length": len(secret)},
        )
    return PassFile(path, SecretBytes(secret))


PassFileField = Annotated[
    PassFile,
    PlainValidator(_read_passfile),
    PlainSerializer(lambda pf: str(pf.path), return_type=str),
]


# Linux's rule for interface names (no '/', ':' or whitespace), and no control characters.
_IFNAME = r"^[^/:\s\x00-\x1f\x7f]+$"
# Names that end up in generated text (nft scripts, conntrackd.conf, macvlan names):
# nothing that quotes, ends a block or starts a comment there.
SAFE_NAME = r"^[A-Za-z0-9_.-]+$"
SAFE_CHARS = "letters, digits, '.', '_' and '-'"


def _ifname(description: str, pattern: str = _IFNAME) -> Any:
    return Field(min_length=1, max_length=15, pattern=pattern, description=description)


_BROADCAST = ipaddress.IPv4Address("255.255.255.255")

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


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


SERVICE_INTERVAL_MIN, SERVICE_INTERVAL_MAX = 0.1, 86400  # [global] service_interval


class GlobalConfig(_Frozen):
    """The ``[global]`` table: the node's own settings, and defaults for every vhid."""

    control_socket: PathSetting = Path("/run/carpd/carpd.sock")
    """The Unix socket ``carpctl`` talks to (mode 0660, owner root, group
    ``control_group``); ``carpd --socket`` overrides it."""
    preempt: StrictBool = False
    """The default for every [[carp]] without a ``preempt`` of its own: a BACKUP that
    advertises more often than the MASTER (a lower advbase, then advskew) takes over. false,
    as on the BSDs; VRRPv3 vhids preempt unless they say otherwise (RFC 5798)."""
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


INTERNAL = "set by carpd, not a key of the file"


class PoolRef(_Frozen):
    """A [[pool]] vhid's place in its pool (set by the pool, not written by hand)."""

    name: str
    index: int  # its bucket: the flows whose hash is this go to its MASTER
    count: int
    mode: Literal["ip", "arp"]
    seed: int
    address: AddressSetting
    mac: str  # the pool's multicast MAC, in every node's ARP replies


class CarpConfig(_Frozen):
    """One ``[[carp]]`` table: a vhid on a carpdev.

    ``preempt`` is resolved at load time: the table's own ``preempt`` if it has one,
    otherwise ``[global].preempt``. It is always a bool, so ``==`` between two loads
    sees a change of the global default too.

    The password is ``password`` (bytes, from ``pass`` or the first line of
    ``passfile``); it is kept as SecretBytes and appears in no repr, str or dump.
    """

    name: Name
    """A name for logs, status, hooks, [[action]], [[follow]] and the overlay; with
    ``vmac``, the name of the macvlan."""
    vhid: int = Field(ge=1, le=255, strict=True)
    """The virtual host id (VRRPv3: the VRID). Every node of the group uses the same one;
    the same vhid may be used again on another carpdev."""
    carpdev: IfName
    """The interface the adverts go out on and the addresses are added to."""
    pass_: SecretBytes | None = Field(
        default=None, alias="pass", max_length=MAX_PASSWORD_LEN, repr=False
    )
    """The shared password, at most 19 characters (ucarp and the BSDs use only 19: from a
    longer FreeBSD password put its first 19 here). "" is no password, like a BSD vhid
    without pass. CARP needs exactly one of ``pass`` and ``passfile``; VRRPv3 takes neither.
    """
    passfile: PassFileField | None = None
    """A file whose first line (without the newline) is the password, instead of ``pass``.
    ``%d/NAME`` is NAME in systemd's credentials directory (LoadCredential= in the unit)."""
    protocol: Protocol = "carp"
    """``carp`` (CARP version 2, adverts signed with HMAC-SHA1) or ``vrrp3`` (RFC 5798, as
    keepalived's vrrp_version 3 and FreeBSD's carpver 3: no authentication)."""
    advbase: Annotated[int, Field(strict=True)] | Annotated[float, Field(strict=True)] = 1
    """Seconds between adverts. CARP: whole seconds, 1-255. VRRPv3: 0.01-40.95 in steps of
    0.01."""
    advskew: int = Field(default=0, ge=0, le=254, strict=True)
    """CARP only: added to advbase, in 1/256 s. The lowest advbase, then advskew, is MASTER,
    so give each BACKUP a higher advskew."""
    priority: int = Field(default=100, ge=1, le=254, strict=True)
    """VRRPv3 only, instead of advskew: the highest priority is MASTER."""
    accept: StrictBool = True
    """VRRPv3 only: take packets sent to the addresses while MASTER (RFC 5798 Accept_Mode),
    as keepalived does unless ``vrrp_strict``; a CARP MASTER always does. false (the RFC's
    default, keepalived's ``no_accept``): the MASTER answers ARP and neighbour discovery
    for them but drops what is sent to them, a ping included (an nftables table ``inet
    carpd``: needs nft), for addresses used only as a gateway."""
    vmac: StrictBool = False
    """The addresses live on a macvlan named after ``name`` with the virtual MAC
    00:00:5e:00:01:<vhid> (00:00:5e:00:02:<vrid> for an IPv6-only VRRPv3 vhid), up only on
    the MASTER, so the neighbours' ARP entries never change."""
    peers: tuple[AddressValue, ...] = ()
    """Unicast adverts to these addresses instead of multicast (clouds, switches that drop
    multicast); only their adverts are accepted. One peer of each address family among the
    addresses. Their adverts must still arrive with TTL (hop limit) 255, as on a link,
    unless ``peers_routed``."""
    peers_routed: StrictBool = False
    """With ``peers``: accept their adverts with any TTL (hop limit), for peers reached
    through a router. It costs the only defence VRRPv3 has: any host that can route a packet
    here can forge the peer's adverts and take the vhid; a CARP vhid's captured adverts can
    be replayed from anywhere, unless ``replay_protection``."""
    replay_protection: StrictBool = False
    """CARP only: send strictly increasing counters and refuse, per source, any advert whose
    counter does not increase (a captured advert replayed with a better advskew). Only when
    every node of the vhid is carpd with it on: ucarp and the BSDs do not send increasing
    counters."""
    addresses: tuple[AddressSetting, ...] = Field(min_length=1)
    """The virtual addresses, "address/prefix"; a bare address is /32 or /128. IPv4 and IPv6
    may be mixed."""
    up: PathSetting | None = None
    """Run on becoming MASTER as ``up <carpdev> <first address> [xparam]``, as ucarp runs
    its scripts, with CARP_VHID, CARP_STATE, CARP_INTERFACE, CARP_ADDRESSES and more in the
    environment (carpd(8), HOOKS)."""
    down: PathSetting | None = None
    """Run on leaving MASTER, and once at start unless ``neutral``, as ``up`` is."""
    pre_release: PathSetting | None = None
    """Run when the vhid leaves MASTER, before its addresses are removed (drain connections,
    tell a load balancer: keepalived #2389), as ``up`` is, for at most
    ``pre_release_timeout`` seconds; then the addresses go anyway."""
    pre_release_timeout: float = Field(default=5.0, gt=0, le=60, strict=True, allow_inf_nan=False)
    """Seconds ``pre_release`` may run before it is killed and the addresses are removed."""
    xparam: str | None = None
    """An extra third argument for the hooks."""
    srcip: IPv4Value | None = None
    """The IPv4 source address of the adverts: the node's own, never one of the
    addresses (they are removed on leaving MASTER)."""
    preempt: StrictBool = False
    """Take over from a MASTER that advertises less often (VRRPv3: RFC 5798 Preempt_Mode)."""
    tiebreak: Tiebreak = "ucarp"
    """CARP only: who wins when two masters advertise the very same advbase and advskew.
    ``ucarp``: the lower source address keeps the role, as ucarp decides (one master with
    ucarp and BSD peers alike); ``bsd``: both step down."""
    hmac_variant: HmacVariant = "openbsd"
    """CARP only, and only with an IPv6 link-local address among the addresses: ``openbsd``
    signs without it, as OpenBSD does; ``freebsd`` hashes it, as FreeBSD 10 and later do and
    insist on. Adverts signed either way are accepted."""
    deadratio: int = Field(default=DEFAULT_DEADRATIO, ge=1, le=255, strict=True)
    """CARP only: a BACKUP takes over after deadratio x advbase + advskew/256 seconds
    without an advert. 1 is accepted with a warning: it flaps."""
    neutral: StrictBool = False
    """No ``down`` hook on the first INIT -> BACKUP at start."""
    groups: tuple[GroupName, ...] = ()
    """Interface groups (OpenBSD) this vhid is in, besides ``carp``, which every vhid is in:
    ``carpctl group NAME carpdemote N`` demotes a group's vhids together, and [[action]] and
    [[follow]] can follow a group."""
    # Set by a [[pool]] for each of its vhids: which share of the address it carries.
    pool: PoolRef | None = Field(default=None, description=INTERNAL)

    @field_validator("pool", mode="before")
    @classmethod
    def _pool_is_set_by_a_pool(cls, value: object) -> object:
        if value is not None and not isinstance(value, PoolRef):
            raise PydanticCustomError("internal_key", "unknown key")
        return value

    # Set by the ucarp command line for each -a given without a prefix: it takes the prefix
    # of the carpdev's subnet that holds it, looked up when the vhid starts
    # (carpd.daemon.subnets); until then it is /32 or /128.
    prefix_from_carpdev: tuple[IPAddr, ...] = Field(default=(), description=INTERNAL)

    @field_validator("prefix_from_carpdev", mode="before")
    @classmethod
    def _set_by_the_command_line(cls, value: object) -> object:
        by = {"by": "the ucarp command line sets it for an -a without a prefix"}
        raise PydanticCustomError("internal_key", "unknown key", by)

    @property
    def all_groups(self) -> tuple[str, ...]:
        return ("carp", *(g for g in self.groups if g != "carp"))

    @property
    def password(self) -> bytes:
        """The password bytes (b"" for none, like a BSD vhid without ``pass``)."""
        if self.passfile is not None:
            return self.passfile.secret.get_secret_value()
        return self.pass_.get_secret_value() if self.pass_ is not None else b""

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and "name" not in data:
            vhid = data.get("vhid")
            data = {**data, "name": f"carp{vhid}" if type(vhid) is int else "carp"}
        return data

    @property
    def interval_cs(self) -> int:
        """VRRPv3's advertisement interval in centiseconds."""
        return round(self.advbase * 100)

    @model_validator(mode="after")
    def _one_password(self) -> CarpConfig:
        if self.protocol == "vrrp3":
            return self
        if (self.pass_ is None) == (self.passfile is None):
            found = "neither" if self.pass_ is None else "both"
            raise PydanticCustomError("password_source", "{found}", {"found": found})
        return self

    @model_validator(mode="after")
    def _protocol_settings(self) -> CarpConfig:
        found = []
        given = self.model_fields_set
        if self.protocol == "carp":
            if isinstance(self.advbase, float) or not 1 <= self.advbase <= 255:
                found.append(
                    Conflict(
                        ("advbase",),
                        self.advbase,
                        "allowed range is 1-255 (whole seconds) for CARP",
                    )
                )
            for key in ("priority", "accept"):
                if key in given:
                    found.append(
                        Conflict(
                            (key,),
                            getattr(self, key),
                            'only for protocol = "vrrp3" (CARP uses advskew)',
                        )
                    )
        else:
            cs = self.advbase * 100
            if not (1 <= round(cs) <= 4095 and abs(cs - round(cs)) < 1e-6):
                found.append(
                    Conflict(
                        ("advbase",),
                        self.advbase,
                        "allowed range is 0.01-40.95 seconds, in steps of 0.01, for VRRPv3",
                    )
                )
            for key in (
                "pass",
                "passfile",
                "advskew",
                "replay_protection",
                "tiebreak",
                "deadratio",
                "hmac_variant",
            ):
                if key in given or (key == "pass" and "pass_" in given):
                    found.append(
                        Conflict(
                            (key,),
                            "<hidden>" if "pass" in key else getattr(self, key),
                            'not for protocol = "vrrp3" (VRRPv3 has no '
                            "authentication; it uses priority)",
                        )
                    )
        if self.srcip is not None and any(a.ip == self.srcip for a in self.addresses):
            # The addresses go on leaving MASTER, in whatever prefix they are found.
            msg = "is also in {other}: the node's own address cannot be a virtual one"
            found.append(Conflict(("srcip",), str(self.srcip), msg, ("addresses",)))
        if self.peers_routed and not self.peers:
            msg = "only with unicast {other}: multicast adverts never cross a router"
            found.append(Conflict(("peers_routed",), True, msg, ("peers",)))
        families = {a.version for a in self.addresses}
        if self.peers:
            for fam in sorted(families - {p.version for p in self.peers}):
                found.append(
                    Conflict(
                        ("peers",),
                        [str(p) for p in self.peers],
                        f"no IPv{fam} peer for the IPv{fam} addresses",
                    )
                )
        if found:
            raise conflicts(*found)
        return self

    @field_validator("addresses")
    @classmethod
    def _distinct(cls, addresses: tuple[Interface, ...]) -> tuple[Interface, ...]:
        seen: dict[object, int] = {}
        found = []
        for i, a in enumerate(addresses):
            if a.ip in seen:
                msg = f"{a.ip} is listed twice (also {{other}})"
                found.append(Conflict((i,), str(a), msg, (seen[a.ip],)))
            elif a.ip.is_multicast or a.ip.is_unspecified or a.ip == _BROADCAST:
                found.append(Conflict((i,), str(a), "not a unicast address"))
            seen.setdefault(a.ip, i)
        if found:
            raise conflicts(*found)
        return addresses


class ConntrackdConfig(_Frozen):
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
    """Seconds the commit may hold the addresses back on becoming MASTER; then they go up
    anyway and the commit finishes on its own."""
    command_timeout: float = Field(default=10.0, gt=0, le=120, strict=True, allow_inf_nan=False)
    """Seconds any other conntrackd command (-f, -R, -B, -t, -n, -s) may take."""
    demotion_factor: int = Field(default=240, ge=0, le=1 << 24, strict=True)
    """Demotion while the bulk resync is not done, conntrackd does not answer, or the sync
    link is down."""
    bulk_timeout: float = Field(default=60.0, gt=0, le=3600, strict=True, allow_inf_nan=False)
    """Seconds to wait for the peer's table (after start-up, a restart of conntrackd, the
    sync link coming back); then it counts as done, as in pfsync, so a dead peer cannot keep
    the node demoted."""
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


class RouteConfig(_Frozen):
    """The ``[route]`` table: while MASTER of a vhid, its addresses are also host
    addresses (/32, /128) on a dummy device, for a BGP daemon to announce."""

    enabled: StrictBool = False
    """While MASTER of a vhid, its addresses are also host addresses (/32, /128) on
    ``device``, for a BGP daemon to announce."""
    device: IfName = "carpd0"
    """A dummy device, made and brought up if missing; "lo" where the kernel has no dummy
    driver."""
    timeout: float = Field(default=2.0, gt=0, le=60, strict=True, allow_inf_nan=False)
    """Seconds withdrawing the routes may hold back the removal of the addresses."""


Phase = Literal["master", "backup", "pre-release"]


def _exactly_one(a: object, b: object, keys: tuple[str, str]) -> None:
    if (a is None) == (b is None):
        found = "neither" if a is None else "both"
        raise PydanticCustomError("one_of", "{found}", {"found": found, "keys": keys})


class Follows(_Frozen):
    """What a role-following table follows: one vhid (by its [[carp]] name) or an
    interface group, which is MASTER while every vhid in it is MASTER."""

    vhid: Name | None = None
    """The [[carp]], by its name, that this follows; exactly one of ``vhid`` and ``group``.
    """
    group: GroupName | None = None
    """The interface group that this follows: MASTER while every vhid in it is MASTER
    (keepalived's vrrp_sync_group)."""

    @model_validator(mode="after")
    def _one_target(self) -> Follows:
        _exactly_one(self.vhid, self.group, ("vhid", "group"))
        return self

    @property
    def target(self) -> str:
        """The name actions and status use: "carp1", or "group carp"."""
        return self.vhid if self.vhid is not None else f"group {self.group}"


class ActionConfig(Follows):
    """An ``[[action]]`` table: a program run on a transition of a vhid or group, in that
    target's queue, in transition order, killed at ``timeout``."""

    name: Name
    """A name for logs, status and events, unique among the [[action]] tables."""
    on: tuple[Phase, ...] = Field(min_length=1)
    """The phases it runs in: ``master`` (on becoming MASTER, after the addresses are up),
    ``backup`` (on leaving MASTER, after the addresses are gone, and once at start),
    ``pre-release`` (on leaving MASTER, before the addresses are removed)."""
    run: tuple[Annotated[str, Field(min_length=1)], ...] | None = Field(default=None, min_length=1)
    """The program and its arguments, run without a shell; exactly one of ``run`` and
    ``shell``."""
    shell: Annotated[str, Field(min_length=1)] | None = None
    """A command line for /bin/sh -c, instead of ``run``."""
    timeout: float = Field(default=30.0, gt=0, le=3600, strict=True, allow_inf_nan=False)
    """Seconds it may run; then it is killed with its process group."""

    @model_validator(mode="after")
    def _one_command(self) -> ActionConfig:
        _exactly_one(self.run, self.shell, ("run", "shell"))
        return self

    @property
    def argv(self) -> tuple[str, ...]:
        return self.run if self.run is not None else ("/bin/sh", "-c", self.shell or "")


MacAddress = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")]


class FollowConfig(Follows):
    """A ``[[follow]]`` table: an interface up only while its vhid or group is MASTER
    ("the DHCP problem"): on MASTER link up and a DHCP client on it; on BACKUP and at
    stop the client stopped, its addresses and routes flushed, link down."""

    interface: IfName
    """The interface that follows the role: up with a DHCP client on it while the vhid or
    group is MASTER; otherwise down, its addresses and routes flushed (the DHCP problem)."""
    mac: MacAddress | None = Field(default=None, description="a MAC address like 02:00:00:00:00:01")
    """A MAC address set on the interface while its link is down: the same on every node, so
    that the ISP's DHCP server leases them the same address."""
    dhcp: Literal["udhcpc", "dhclient", "none"] = "udhcpc"
    """The DHCP client run on it while MASTER (``dhclient``: Debian's isc-dhcp-client), or
    ``none``."""
    release: StrictBool = True
    """Release the lease when leaving MASTER."""
    backup_gateway: AddressValue | None = None
    """While not MASTER: a default route through this address (the peer), so the node still
    reaches the Internet."""
    timeout: float = Field(default=10.0, gt=0, le=300, strict=True, allow_inf_nan=False)
    """Seconds each step (the link, the DHCP client) may take."""


def _ifstated_file(value: object, info: ValidationInfo) -> object:
    """The file must read and parse (line and column in the message), before the
    network is touched; the daemon parses it again when it starts it."""
    path = _resolve_path(value, info)
    if not isinstance(path, Path):
        return path
    try:
        text = path.read_text()
    except OSError as e:
        reason = {"reason": e.strerror or str(e)}
        raise PydanticCustomError("file_unreadable", "cannot read it: {reason}", reason) from None
    if (why := missing("ifstated")) is not None:
        raise PydanticCustomError("missing_extra", "{why}", {"why": why})
    from carpd.ifstated import IfstatedError, parse  # lark: only for a config that has one

    defines = (info.data or {}).get("defines") or {}
    try:
        parse(text, str(path), defines)
    except IfstatedError as e:
        raise PydanticCustomError("ifstated", "{error}", {"error": str(e)}) from None
    return path


class IfstatedConfig(_Frozen):
    """The ``[ifstated]`` table: an OpenBSD ifstated.conf run by carpd, with vhids as
    interfaces (``lan.link.up``: MASTER, ``.down``: BACKUP, ``.unknown``: INIT)."""

    # Before file: the file is parsed with them (ifstated -D macro=value).
    defines: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], str] = {}
    """Macros for the file, as ifstated -D name=value."""
    file: Annotated[Path, BeforeValidator(_ifstated_file)] | None = None
    """An OpenBSD ifstated.conf(5) run by carpd. A vhid is an interface by its [[carp]]
    name: ``name.link.up`` while MASTER, ``.down`` while BACKUP, ``.unknown`` in INIT. It is
    parsed when the configuration is loaded, and read again on SIGHUP."""
    timeout: float = Field(default=30.0, gt=0, le=3600, strict=True, allow_inf_nan=False)
    """Seconds a ``run`` command, or an external test's command, may run; then it is killed.
    """


class SyncFile(_Frozen):
    """A ``[[sync.files]]`` entry: a file, or a directory and everything under it."""

    path: PathSetting
    """A file, or a directory and everything under it."""
    exclude: tuple[str, ...] = ()
    """Glob patterns of paths under a directory to leave out."""
    check: tuple[str, ...] | None = Field(default=None, min_length=1)
    """A command run on the peer before the new version replaces the old one (``{new}``: the
    new version, beside the old one; ``{path}``: the file); an exit other than 0 refuses the
    push."""
    after: tuple[str, ...] | None = Field(default=None, min_length=1)
    """A command run on the peer after the push, e.g. a reload."""
    secret: StrictBool = False
    """Never show its contents (diff, journal, log): only that it changed."""


class SyncConfig(_Frozen):
    """The ``[sync]`` table: ``carpctl sync`` keeps files the same on the peer, over the
    system's OpenSSH (its keys, known_hosts and agent)."""

    peer: str | None = Field(default=None, min_length=1, pattern=r"^[^\s-][^\s]*$")
    """The other node, as ssh names it (``root@fw2``); usually in the overlay."""
    ssh: tuple[str, ...] = Field(default=("ssh",), min_length=1)
    """The ssh command and its options."""
    remote: str = "carpctl"
    """The carpctl command on the peer."""
    timeout: float = Field(default=10.0, gt=0, le=600, strict=True, allow_inf_nan=False)
    """Seconds for ssh's connection and for each answer (the first: twice that); then the
    peer counts as unreachable."""
    files: tuple[SyncFile, ...] = ()
    """The files to keep the same, one [[sync.files]] table each."""


def _node(value: object) -> tuple[int, int]:
    """OpenBSD's carpnodes word: "vhid:advskew"."""
    if isinstance(value, str):
        vhid, sep, skew = value.partition(":")
        if sep and vhid.isdigit() and skew.isdigit():
            v, k = int(vhid), int(skew)
            if 1 <= v <= 255 and 0 <= k <= 254:
                return v, k
    raise PydanticCustomError(
        "carpnode", 'not "vhid:advskew" (vhid 1-255, advskew 0-254), e.g. "1:0"'
    )


class PoolConfig(_Frozen):
    """A ``[[pool]]`` table: one address carried by several vhids, each node MASTER of
    some of them (OpenBSD ``carpnodes 1:0,2:100 balancing ip``). Every node receives
    every frame for the address (a multicast MAC) and keeps the flows whose source hashes
    into the buckets of the vhids it is MASTER of."""

    name: Annotated[
        str,
        Field(
            min_length=1,
            max_length=11,
            pattern=r"^[A-Za-z0-9_.]+$",
            description="a pool name of 1-11 characters: letters, digits, '.' and '_'",
        ),
    ]
    """The pool's name, 1-11 characters: letters, digits, ``.`` and ``_`` (it names nftables
    tables); its vhids are named ``<name>-<vhid>``."""
    carpdev: IfName
    """The interface the pool's address is on."""
    address: AddressSetting
    """The shared address, IPv4 "address/prefix"."""
    mode: Literal["ip", "arp"] = "ip"
    """``ip``: every node gets every frame for the address (a multicast MAC) and keeps the
    flows whose source address hashes into its vhids' buckets (OpenBSD balancing ip);
    ``arp``: each client is answered with one vhid's MAC (NetBSD's arpbalance)."""
    # 2-32 (OpenBSD's CARP_MAXNODES): checked below, with the words' own errors first.
    nodes: tuple[Annotated[tuple[int, int], PlainValidator(_node)], ...]
    """The pool's vhids with this node's advskew for each, "vhid:advskew": 2-32 of them. A
    vhid's MASTER is the node with its lowest advskew."""
    pass_: SecretBytes | None = Field(
        default=None, alias="pass", max_length=MAX_PASSWORD_LEN, repr=False
    )
    """The password of the pool's vhids, as in [[carp]]."""
    passfile: PassFileField | None = None
    """As in [[carp]], instead of ``pass``."""
    advbase: int = Field(default=1, ge=1, le=255, strict=True)
    """Seconds between each vhid's adverts."""
    seed: int = Field(default=0, ge=0, le=0xFFFFFFFF, strict=True)
    """The hash's seed: the same on every node."""

    @model_validator(mode="after")
    def _checks(self) -> PoolConfig:
        if (self.pass_ is None) == (self.passfile is None):
            which = "neither" if self.pass_ is None else "both"
            raise PydanticCustomError("password_source", "{found}", {"found": which})
        found: list[Conflict] = []
        if self.address.version != 4:
            msg = "a pool's address is IPv4 (IPv6 pools: not yet)"
            found.append(Conflict(("address",), str(self.address), msg))
        vhids = [v for v, _ in self.nodes]
        if not 2 <= len(vhids) <= 32:
            found.append(Conflict(("nodes",), len(vhids), "a pool has 2 to 32 vhids"))
        elif len(set(vhids)) != len(vhids):
            dup = next(v for v in vhids if vhids.count(v) > 1)
            found.append(Conflict(("nodes",), dup, "each vhid once in nodes"))
        if found:
            raise conflicts(*found)
        return self

    def vhids(self) -> list[dict[str, Any]]:
        """Its vhids as [[carp]] tables: preempt on, so a node back takes its share back."""
        mac = f"01:00:5e:00:01:{self.nodes[0][0]:02x}"  # OpenBSD: the leader's, multicast
        out = []
        for i, (vhid, skew) in enumerate(self.nodes):
            ref = PoolRef(
                name=self.name, index=i, count=len(self.nodes), mode=self.mode,
                seed=self.seed, address=self.address, mac=mac,
            )  # fmt: skip
            table: dict[str, Any] = {
                "name": f"{self.name}-{vhid}", "vhid": vhid, "carpdev": self.carpdev,
                "advbase": self.advbase, "advskew": skew, "addresses": (self.address,),
                "preempt": True, "pool": ref,
                # arp: each vhid's own MAC, on a macvlan of its name, adverts from it
                "vmac": self.mode == "arp",
            }  # fmt: skip
            if self.passfile is not None:
                table["passfile"] = self.passfile
            else:
                table["pass"] = self.pass_
            out.append(table)
        return out


def _one_or_more(value: object) -> object:
    """``listen = "192.0.2.1"`` is ``listen = ["192.0.2.1"]``."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return value
    raise PydanticCustomError("one_or_more", "not an address or an array of addresses")


class WebConfig(_Frozen):
    """The ``[web]`` table: the status page, /api/status and /metrics, served by carpd."""

    enabled: StrictBool = False
    """Serve the status page, /api/status and /metrics (needs carpd[web]). A reload
    applies a change of [web] without a restart; one that cannot start (a port taken, a
    TLS file that does not load) refuses the reload and the running page stays."""
    listen: Annotated[
        tuple[AddressValue, ...], BeforeValidator(_one_or_more), Field(min_length=1)
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
    def _consistent(self) -> WebConfig:
        found = []
        if (self.tls_cert is None) != (self.tls_key is None):
            key, other = ("tls_cert", "tls_key") if self.tls_cert else ("tls_key", "tls_cert")
            found.append(Conflict((key,), str(getattr(self, key)), "needs {other}", (other,)))
        if self.enabled and (why := missing("web")) is not None:
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


class ConfigFile(_Frozen):
    """A whole document: what a TOML file (or a ucarp command line) says."""

    global_: GlobalConfig = Field(default=GlobalConfig(), alias="global")
    conntrackd: ConntrackdConfig = ConntrackdConfig()
    web: WebConfig = WebConfig()
    route: RouteConfig = RouteConfig()
    ifstated: IfstatedConfig = IfstatedConfig()
    sync: SyncConfig = SyncConfig()
    carp: tuple[CarpConfig, ...] = ()
    pool: tuple[PoolConfig, ...] = ()
    action: tuple[ActionConfig, ...] = ()
    follow: tuple[FollowConfig, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _inherit_preempt(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        g = data.get("global")
        preempt = g.get("preempt", False) if isinstance(g, dict) else False
        tables = data.get("carp")
        if type(preempt) is bool and isinstance(tables, list | tuple):
            # VRRPv3 preempts by default (RFC 5798 Preempt_Mode); CARP as [global] says.
            tables = [
                {"preempt": True if t.get("protocol") == "vrrp3" else preempt, **t}
                if isinstance(t, dict)
                else t
                for t in tables
            ]
            data = {**data, "carp": tables}
        return data

    @model_validator(mode="after")
    def _cross_check(self) -> ConfigFile:
        if not self.carp and not self.pool:
            raise PydanticCustomError("nothing_to_run", "no [[carp]] and no [[pool]]")
        found = []
        by_vhid: dict[tuple[str, int], int] = {}
        by_name: dict[str, int] = {}
        for i, c in enumerate(self.carp):
            j = by_vhid.setdefault((c.carpdev, c.vhid), i)
            if j != i:
                msg = f"duplicate vhid {c.vhid} on carpdev {c.carpdev} (also {{other}})"
                found.append(Conflict(("carp", i, "vhid"), c.vhid, msg, ("carp", j)))
                continue
            j = by_name.setdefault(c.name, i)
            if j != i:
                msg = "duplicate name (also {other})"
                if c.name == f"carp{c.vhid}":
                    msg += "; the name defaults to carp<vhid>: set a distinct name"
                found.append(Conflict(("carp", i, "name"), c.name, msg, ("carp", j)))
        found += self._check_pools(by_vhid)
        found += self._check_targets()
        if found:
            raise conflicts(*found)
        return self

    def _check_pools(self, taken: dict[tuple[str, int], int]) -> list[Conflict]:
        """A pool's vhids are vhids too: none may be a [[carp]]'s or another pool's."""
        found = []
        pools: dict[tuple[str, int], int] = {}
        for i, p in enumerate(self.pool):
            for vhid, _ in p.nodes:
                j = taken.get((p.carpdev, vhid))
                if j is not None and self.carp[j].pool is None:  # Config: its own are there
                    msg = f"vhid {vhid} on carpdev {p.carpdev} is also in {{other}}"
                    found.append(Conflict(("pool", i, "nodes"), vhid, msg, ("carp", j)))
                k = pools.setdefault((p.carpdev, vhid), i)
                if k != i:
                    msg = f"vhid {vhid} on carpdev {p.carpdev} is also in {{other}}"
                    found.append(Conflict(("pool", i, "nodes"), vhid, msg, ("pool", k)))
        return found

    def _check_targets(self) -> list[Conflict]:
        """[[action]] and [[follow]] name vhids and groups that exist, and no interface
        follows twice or is a carpdev."""
        found = []
        names = {c.name for c in self.carp}
        groups = {g for c in self.carp for g in c.all_groups}
        tables: list[tuple[str, int, Follows]] = [
            ("action", i, a) for i, a in enumerate(self.action)
        ]
        tables += [("follow", i, f) for i, f in enumerate(self.follow)]
        for table, i, t in tables:
            if t.vhid is not None and t.vhid not in names:
                found.append(Conflict((table, i, "vhid"), t.vhid, "no [[carp]] has this name"))
            if t.group is not None and t.group not in groups:
                found.append(Conflict((table, i, "group"), t.group, "no [[carp]] is in this group"))
        seen: dict[str, int] = {}
        for i, a in enumerate(self.action):
            j = seen.setdefault(a.name, i)
            if j != i:
                found.append(
                    Conflict(
                        ("action", i, "name"),
                        a.name,
                        "duplicate name (also {other})",
                        ("action", j),
                    )
                )
        carpdevs = {c.carpdev for c in self.carp}
        followed: dict[str, int] = {}
        for i, f in enumerate(self.follow):
            j = followed.setdefault(f.interface, i)
            if j != i:
                msg = "this interface already follows a role (also {other})"
                found.append(Conflict(("follow", i, "interface"), f.interface, msg, ("follow", j)))
            elif f.interface in carpdevs:
                msg = "a carpdev cannot follow a role: its link carries the adverts"
                found.append(Conflict(("follow", i, "interface"), f.interface, msg))
        return found


class Config(ConfigFile):
    """The configuration the daemon runs with; ``source`` is the file or "command line"."""

    source: str
