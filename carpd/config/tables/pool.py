"""The ``[[pool]]`` table: one address shared by several vhids (OpenBSD's carpnodes),
and the place of each of its vhids in it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PlainValidator, SecretBytes, model_validator
from pydantic_core import PydanticCustomError

from carpd.config.files import PassFileField
from carpd.config.values import AddressSetting, Conflict, Frozen, IfName, conflicts
from carpd.core.auth import MAX_PASSWORD_LEN


class PoolRef(Frozen):
    """A [[pool]] vhid's place in its pool (set by the pool, not written by hand)."""

    name: str
    index: int  # its bucket: the flows whose hash is this go to its MASTER
    count: int
    mode: Literal["ip", "arp"]
    seed: int
    address: AddressSetting
    mac: str  # the pool's multicast MAC, in every node's ARP replies


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


class PoolConfig(Frozen):
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
