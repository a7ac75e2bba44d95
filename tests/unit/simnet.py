"""A simulated Ethernet segment for the sans-IO cores, on a virtual clock.

N nodes (CARP ``VirtualHost`` or VRRPv3 ``VrrpRouter``, one vhid) share one segment.
Everything happens on a heap of events ordered by (virtual time, insertion order): node
timers (each machine's ``get_timer()``), advert deliveries and scheduled callbacks
(faults). There is no real time and no thread, and every random choice (loss, delay,
duplication, counter starts) comes from one seeded ``random.Random``, so a run with the
same seed and the same calls is the same run, event for event.

What the network does to an advert, per (sender, receiver) link:

- ``LinkParams.loss``: probability that this copy is lost;
- ``delay_min`` / ``delay_max``: uniform one-way delay;
- ``dup``: probability that a second copy (with its own delay) is delivered too;
- partitions: nodes in different groups do not hear each other;
- a node whose link is down neither sends nor receives (and its machine is told).

An advert is encoded into the datagram the runtime would send (IPv4 header, or the IPv6
addresses and hop limit a raw socket reports) and taken in once per send through the
daemon's own receive path, ``carpd.core.receive.classify``; the packet it yields is
handed to each receiver's ``receive``, and a receiver's ``PacketError`` is counted per
reason in ``Node.rx_dropped``. A node runs on the families of its spec (IPv4, IPv6 or
both, each with its own adverts and timers); ``SimNet.carried`` says which families the
segment carries. Packets already on the wire are delivered even
if their sender dies meanwhile; the receiver must be running, link up and on the same
side of any partition when the packet arrives.

Node lifecycle, each effective at ``sim.now`` (use ``sim.at(t, fn)`` to schedule):

- ``start`` / ``restart``: a fresh machine (a new process), its demotion and link state
  applied, then ``start(now)``;
- ``crash``: kill -9. Nothing more is sent or received and its timers stop. The addresses
  stay configured (they do after kill -9) until a restart's BACKUP removes them;
- ``stop``: graceful ``machine.stop(now)`` (the bow-out / priority-0 advert is sent),
  then the process is gone;
- ``set_demotion``, ``set_link``, ``admin`` (carpctl down / up), ``force_state``.

Other actions are recorded on the node: who holds the addresses, announces, hooks, and
every state change (also in ``sim.transitions``).
"""

from __future__ import annotations

import heapq
import ipaddress
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from carpd.core.actions import (
    AddAddresses,
    Announce,
    RemoveAddresses,
    RunHook,
    SendAdvert,
    SendVrrp,
    StateChanged,
)
from carpd.core.auth import Authenticator
from carpd.core.errors import PacketError
from carpd.core.machine import Tiebreak, VhostSettings, VirtualHost
from carpd.core.model import IPAddress, State
from carpd.core.packet import CARP_GROUP_V4, CARP_GROUP_V6, CARP_VERSION, CarpPacket, build_ipv4
from carpd.core.receive import Member, classify, ipv4_datagram, ipv6_datagram
from carpd.core.timing import DEFAULT_DEADRATIO
from carpd.core.vrrp import VRRP_VERSION, VrrpPacket
from carpd.core.vrrp_machine import VrrpRouter, VrrpSettings
from carpd.core.vrrp_machine import master_down_interval as vrrp_master_down_interval

ProtocolName = Literal["carp", "vrrp"]
Machine = VirtualHost | VrrpRouter
Packet = CarpPacket | VrrpPacket

VHID = 7
PASSWORD = "secret"
VIP = ipaddress.IPv4Address("192.0.2.100")
VIP6 = ipaddress.IPv6Address("2001:db8::100")
GROUP: dict[int, IPAddress] = {4: CARP_GROUP_V4, 6: CARP_GROUP_V6}  # VRRP's are the same

_TIMER = 0
_DELIVER = 1
_CALL = 2


class SimulationError(AssertionError):
    """The simulation itself went wrong (a timer that does not advance, a bad call)."""


@dataclass(frozen=True, slots=True)
class LinkParams:
    loss: float = 0.0
    delay_min: float = 0.001
    delay_max: float = 0.001
    dup: float = 0.0

    def __post_init__(self) -> None:
        if not (0 <= self.loss <= 1 and 0 <= self.dup <= 1):
            raise ValueError(f"loss {self.loss} and dup {self.dup} must be in 0..1")
        if not 0 <= self.delay_min <= self.delay_max:
            raise ValueError(f"delays must satisfy 0 <= {self.delay_min} <= {self.delay_max}")


