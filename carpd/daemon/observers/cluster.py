"""The other nodes, read in the background: each [[cluster.peer]]'s status every
``interval`` seconds, each read bounded by ``timeout``, in a task of its own, so a peer
that is slow, silent or hostile never holds up anything in carpd's loop. What was last
read is the ``cluster`` report; the verdict across the nodes is carpd.cluster.verdict's,
made by whoever reads it (carpctl, the page). aiohttp (carpd[web]) only with peers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from carpd.config.model import ClusterConfig, Config
from carpd.daemon.seam.integration import Sample

if TYPE_CHECKING:
    from carpd.cluster.client import PeerClient, Seen

log = logging.getLogger("carpd")


@dataclass(frozen=True, slots=True)
class ClusterReport:
    interval: float
    peers: tuple[Seen, ...]

    def to_json(self) -> dict[str, Any]:
        return {"interval": self.interval, "peers": [p.to_json() for p in self.peers]}

    def lines(self) -> list[str]:
        out = []
        for p in self.peers:
            if p.status is None:
                out.append(f"cluster: {p.name} not answering: {p.error}")
            else:
                states = ", ".join(f"{v.name} {v.state}" for v in p.status.vhosts)
                out.append(f"cluster: {p.name} answering: {states}")
        return out

    def samples(self) -> Iterator[Sample]:
        for p in self.peers:
            labels = (("peer", p.name),)
            yield Sample("carpd_cluster_peer_up", "1 while the peer's status answers",
                         "gauge", int(p.status is not None), labels)  # fmt: skip
            if p.skew is not None:
                yield Sample("carpd_cluster_peer_clock_skew_seconds",
                             "The peer's clock minus this node's (+-1 s)", "gauge", p.skew,
                             labels)  # fmt: skip
            for v in p.status.vhosts if p.status else ():
                yield Sample(
                    "carpd_cluster_peer_master",
                    "1 while the peer says it is MASTER of the vhid",
                    "gauge",
                    int(v.state == "MASTER"),
                    (("peer", p.name), ("name", v.name), ("vhid", str(v.vhid))),
                )


class Cluster:
    name = "cluster"  # its key in status

    def __init__(self) -> None:
        self.cfg = ClusterConfig()
        self.seen: dict[str, Seen] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._clients: list[PeerClient] = []

    def report(self) -> ClusterReport | None:
        if not self.cfg.peer:
            return None
        return ClusterReport(
            self.cfg.interval,
            tuple(self.seen[p.name] for p in self.cfg.peer if p.name in self.seen),
        )

    async def refresh(self) -> None:
        """Read every peer at once (a drill wants what is true now), each bounded by the
        timeout as always."""
        for seen in await asyncio.gather(*(c.status() for c in self._clients)):
            self.seen[seen.name] = seen

    async def reconfigure(self, config: Config) -> None:
        cfg = config.cluster
        if cfg == self.cfg:
            return
        await self.close()
        self.cfg, self.seen = cfg, {}
        if not cfg.peer:
            return
        from carpd.cluster.client import PeerClient

        self._clients = [PeerClient(p, cfg.timeout) for p in cfg.peer]
        self._tasks = [asyncio.create_task(self._watch(c)) for c in self._clients]

    async def _watch(self, client: PeerClient) -> None:
        name, was = client.peer.name, None
        while True:
            seen = await client.status()  # bounded by the timeout
            self.seen[name] = seen
            if seen.error != was:  # one line per change, not one per read
                if seen.error:
                    log.warning("cluster: %s not answering: %s", name, seen.error)
                elif was is not None:
                    log.warning("cluster: %s answers again", name)
                was = seen.error
            await asyncio.sleep(self.cfg.interval)

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for c in self._clients:
            await c.close()
        self._tasks, self._clients = [], []
