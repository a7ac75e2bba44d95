"""A carpdev's adverts in: the known peers' apart from everyone else's.

Each carpdev and family has two receiving sockets, split by the kernel (linux/bpf.py) on
the source address:

- **peers**: sources whose adverts have verified (and configured unicast peers). Read
  whenever there is something, with a queue sized for every vhid's advert at once. A
  flood from any other source never reaches this queue, so it cannot cost the master's
  adverts (issue 16: under 140k forged adverts/s the backup used to miss half of them and
  take over).
- **others**: every other source, also the socket adverts are sent from. Read within a
  budget (BUDGET_RATE a second, BUDGET_BURST at once) and at most every OTHERS_GAP; past
  the budget the reader pauses and the kernel's queue overflows, so a flood costs bounded
  CPU whatever its rate. What the kernel dropped is counted as ``shed`` and logged,
  rate-limited. (A full queue refuses before the filter runs, so ``shed`` also counts the
  known peers' adverts that arrived meanwhile: their own socket has them.) A new peer's
  first advert comes here; once it verifies, the peer moves to the other socket.

Should the peers' own queue ever fill (a flood forging a known peer's source, faster than
it is read), what the kernel dropped there is counted as ``overflow`` (looked at every
MEMO_SECONDS) and logged, rate-limited: those may be genuine adverts, lost unseen.

Only a flood that forges a known peer's own source address still shares its queue. What
keeps that one cheap: a batch in which nothing verified is remembered (the sockets' memo,
linux/sockets.py), and copies of those datagrams are then skipped unread for a set lookup
each and counted as ``repeated`` (a packet generator replays one forged frame; a genuine
CARP advert, with its new counter, is never such a copy; a VRRPv3 advert repeats itself,
but one refused stays refused until a reload changes its vhid). The memo is forgotten
every MEMO_SECONDS, and when a reload adds or changes a vhid on the carpdev.
A flood whose every advert differs (its own counter) gets past the memo; for that, an
IPv4 advert whose HMAC is wrong is refused right in recv(), before it is decoded
(core.receive.bad_hmac_v4: a few slices and one HMAC), counted as bad_hmac on its vhid
like any other. That check uses a vhid's key only once it has verified a genuine advert
off this carpdev exactly as the vhid's machine did, so it can never refuse what the
machine would accept.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from carpd.core.auth import Authenticator
from carpd.core.errors import BadHMAC
from carpd.core.model import IPAddress
from carpd.core.packet import CARP_VERSION
from carpd.core.receive import bad_hmac_v4
from carpd.linux import bpf
from carpd.linux.sockets import MEMO_MAX, AdvertSocketV4, AdvertSocketV6

if TYPE_CHECKING:
    from carpd.daemon.runtime.receiver import Receiver
    from carpd.daemon.runtime.vhost import Carpdev, Vhost

log = logging.getLogger("carpd")

BATCH = 64  # datagrams read per wakeup: timers still run between batches under a flood
BUDGET_RATE = 1_000.0  # datagrams a second from sources that are not known peers (~5 % of a core)
BUDGET_BURST = 1_000.0  # ...and at once (every vhid's first advert from a new peer)
MAX_PEERS = 16  # known sources per carpdev and family; the least recently verified go
PEER_QUEUE = 4 << 20  # bytes: 255 vhids' adverts from every known peer at once
OTHERS_GAP = 0.01  # seconds between reads of the others socket (a first advert: at once)
SHED_LOG_INTERVAL = 10.0  # seconds between "adverts shed" lines for one carpdev
MEMO_SECONDS = 1.0  # refused datagrams are remembered (their copies skipped) this long
PEER_SKIPS = 32 * BATCH  # copies skipped per read of the peers socket (some 3 ms of work)

AdvertSocket = AdvertSocketV4 | AdvertSocketV6
KERNEL_DROPS = {  # the log line of what the kernel dropped unread, by reason
    "shed": f"carp: flood on %s: more than {BUDGET_RATE:.0f} adverts/s from sources that are "
    "not known peers; %d dropped unread so far (known peers' adverts are read apart)",
    "overflow": "carp: %s: the known peers' queue was full, %d of their adverts dropped "
    "unread so far (a flood forging a peer's own address?)",
}


@dataclass
class Bucket:
    """A token bucket on the caller's clock."""

    rate: float
    burst: float
    tokens: float
    at: float

    def available(self, now: float) -> int:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        return int(self.tokens)

    def spend(self, n: int) -> None:
        self.tokens -= n

    def wait(self, n: int) -> float:
        """Seconds until ``n`` tokens are there (after available())."""
        return max(0.0, (min(n, self.burst) - self.tokens) / self.rate)