# A healthy switched segment: no loss, and a little jitter. The jitter matters: two
# identical machines fed perfectly symmetric delays can stay in lock-step for ever (the
# BSD tie-break then never settles), which no real network does.
HEALTHY = LinkParams(loss=0.0, delay_min=0.0001, delay_max=0.001, dup=0.0)


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One node's configuration: ``host`` is the last octet of its 192.0.2.x source (and
    of fe80::x on IPv6)."""

    name: str
    host: int
    protocol: ProtocolName = "carp"
    preempt: bool = False
    families: frozenset[int] = frozenset({4})
    # CARP
    advbase: int = 1
    advskew: int = 0
    tiebreak: Tiebreak = "ucarp"
    deadratio: int = DEFAULT_DEADRATIO
    # VRRPv3
    priority: int = 100
    interval_cs: int = 100
    vhid: int = VHID

    @property
    def src(self) -> ipaddress.IPv4Address:
        return ipaddress.IPv4Address(f"192.0.2.{self.host}")

    @property
    def sources(self) -> dict[int, IPAddress]:
        own = {4: self.src, 6: ipaddress.IPv6Address(f"fe80::{self.host}")}
        return {f: own[f] for f in self.families}

    @property
    def addresses(self) -> tuple[IPAddress, ...]:
        return tuple(a for a in (VIP, VIP6) if a.version in self.families)

    def build(self, counter_start: int) -> Machine:
        if self.protocol == "carp":
            return VirtualHost(
                VhostSettings(
                    vhid=self.vhid,
                    advbase=self.advbase,
                    advskew=self.advskew,
                    preempt=self.preempt,
                    tiebreak=self.tiebreak,
                    deadratio=self.deadratio,
                    families=self.families,
                ),
                Authenticator(PASSWORD, self.vhid, list(self.addresses)),
                counter_start=counter_start,
                own_sources=self.sources,
            )
        return VrrpRouter(
            VrrpSettings(
                vrid=self.vhid,
                priority=self.priority,
                interval_cs=self.interval_cs,
                preempt=self.preempt,
                families=self.families,
                addresses=self.addresses,
            ),
            own_sources=self.sources,
        )


@dataclass(frozen=True, slots=True)
class Transition:
    at: float
    node: str
    old: State
    new: State
    reason: str


@dataclass(eq=False)
class Node:
    spec: NodeSpec
    machine: Machine
    running: bool = False  # the daemon runs: started, not crashed, not stopped
    link_up: bool = True
    demotion: int = 0  # the node's demotion total, re-applied to every fresh machine
    holds_addresses: bool = False
    incarnation: int = 0  # how many machines this node has run
    history: list[Transition] = field(default_factory=list)
    hooks: list[tuple[float, str]] = field(default_factory=list)
    announces: int = 0
    adverts_sent: int = 0
    adverts_received: int = 0
    last_heard: float | None = None  # when an advert was last delivered to it
    last_packet: Packet | None = None  # and that advert
    rx_dropped: dict[str, int] = field(default_factory=dict)
    timer_at: float | None = None
    timer_gen: int = 0
    spins: int = 0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def state(self) -> State:
        return self.machine.state

    def __repr__(self) -> str:
        run = "running" if self.running else "down"
        link = "" if self.link_up else " link-down"
        return f"<{self.name} {self.state} {run}{link} demotion={self.demotion}>"


def preference(machine: Machine) -> tuple[int, ...]:
    """How a machine ranks as MASTER right now: smaller is more preferred.

    CARP: the demote byte first (OpenBSD), then (advbase, advskew with demotion folded
    in), which is what a lexicographic compare of T(advbase, advskew) amounts to.
    VRRPv3: the effective (demoted) priority, higher first. Equal keys are settled by
    the tie-break only between two simultaneous masters; a BACKUP never preempts an
    equal MASTER, so among equals any one may end up MASTER.
    """
    if isinstance(machine, VirtualHost):
        return (machine.demote, machine.settings.advbase, machine.advskew)
    return (-machine.priority,)


class SimNet:
    """One segment, one vhid, N nodes, one virtual clock."""

    def __init__(
        self,
        specs: Iterable[NodeSpec],
        *,
        seed: int = 0,
        network: LinkParams = HEALTHY,
        trace: bool = False,
        max_spins: int = 100,
        timer_jitter: float = 0.0,
        max_events_per_instant: int = 100_000,
    ) -> None:
        self.rng = random.Random(seed)
        self.nodes: list[Node] = []
        self._by_name: dict[str, Node] = {}
        for spec in specs:
            if spec.name in self._by_name:
                raise ValueError(f"two nodes named {spec.name}")
            node = Node(spec, spec.build(self._counter_start()))
            self.nodes.append(node)
            self._by_name[spec.name] = node
        protocols = {n.spec.protocol for n in self.nodes}
        if len(protocols) > 1:
            raise ValueError("one segment runs one protocol for its vhid")
        if len({n.spec.host for n in self.nodes}) != len(self.nodes):
            raise ValueError("two nodes share a source address")
        self.now = 0.0
        self.network = network
        self.carried: frozenset[int] = frozenset({4, 6})  # families the segment carries
        self._links: dict[tuple[str, str], LinkParams] = {}
        self._side: dict[str, int] = {}  # partition group per node; absent: group 0
        self._heap: list[tuple[float, int, int, Any, Any]] = []
        self._seq = 0
        self.max_spins = max_spins  # timer firings that leave it due, in a row
        self.max_events_per_instant = max_events_per_instant  # zero-delay loops
        # How late, at most, the runtime calls handle_timer after a deadline (uniform):
        # event-loop latency. 0 calls it exactly on time.
        self.timer_jitter = timer_jitter
        # Statistics.
        self.events = 0
        self.sent = 0
        self.delivered = 0
        self.lost = 0
        self.duplicated = 0
        self.transitions: list[Transition] = []
        self.max_masters = 0
        # (time, number of running MASTERs) whenever that number changes.
        self.master_counts: list[tuple[float, int]] = [(0.0, 0)]
        self.trace: list[tuple[float, str, object]] | None = [] if trace else None

    # -- the clock ----------------------------------------------------------------

    def _push(self, t: float, kind: int, a: Any, b: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, a, b))

    def at(self, t: float, fn: Callable[[], None]) -> None:
        """Call ``fn()`` at virtual time ``t`` (after the events already due then)."""
        if t < self.now:
            raise SimulationError(f"cannot schedule at {t} before now ({self.now})")
        self._push(t, _CALL, fn, None)

    def run_until(self, end: float) -> None:
        heap = self._heap
        pop = heapq.heappop
        same = 0
        while heap and heap[0][0] <= end:
            t, _, kind, a, b = pop(heap)
            if t == self.now:
                same += 1
                if same > self.max_events_per_instant:
                    raise SimulationError(f"livelock: {same} events at t={t} and counting")
            else:
                same = 0
            self.now = t
            self.events += 1
            if kind == _TIMER:
                node: Node = a
                if b == node.timer_gen and node.running:
                    node.timer_at = None
                    node.machine.handle_timer(t)
                    self._settle(node)
                    if node.timer_at is not None and node.timer_at <= t:
                        node.spins += 1
                        if node.spins > self.max_spins:
                            raise SimulationError(f"{node.name}: timer stuck at {t}")
                    else:
                        node.spins = 0
            elif kind == _DELIVER:
                self._deliver(a, b[0], b[1:])
            else:
                a()
        if end > self.now:
            self.now = float(end)

    def run_for(self, duration: float) -> None:
        self.run_until(self.now + duration)

    # -- the network --------------------------------------------------------------

    def set_network(self, params: LinkParams, *, clear_links: bool = True) -> None:
        """The parameters of every link (per-link overrides dropped unless told)."""
        self.network = params
        if clear_links:
            self._links.clear()

    def set_link_params(self, a: str, b: str, params: LinkParams, *, both: bool = True) -> None:
        """Override the link a -> b (and b -> a unless ``both=False``)."""
        self.node(a), self.node(b)
        self._links[(a, b)] = params
        if both:
            self._links[(b, a)] = params

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the segment: each group hears only itself; unlisted nodes form one
        more group of their own."""
        self._side = {}
        for i, group in enumerate(groups, start=1):
            for name in group:
                self.node(name)
                self._side[name] = i

    def heal(self) -> None:
        self._side = {}

    def _connected(self, a: Node, b: Node) -> bool:
        return self._side.get(a.name, 0) == self._side.get(b.name, 0)

    def _params(self, a: Node, b: Node) -> LinkParams:
        return self._links.get((a.name, b.name), self.network) if self._links else self.network

    def _send(self, node: Node, family: int, datagram: bytes) -> None:
        node.adverts_sent += 1
        self.sent += 1
        if not node.link_up or family not in self.carried:
            return
        pkt = self._classify(node, family, datagram)
        rng = self.rng
        for other in self.nodes:
            if other is node or not other.link_up or not self._connected(node, other):
                continue
            p = self._params(node, other)
            if p.loss and rng.random() < p.loss:
                self.lost += 1
                continue
            copies = 1
            if p.dup and rng.random() < p.dup:
                copies = 2
                self.duplicated += 1
            for _ in range(copies):
                delay = p.delay_min
                if p.delay_max > p.delay_min:
                    delay = rng.uniform(p.delay_min, p.delay_max)
                self._push(self.now + delay, _DELIVER, other, (node, family, pkt))

    def _classify(self, node: Node, family: int, datagram: bytes) -> Packet:
        """The daemon's receive path, once per send (every node has the same vhid)."""
        src = node.spec.sources[family]
        if family == 4:
            dg = ipv4_datagram(datagram)
        else:
            assert isinstance(src, ipaddress.IPv6Address)
            dg = ipv6_datagram(datagram, src, GROUP[6], 255)
        version = CARP_VERSION if node.spec.protocol == "carp" else VRRP_VERSION
        member = Member(version, check_ttl=True)
        _, pkt = classify(dg, {node.spec.vhid: member}, lambda m: m)
        assert dg.src == src
        return pkt

    def _deliver(self, receiver: Node, sender: Node, item: tuple[int, Packet]) -> None:
        family, pkt = item
        if not (receiver.running and receiver.link_up and self._connected(sender, receiver)):
            self.lost += 1
            return
        self.delivered += 1
        try:
            if family not in receiver.spec.families:
                raise PacketError(f"IPv{family} is not configured")
            receiver.machine.receive(pkt, family, sender.spec.sources[family], self.now)
        except PacketError as exc:
            receiver.rx_dropped[exc.reason] = receiver.rx_dropped.get(exc.reason, 0) + 1
        else:
            receiver.adverts_received += 1
            receiver.last_heard, receiver.last_packet = self.now, pkt
        self._settle(receiver)

    # -- actions ------------------------------------------------------------------

    def _settle(self, node: Node) -> None:
        """Carry out what the machine asked for, then re-arm its timer."""
        now = self.now
        for action in node.machine.drain():
            if self.trace is not None:
                self.trace.append((now, node.name, action))
            if isinstance(action, SendAdvert):
                for family in sorted(node.spec.families):
                    self._send(node, family, self._wire(node, family, action.payload))
            elif isinstance(action, SendVrrp):
                src = node.spec.sources[action.family]
                payload = action.packet.encode(src, GROUP[action.family])
                self._send(node, action.family, self._wire(node, action.family, payload))
            elif isinstance(action, StateChanged):
                tr = Transition(now, node.name, action.old, action.new, action.reason)
                node.history.append(tr)
                self.transitions.append(tr)
                self._count_masters()
            elif isinstance(action, AddAddresses):
                node.holds_addresses = True
            elif isinstance(action, RemoveAddresses):
                node.holds_addresses = False
            elif isinstance(action, Announce):
                node.announces += 1
            elif isinstance(action, RunHook):
                node.hooks.append((now, action.kind))
            else:  # pragma: no cover - a new action type the simulator must learn
                raise SimulationError(f"unknown action {action!r}")
        self._rearm(node)

    @staticmethod
    def _wire(node: Node, family: int, payload: bytes) -> bytes:
        """What the runtime hands the kernel: an IPv4 datagram, or the IPv6 payload."""
        if family == 6:
            return payload
        src, group = node.spec.src, GROUP[4]
        assert isinstance(group, ipaddress.IPv4Address)
        return build_ipv4(src, group, payload, ident=0)

    def _count_masters(self) -> None:
        count = len(self.masters())
        if count != self.master_counts[-1][1]:
            self.master_counts.append((self.now, count))
            self.max_masters = max(self.max_masters, count)

    def _rearm(self, node: Node) -> None:
        t = node.machine.get_timer() if node.running else None
        if t == node.timer_at:
            return
        node.timer_gen += 1
        node.timer_at = t
        if t is not None:
            if self.timer_jitter:
                t += self.rng.uniform(0, self.timer_jitter)
            self._push(max(t, self.now), _TIMER, node, node.timer_gen)

    def _counter_start(self) -> int:
        return self.rng.getrandbits(48)

    # -- node lifecycle -----------------------------------------------------------

    def node(self, name: str) -> Node:
        try:
            return self._by_name[name]
        except KeyError:
            raise SimulationError(f"no node {name!r}") from None

    def start(self, name: str) -> None:
        """Start (or, if running, reboot) the daemon: a fresh machine."""
        node = self.node(name)
        if node.running:
            self.crash(name)
        now = self.now
        node.machine = m = node.spec.build(self._counter_start())
        node.incarnation += 1
        node.running = True
        node.spins = 0
        if not node.link_up:
            m.link_changed(False, now)
        if node.demotion:
            m.set_demotion(node.demotion, now)
        m.start(now)
        self._settle(node)

    restart = start

    def crash(self, name: str, *, keep_addresses: bool = True) -> None:
        """kill -9 (or, with ``keep_addresses=False``, a power cut)."""
        node = self.node(name)
        node.running = False
        if not keep_addresses:
            node.holds_addresses = False
        self._rearm(node)
        self._count_masters()

    def stop(self, name: str) -> None:
        """A graceful stop: ``machine.stop`` (its bow-out is sent), then the process exits."""
        node = self.node(name)
        if not node.running:
            return
        node.machine.stop(self.now)
        self._settle(node)
        node.running = False
        self._rearm(node)
        self._count_masters()

    def set_demotion(self, name: str, total: int) -> None:
        node = self.node(name)
        node.demotion = total
        if node.running:
            node.machine.set_demotion(total, self.now)
            self._settle(node)

    def set_link(self, name: str, up: bool) -> None:
        node = self.node(name)
        node.link_up = up
        if node.running:
            node.machine.link_changed(up, self.now)
            self._settle(node)

    def admin(self, name: str, up: bool) -> None:
        """`carpctl down` (bow out, stay INIT) / `carpctl up`. A restart forgets it."""
        node = self.node(name)
        if node.running:
            if up:
                node.machine.admin_up(self.now)
            else:
                node.machine.admin_down(self.now)
            self._settle(node)

    def force_state(self, name: str, state: State) -> None:
        """`carpctl state master|backup`."""
        node = self.node(name)
        if node.running:
            node.machine.force_state(state, self.now)
            self._settle(node)

    # -- observations -------------------------------------------------------------

    def running(self) -> list[Node]:
        return [n for n in self.nodes if n.running]

    def masters(self) -> list[str]:
        """Running nodes in MASTER (a crashed node's stale machine does not count)."""
        return [n.name for n in self.nodes if n.running and n.machine.state is State.MASTER]

    def holders(self, *, running_only: bool = True) -> list[str]:
        return [n.name for n in self.nodes if n.holds_addresses and (n.running or not running_only)]

    def most_preferred(self) -> list[str]:
        """The running, linked, enabled nodes that rank best (all of them when tied)."""
        live = [n for n in self.nodes if n.running and n.link_up and n.machine.enabled]
        if not live:
            return []
        best = min(preference(n.machine) for n in live)
        return [n.name for n in live if preference(n.machine) == best]

    def convergence_bound(self, margin: float = 0.1) -> float:
        """How long after the network turns healthy one master must be settled:
        two master-down intervals and three advert intervals of the slowest running
        node, plus ``margin`` for delays."""
        live = self.running()
        if not live:
            return margin
        adv = max(n.machine.advert_interval for n in live)
        mdis = []
        for n in live:
            m = n.machine
            if isinstance(m, VrrpRouter):
                # A backup times out on the interval it learned from the last master it
                # heard, which may be gone now: any node's interval is possible.
                slowest = max(x.spec.interval_cs for x in self.nodes)
                mdis.append(vrrp_master_down_interval(m.priority, slowest))
            else:
                # A backup outranked (by demotion) by a master slower than its own
                # master-down interval waits deadratio of that master's intervals: any
                # node's, with any advskew (the fold changes it).
                slowest = max(x.spec.advbase + 1 for x in self.nodes if x.spec.protocol == "carp")
                md = m.master_down_interval
                mdis.append(md if md > slowest else m.settings.deadratio * slowest)
        return 2 * max(mdis) + 3 * adv + margin

    def describe(self) -> str:
        """A one-line-per-node summary for assertion messages."""
        lines = [f"t={self.now:.6f} masters={self.masters()} holders={self.holders()}"]
        for n in self.nodes:
            lines.append(
                f"  {n!r} holds={n.holds_addresses} pref={preference(n.machine)} "
                f"last={n.history[-1] if n.history else None}"
            )
        return "\n".join(lines)
