"""[[pool]]s (issue 15): one address, several vhids, each node MASTER of some of them,
each vhid a bucket of the clients.

``ip`` mode (OpenBSD ``balancing ip``). While carpd runs, the address is on the carpdev
of every node of the pool, and every node receives every frame for it: the node's ARP
replies for the address carry the pool's multicast MAC (``01:00:5e:00:01:<first
vhid>``, OpenBSD's), which switches flood, and the carpdev listens to that MAC. An
nftables table of the pool's keeps, of the frames sent to the multicast MAC, those whose
source hashes (``jhash ip saddr mod <vhids> seed <seed>``, the same on every node) into
a bucket whose vhid this node is MASTER of, marks them as unicast for the stack (``meta
pkttype set host``; TCP drops anything else) and drops the rest. A transition changes
only the bucket map, in one ``nft -f`` transaction: losing a node moves only its
buckets. The vhids' own address steps are this effect's: the host lane skips them.

``arp`` mode (NetBSD's ``arpbalance``). Each vhid has its own MAC on a macvlan of its
name (``vmac``: up, with the address, only on its MASTER; the adverts go out from it, so
the switch learns where the MAC went at a failover), and a client's ARP request for the
address is answered only on the macvlan of the bucket its address hashes to (an nft
``arp`` input rule per macvlan). A client keeps the MAC it was given: the MAC moves
with its vhid. The grain is the ARP requester: everything behind one router lands in
one bucket.

In both modes the host lane sends no gratuitous ARP for a pool's vhid: it would move
every client, not one bucket's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from carpd.config.model import CarpConfig, Config, PoolRef
from carpd.core.actions import AddAddresses, Announce, RemoveAddresses
from carpd.daemon.seam.lanes import HostAction, HostWork, Step
from carpd.daemon.seam.view import VhidView
from carpd.linux import nft, process, sysctl
from carpd.linux.netlink import Netlink

log = logging.getLogger("carpd")

NFT_DEADLINE = nft.NFT_TIMEOUT + 1.0  # its own timeout is the bound


def table(pool: PoolRef) -> str:
    return f"carpd_pool_{pool.name}"


def ruleset(pool: PoolRef, mine: frozenset[int]) -> str:
    """ip mode: the pool's tables, replacing the old ones in the same transaction."""
    name, vip = table(pool), pool.address.ip
    verdicts = ", ".join(f"{i} : {'jump keep' if i in mine else 'drop'}" for i in range(pool.count))
    return f"""{_fresh("ip", name)}{_fresh("arp", name)}table ip {name} {{
    chain prerouting {{
        type filter hook prerouting priority mangle; policy accept;
        ip daddr {vip} meta pkttype multicast jhash ip saddr mod {pool.count} seed {pool.seed:#x} vmap {{ {verdicts} }}
    }}
    chain keep {{
        meta pkttype set host
    }}
}}
table arp {name} {{
    chain output {{
        type filter hook output priority filter; policy accept;
        arp saddr ip {vip} arp saddr ether set {pool.mac}
    }}
}}
"""  # noqa: E501


def arp_ruleset(pool: PoolRef, names: dict[int, str]) -> str:
    """arp mode: a request for the address that reaches vhid i's macvlan (up only on its
    MASTER) is answered there only if the requester's address hashes to bucket i."""
    name, vip = table(pool), pool.address.ip
    rules = "".join(
        f'        iifname "{names[i]}" arp operation request arp daddr ip {vip} '
        f"jhash arp saddr ip mod {pool.count} seed {pool.seed:#x} != {i} drop\n"
        for i in range(pool.count)
    )
    return f"""{_fresh("arp", name)}table arp {name} {{
    chain input {{
        type filter hook input priority filter; policy accept;
{rules}    }}
}}
"""


def _fresh(family: str, name: str) -> str:
    """Make the table if missing, then delete it: the script starts from nothing."""
    return f"table {family} {name} {{}}\ndelete table {family} {name}\n"


@dataclass
class PoolState:
    ref: PoolRef
    carpdev: str
    names: dict[int, str]  # bucket -> its vhid's name
    mine: set[int] = field(default_factory=set)  # buckets whose vhid is MASTER here
    up: bool = False  # the address, the MAC and the tables are in place
    saved: dict[str, str] = field(default_factory=dict)  # sysctls before us

    def report(self) -> PoolReport:
        return PoolReport(
            name=self.ref.name,
            address=str(self.ref.address),
            mode=self.ref.mode,
            mac=self.ref.mac if self.ref.mode == "ip" else "each vhid's",
            carpdev=self.carpdev,
            buckets=self.ref.count,
            serving=tuple((i, self.names[i]) for i in sorted(self.mine)),
        )


@dataclass(frozen=True, slots=True)
class PoolReport:
    """For status: which of a pool's buckets this node serves."""

    name: str
    address: str
    mode: str
    mac: str
    carpdev: str
    buckets: int
    serving: tuple[tuple[int, str], ...]  # (bucket, its vhid's name), MASTER here

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "mode": self.mode,
            "mac": self.mac,
            "carpdev": self.carpdev,
            "buckets": self.buckets,
            "serving": [b for b, _ in self.serving],
            "vhids": [v for _, v in self.serving],
        }

    def line(self) -> str:
        serving = ", ".join(f"{b} ({v})" for b, v in self.serving)
        return (
            f"pool {self.name}: {self.address} on {self.carpdev}, balancing {self.mode} "
            f"({self.mac}): serving {len(self.serving)} of {self.buckets} buckets"
            f"{': ' + serving if serving else ''}"
        )


