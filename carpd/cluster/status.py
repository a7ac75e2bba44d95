"""What the cluster view keeps of a node's status (its /api/status, or this node's own
`carpctl status --json`): a peer is not trusted, so its answer is validated into these
models (pydantic: wrong types refused, unknown keys ignored, sizes capped) and nothing
else of it is kept: no check output, no paths, no history."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Text = Annotated[str, Field(max_length=256)]
MAX_VHIDS = 1024
Count = Annotated[int, Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Commit(_Model):
    """The "conntrackd commit" host step of a vhid: how its takeovers committed."""

    runs: Count = 0
    failed: Count = 0
    last_error: Text | None = None


class VhidStatus(_Model):
    name: Text
    vhid: int = Field(ge=1, le=255)
    state: Text
    protocol: Text = "carp"
    advbase: float = Field(default=1, ge=0, le=255)
    advskew: int = Field(default=0, ge=0, le=255)
    advskew_sent: int = Field(default=0, ge=0, le=255)
    priority: int = Field(default=100, ge=0, le=255)
    priority_sent: int = Field(default=100, ge=0, le=255)
    demotion: int = 0
    preempt: bool = False
    enabled: bool = True
    link_up: bool | None = None
    addresses: tuple[Text, ...] = Field(default=(), max_length=1024)
    commit: Commit | None = None

    @classmethod
    def read(cls, data: Any) -> VhidStatus:
        """From a status's vhost entry: the commit from its host steps."""
        if not isinstance(data, dict) or "host_steps" not in data:
            return cls.model_validate(data)  # already this model's own shape
        found = None
        steps = data["host_steps"]
        for s in steps[:64] if isinstance(steps, list) else ():
            if isinstance(s, dict) and s.get("name") == "conntrackd commit":
                found = s
        return cls.model_validate({**data, "commit": found})

    @property
    def down_interval(self) -> float:
        """Its master-down interval: how long after the MASTER's last advert it takes
        over (CARP: 3 x advbase + advskew/256, as carpd and FreeBSD time it; VRRPv3:
        3 x interval + skew time, RFC 5798)."""
        if self.protocol == "vrrp3":
            return 3 * self.advbase + (256 - self.priority_sent) * self.advbase / 256
        # carpd's timer (core.timing): the configured advskew, not the demoted one sent
        # (and deadratio 3, the default).
        return 3 * self.advbase + self.advskew / 256

    def beats(self, other: VhidStatus) -> bool:
        """Would this node win the election against ``other``, as both advertise now?"""
        if self.protocol == "vrrp3":
            return self.priority_sent > other.priority_sent
        return (self.advbase, self.advskew_sent) < (other.advbase, other.advskew_sent)


class Services(_Model):
    healthy: bool = True
    failed: tuple[Text, ...] = Field(default=(), max_length=256)


class Stats(_Model):
    internal: Count | None = None
    external: Count | None = None


class StateSync(_Model):
    running: bool | None = None
    bulk: Text = "not started"
    stall: Text | None = None
    demoted_by: tuple[Text, ...] = Field(default=(), max_length=16)
    stats: Stats | None = None


class ConfigSync(_Model):
    checked: Text | None = None
    differ: tuple[Text, ...] = Field(default=(), max_length=4096)
    only_here: tuple[Text, ...] = Field(default=(), max_length=4096)
    only_peer: tuple[Text, ...] = Field(default=(), max_length=4096)
    error: Text | None = None

    @property
    def same(self) -> bool:
        return not (self.differ or self.only_here or self.only_peer or self.error)


class Kept(_Model):
    """The MASTER keeps its addresses (the ``addresses`` report): why not, if not."""

    demoted: Text | None = None


class NodeStatus(_Model):
    """One node as the cluster view sees it."""

    node: Text
    maintenance: bool = False
    demotion: dict[Text, int] = Field(default_factory=dict, max_length=64)
    services: Services | None = None
    vhosts: tuple[VhidStatus, ...] = Field(default=(), max_length=MAX_VHIDS)
    state_sync: StateSync | None = None
    config_sync: ConfigSync | None = None
    addresses: Kept | None = None

    @field_validator("vhosts", mode="before")
    @classmethod
    def _vhosts(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        if len(value) > MAX_VHIDS:  # before reading each: a hostile peer's 100,000
            raise ValueError(f"more than {MAX_VHIDS} vhids")
        return [VhidStatus.read(v) for v in value]

    @property
    def addresses_demoted(self) -> str | None:
        return self.addresses.demoted if self.addresses else None

    @property
    def demoted(self) -> int:
        return sum(self.demotion.values())

    def vhid(self, name: str) -> VhidStatus | None:
        return next((v for v in self.vhosts if v.name == name), None)


class Unreadable(Exception):
    """A status carpd cannot read: what was wrong, without the peer's values."""


def read(data: Any) -> NodeStatus:
    try:
        return NodeStatus.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        # Where, by this module's own names and positions only: a key of the peer's
        # (a demotion source) is its words, never repeated.
        where = ".".join(
            str(p) if isinstance(p, int) or p in _FIELDS else "?" for p in first["loc"]
        )
        raise Unreadable(f"{where or 'the answer'}: {first['msg']}") from None


_FIELDS = {
    name
    for model in (Commit, VhidStatus, Services, Stats, StateSync, ConfigSync, Kept, NodeStatus)
    for name in model.model_fields
}