@dataclass(eq=False)
class Inlet:
    """One carpdev's adverts of one family."""

    dev: Carpdev
    family: int
    others: AdvertSocket
    peers: AdvertSocket
    bucket: Bucket
    pinned: frozenset[IPAddress]  # configured unicast peers: always known
    known: OrderedDict[IPAddress, None] = field(default_factory=OrderedDict)
    paused: asyncio.TimerHandle | None = None
    shed: int = 0  # the others socket's queue drops, as last read
    overflow: int = 0  # the peers socket's, as last read
    memo_at: float = float("-inf")  # when the sockets' memos were last forgotten
    # CARP vhids' keys, each once it verified a genuine advert here as the machine did.
    keys: dict[Vhost, Authenticator] = field(default_factory=dict)

    def close(self) -> None:
        if self.paused is not None:
            self.paused.cancel()
        self.peers.close()


class Intake:
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inlets: dict[tuple[str, int], Inlet] = {}  # (carpdev, family)

    def open(
        self, dev: Carpdev, family: int, pinned: frozenset[IPAddress], others: AdvertSocket
    ) -> None:
        """Read the carpdev's adverts of ``family``: ``others`` is the socket they are sent
        from (the caller opened it); the known peers' socket is opened here, of its type.
        Called again for each vhid a reload adds or changes: what was refused so far may
        be accepted now (VRRPv3's adverts have no counter, so a copy may be genuine)."""
        inlet = self._inlets.get((dev.name, family))
        if inlet is not None:
            inlet.peers.forget()
            inlet.others.forget()
            return
        self._loop = asyncio.get_running_loop()
        # Receive only: adverts are sent from the other socket.
        peers = type(others)(dev.name, dev.link.index, queue=PEER_QUEUE)
        bucket = Bucket(BUDGET_RATE, BUDGET_BURST, BUDGET_BURST, self.receiver.now())
        inlet = Inlet(dev, family, others, peers, bucket, pinned)
        self._inlets[(dev.name, family)] = inlet
        self._refilter(inlet)
        self._loop.add_reader(peers.fileno(), self._on_peers, inlet)
        self._loop.add_reader(others.fileno(), self._on_others, inlet)

    def close(self, dev: Carpdev) -> None:
        for key in [k for k in self._inlets if k[0] == dev.name]:
            inlet = self._inlets.pop(key)
            assert self._loop is not None
            self._loop.remove_reader(inlet.peers.fileno())
            self._loop.remove_reader(inlet.others.fileno())
            inlet.close()

    def _verified(self, inlet: Inlet, sources: list[IPAddress]) -> None:
        """Adverts from ``sources`` verified: their next ones come through the peers
        socket (once per batch: the filter changes once for a new source)."""
        new = False
        for src in sources:
            if src in inlet.pinned:
                continue
            if src in inlet.known:
                inlet.known.move_to_end(src)
                continue
            inlet.known[src] = None
            new = True
            while len(inlet.known) + len(inlet.pinned) > MAX_PEERS:
                inlet.known.popitem(last=False)
        if new:
            self._refilter(inlet)

    def _refilter(self, inlet: Inlet) -> None:
        # The peers socket takes the new source first: for a moment both may deliver
        # one of its adverts, never neither. The second copy is harmless (with
        # replay_protection, refused as a duplicate).
        sources = [*inlet.pinned, *inlet.known]
        inlet.peers.set_filter(bpf.source_filter(inlet.family, sources, accept=True))
        inlet.others.set_filter(bpf.source_filter(inlet.family, sources, accept=False))

    def _read(self, inlet: Inlet, sock: AdvertSocket, limit: int, skips: int, now: float) -> int:
        """Up to ``limit`` datagrams through the receive path, and up to ``skips`` copies
        of refused ones skipped; how many in all. A batch of which nothing verified joins
        the memo."""
        vhosts = inlet.dev.by_family[inlet.family]
        if now - inlet.memo_at >= MEMO_SECONDS:
            inlet.memo_at = now
            self._count_overflow(inlet)
            inlet.peers.forget()
            inlet.others.forget()
            for vh in [v for v in inlet.keys if vhosts.get(v.cfg.vhid) is not v]:
                del inlet.keys[vh]  # gone with a reload
        sock.take_recent()
        sock.skips = skips
        screened: dict[tuple[Vhost, bytes], None] = {}  # what the screen refused: from whom
        if inlet.family == 4 and inlet.keys:
            sock.screen = self._screen(vhosts, inlet.keys, screened)
        repeats = sock.repeats
        try:
            read, verified = self.receiver.read(inlet.dev, sock, limit)
        finally:
            sock.screen = None
        for vh, src in screened:  # logged and diagnosed as the full path would, once a batch
            self.receiver.refused(vh, BadHMAC("incorrect hash"), ipaddress.IPv4Address(src))
        recent = sock.take_recent()
        if verified:
            self._verified(inlet, verified)
            if inlet.family == 4:
                self._learn_keys(inlet, vhosts, recent, verified)
        elif recent:
            if len(sock.refused) + len(recent) > MEMO_MAX:
                sock.forget()
            sock.refuse(recent)
        repeated = sock.repeats - repeats
        if repeated:
            dropped = inlet.dev.dropped
            dropped["repeated"] = dropped.get("repeated", 0) + repeated
        return read + skips - sock.skips  # skipped: copies, and those the screen refused

    @staticmethod
    def _screen(
        vhosts: dict[int, Vhost],
        keys: dict[Vhost, Authenticator],
        screened: dict[tuple[Vhost, bytes], None],
    ) -> Callable[[bytes], bool]:
        """recv()'s check of each IPv4 datagram: True if refused here, as bad_hmac (and
        its vhid and source noted in ``screened``, for the log)."""

        def screen(datagram: bytes) -> bool:
            vh = bad_hmac_v4(datagram, vhosts, keys.get)
            if vh is None:
                return False
            vh.machine.counters.drop("bad_hmac")
            screened[vh, datagram[12:16]] = None
            return True

        return screen

    @staticmethod
    def _learn_keys(
        inlet: Inlet, vhosts: dict[int, Vhost], recent: list[object], verified: list[IPAddress]
    ) -> None:
        """A vhid's key for the screen, once an advert of this batch from a source that
        verified checks out with it: then it is the key its machine verified with."""
        sources = {a.packed for a in verified}
        for datagram in recent:
            assert isinstance(datagram, bytes)  # IPv4: the whole datagram
            if len(datagram) < 56 or datagram[0] != 0x45 or datagram[12:16] not in sources:
                continue
            vh = vhosts.get(datagram[21])
            if vh is None or vh in inlet.keys or vh.member.version != CARP_VERSION:
                continue
            cfg = vh.cfg
            if cfg.peers:  # not_a_peer comes before the HMAC: the full path judges
                continue
            key = Authenticator(
                cfg.password, cfg.vhid, [a.ip for a in cfg.addresses], cfg.hmac_variant
            )
            if key.valid(datagram[28:36], datagram[36:56]):
                inlet.keys[vh] = key

    def _on_peers(self, inlet: Inlet) -> None:
        self._read(inlet, inlet.peers, BATCH, PEER_SKIPS, self.receiver.now())

    def _on_others(self, inlet: Inlet) -> None:
        now = self.receiver.now()
        allowed = max(0, min(BATCH, inlet.bucket.available(now)))
        # Copies skipped count against the budget too (as many as read, at most): it
        # bounds what a flood costs, in datagrams taken off the queue.
        read = self._read(inlet, inlet.others, allowed, allowed, now) if allowed else 0
        inlet.bucket.spend(read)
        if allowed and not read:
            return  # nothing was queued after all
        # At most one wakeup per OTHERS_GAP: what comes meanwhile is read in one batch
        # (a wakeup costs more than an advert), and none past the budget.
        assert self._loop is not None
        self._loop.remove_reader(inlet.others.fileno())
        delay = max(OTHERS_GAP, inlet.bucket.wait(BATCH))
        inlet.paused = self._loop.call_later(delay, self._resume, inlet)

    def _resume(self, inlet: Inlet) -> None:
        assert self._loop is not None
        inlet.paused = None
        self._count_shed(inlet)
        self._loop.add_reader(inlet.others.fileno(), self._on_others, inlet)

    def _count_overflow(self, inlet: Inlet) -> None:
        drops = inlet.peers.queue_drops()
        new, inlet.overflow = drops - inlet.overflow, drops
        self._kernel_dropped(inlet.dev, "overflow", new)

    def _count_shed(self, inlet: Inlet) -> None:
        drops = inlet.others.queue_drops()
        new, inlet.shed = drops - inlet.shed, drops
        self._kernel_dropped(inlet.dev, "shed", new)

    def _kernel_dropped(self, dev: Carpdev, reason: str, new: int) -> None:
        """Counts ``new`` datagrams the kernel dropped as ``reason``, and logs the count
        every SHED_LOG_INTERVAL at most."""
        if not new:
            return
        dev.dropped[reason] = dev.dropped.get(reason, 0) + new
        limiter, now = self.receiver.limiter, self.receiver.now()
        if limiter.allow((dev.name, reason), now, SHED_LOG_INTERVAL) is not None:
            log.warning(KERNEL_DROPS[reason], dev.name, dev.dropped[reason])
