"""Tables that act on the role of a vhid or an interface group: ``[[action]]`` runs a
program on a transition, ``[[follow]]`` keeps an interface up only while MASTER."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from carpd.config.values import (
    AddressValue,
    Frozen,
    GroupName,
    IfName,
    MacAddress,
    Name,
    StrictBool,
    exactly_one,
)

Phase = Literal["master", "backup", "pre-release"]


class Follows(Frozen):
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
        exactly_one(self.vhid, self.group, ("vhid", "group"))
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
        exactly_one(self.run, self.shell, ("run", "shell"))
        return self

    @property
    def argv(self) -> tuple[str, ...]:
        return self.run if self.run is not None else ("/bin/sh", "-c", self.shell or "")


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