@dataclass(frozen=True, slots=True)
class PoolsReport:
    """Every [[pool]], by name."""

    pools: tuple[PoolReport, ...]

    def to_json(self) -> dict[str, Any]:
        return {p.name: p.to_json() for p in self.pools}

    def lines(self) -> list[str]:
        return [p.line() for p in self.pools]


class Pools:
    name = "pools"  # its key in status

    def __init__(self, config: Config, netlink: Netlink) -> None:
        self.netlink = netlink
        self.pools: dict[str, PoolState] = {}
        for c in config.carp:
            if c.pool is not None:
                state = self.pools.setdefault(c.pool.name, PoolState(c.pool, c.carpdev, {}))
                state.names[c.pool.index] = c.name
        self._lock = asyncio.Lock()  # one nft transaction at a time, in order

    def same(self, config: Config) -> bool:
        refs = {(c.pool, c.carpdev) for c in config.carp if c.pool is not None}
        return refs == {(p.ref, p.carpdev) for p in self.pools.values()}

    def claims(self, action: HostAction, vhid: VhidView) -> bool:
        """A pool's vhid sends no gratuitous ARP (it would move every client, not one
        bucket's); in ip mode its address is the pool's (a bucket rule, not netlink), in
        arp mode the vhid's own (its macvlan)."""
        ref = vhid.cfg.pool
        return ref is not None and (ref.mode == "ip" or isinstance(action, Announce))

    def before(self, work: HostWork, vhid: VhidView) -> Sequence[Step]:
        return ()

    def after(self, work: HostWork, vhid: VhidView) -> Sequence[Step]:
        ref, action = vhid.cfg.pool, work.action
        if ref is None or not isinstance(action, AddAddresses | RemoveAddresses):
            return ()
        state = self.pools[ref.name]
        if isinstance(action, AddAddresses):
            state.mine.add(ref.index)
        else:
            state.mine.discard(ref.index)
        run = functools.partial(self._apply, state, vhid.cfg)
        return (Step("pool buckets", run, NFT_DEADLINE, chain="pool"),)

    async def _apply(self, state: PoolState, cfg: CarpConfig) -> None:
        """The buckets as they are now (vhids' lanes run side by side: whichever step
        runs last applies the latest map)."""
        async with self._lock:
            mine = frozenset(state.mine)
            if state.ref.mode == "arp":  # the macvlans come and go with their vhids
                if not state.up:
                    await nft.apply(arp_ruleset(state.ref, state.names))
                    state.up = True
            else:
                if not state.up:
                    await self._set_up(state)
                await nft.apply(ruleset(state.ref, mine))
        log.info(
            "%s: pool %s: serving buckets [%s] of %d",
            cfg.name,
            state.ref.name,
            ", ".join(str(i) for i in sorted(mine)),
            state.ref.count,
        )

    async def _set_up(self, state: PoolState) -> None:
        """The address on the carpdev, its multicast MAC listened to, and our ARP
        requests from our own address (else a client would learn the address at our
        real MAC)."""
        link = await self.netlink.link(state.carpdev)
        if link is None:
            raise RuntimeError(f"pool {state.ref.name}: no interface {state.carpdev}")
        await self.netlink.add_address(link.index, state.ref.address)
        await _ip("maddr", "add", state.ref.mac, "dev", state.carpdev)
        state.saved["arp_announce"] = sysctl.write("ipv4", state.carpdev, "arp_announce", "2")
        state.up = True

    async def close(self) -> None:
        for state in self.pools.values():
            if not state.up:
                continue
            state.up = False
            name = table(state.ref)
            with contextlib.suppress(nft.NftError):
                await nft.apply(_fresh("ip", name) + _fresh("arp", name))
            if state.ref.mode == "arp":
                continue  # no address, MAC or sysctl of ours on the carpdev
            with contextlib.suppress(Exception):
                link = await self.netlink.link(state.carpdev)
                if link is not None:
                    await self.netlink.remove_address(link.index, state.ref.address)
            with contextlib.suppress(Exception):
                await _ip("maddr", "del", state.ref.mac, "dev", state.carpdev)
            for key, value in state.saved.items():
                with contextlib.suppress(OSError):
                    sysctl.write("ipv4", state.carpdev, key, value)

    def report(self) -> PoolsReport | None:
        if not self.pools:
            return None
        return PoolsReport(tuple(p.report() for p in self.pools.values()))


async def _ip(*args: str) -> None:
    """iproute2 for what rtnetlink has no message for (a link-layer multicast address).
    Done when ip exits, even if something it left running holds its stderr."""
    # ip answers in milliseconds unless the kernel is stuck; never wait on it for good.
    r = await process.run(["ip", *args], timeout=10.0, capture="stderr", lines=None)
    if not r.ok and "File exists" not in r.output:
        raise RuntimeError(f"ip {' '.join(args)}: {r.error or r.output.strip()}")
