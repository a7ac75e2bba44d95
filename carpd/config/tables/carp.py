"""The ``[[carp]]`` table: one vhid on a carpdev, and its checks of itself."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from pydantic import Field, SecretBytes, field_validator, model_validator
from pydantic_core import PydanticCustomError

from carpd.config.files import PassFileField
from carpd.config.tables.pool import PoolRef
from carpd.config.values import (
    INTERNAL,
    AddressSetting,
    AddressValue,
    Conflict,
    Frozen,
    GroupName,
    IfName,
    Interface,
    IPAddr,
    IPv4Value,
    Name,
    PathSetting,
    Protocol,
    StrictBool,
    conflicts,
)
from carpd.core.auth import MAX_PASSWORD_LEN, HmacVariant
from carpd.core.machine import Tiebreak
from carpd.core.timing import DEFAULT_DEADRATIO

_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


class CarpConfig(Frozen):
    """One ``[[carp]]`` table: a vhid on a carpdev.

    ``preempt`` and ``garp_refresh`` are resolved at load time: the table's own if it has
    one, otherwise ``[global]``'s. So ``==`` between two loads sees a change of the global
    default too.

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
    garp_refresh: float = Field(default=0, ge=0, le=86400, strict=True, allow_inf_nan=False)
    """While MASTER, announce the addresses again every this many seconds (0: off); the
    default is ``[global] garp_refresh``."""
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
    # (carpd.daemon.runtime.subnets); until then it is /32 or /128.
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
