"""Cluster invariants under random fault schedules, on the simulated segment (simnet).

Each example: 2-5 nodes of one protocol start at random moments; for a fault period the
network loses, delays and duplicates adverts, and the schedule crashes, restarts, stops,
demotes, unplugs, takes down (carpctl down / up / state) and partitions nodes. Then
everything heals (the nodes chosen to stay down stay down, every other one runs) and
after the convergence bound (two master-down intervals and three advert intervals of
the slowest node) we check:

- exactly one running node is MASTER, and it is the only running node holding the
  addresses; every running node's last hook matches its state;
- with preempt on in every node, that MASTER ranks best (``simnet.preference``);
  without it, one master is all that is promised;
- nothing changes any more during a further quiet window;
- no advert was refused (no bad checksum, HMAC, ...).

For CARP with the BSD tie-break and two nodes that rank equal the bound is replaced by
"in the end" (see ``bsd_tie``).

Hypothesis runs derandomized and without its example database, so CI runs the same
examples every time; each example's own randomness (loss, delay, jitter) comes from a
drawn seed, so a failing example replays exactly.

Measured on a 2-core machine: the whole file in about 16 s; 1000 simulated minutes of
a 2-node cluster in about 0.8 s of wall time (see test_throughput).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from functools import partial
from typing import Literal

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from simnet import HEALTHY, LinkParams, NodeSpec, SimNet, preference

from carpd.core.machine import VirtualHost
from carpd.core.model import State

Variant = Literal["carp-ucarp", "carp-bsd", "vrrp"]
Preempt = Literal["all", "none", "mixed"]
FaultKind = Literal[
    "crash", "restart", "stop", "demote", "link", "partition", "heal", "lossy", "admin", "force"
]

ADVBASES = (1, 2)
ADVSKEWS = (0, 100, 1, 240)
PRIORITIES = (100, 200, 254, 1)
VRRP_INTERVALS_CS = (100, 50)
CARP_DEMOTIONS = (0, 1, 50, 240, 1000)
WIDE_DEADRATIOS = (3, 2, 4, 10)
VRRP_DEMOTIONS = (0, 1, 50, 100, 253)
FAULT_KINDS: tuple[FaultKind, ...] = (
    "crash",
    "restart",
    "stop",
    "demote",
    "link",
    "partition",
    "heal",
    "lossy",
    "admin",
    "force",
)
TIMER_JITTERS = (0.0, 0.001, 0.005)
DRAIN = 0.1  # seconds after the heal by which the faulty network's packets have arrived
QUIET_WINDOW = 20.0  # seconds after convergence in which nothing may change
BSD_RACE_LIMIT = 4 * 3600.0  # simulated seconds allowed for a BSD tie race
EXAMPLES = 200
STORM_EXAMPLES = 80
WIDE_EXAMPLES = 150


@dataclass(frozen=True)
class Fault:
    """One fault at ``at`` seconds. ``value`` by kind: demote, the new demotion total;
    link and admin (carpctl up / down), 1 up / 0 down; force (carpctl state), 1 master /
    0 backup; partition, the bit mask of the nodes cut off from the rest;
    lossy, the percentage of ``node``'s outgoing adverts lost (one-way loss)."""

    at: float
    kind: FaultKind
    node: int = 0
    value: int = 0


@dataclass(frozen=True)
class Scenario:
    specs: tuple[NodeSpec, ...]
    starts: tuple[float, ...]
    network: LinkParams  # every link during the fault period
    faults: tuple[Fault, ...]
    fault_period: float
    stay_down: frozenset[int]  # indexes of nodes left down once the network heals
    seed: int
    timer_jitter: float = 0.0  # event-loop latency of every node's timers

    @property
    def heal_at(self) -> float:
        return max(self.fault_period, *self.starts)

    @property
    def all_preempt(self) -> bool:
        return all(s.preempt for s in self.specs)


@st.composite
def scenarios(
    draw: st.DrawFn,
    variant: Variant,
    preempt: Preempt,
    *,
    nodes: tuple[int, int] = (2, 5),
    faults: tuple[int, int] = (0, 20),
    period: tuple[int, int] = (0, 120),
    wide: bool = False,
) -> Scenario:
    """``wide``: also slower advbases, other deadratios, every advskew up to 254 and any
    VRRP priority and interval."""
    n = draw(st.integers(*nodes), label="nodes")
    hosts = draw(st.permutations(range(1, 6)))  # the tie-breaks' order
    specs = []
    for i in range(n):
        p = draw(st.booleans()) if preempt == "mixed" else preempt == "all"
        if variant == "vrrp":
            spec = NodeSpec(
                f"n{i}",
                hosts[i],
                "vrrp",
                preempt=p,
                priority=draw(st.integers(1, 254) if wide else st.sampled_from(PRIORITIES)),
                interval_cs=draw(
                    st.integers(10, 300) if wide else st.sampled_from(VRRP_INTERVALS_CS)
                ),
            )
        else:
            spec = NodeSpec(
                f"n{i}",
                hosts[i],
                "carp",
                preempt=p,
                advbase=draw(st.integers(1, 4) if wide else st.sampled_from(ADVBASES)),
                advskew=draw(st.integers(0, 254) if wide else st.sampled_from(ADVSKEWS)),
                tiebreak="bsd" if variant == "carp-bsd" else "ucarp",
                deadratio=draw(st.sampled_from(WIDE_DEADRATIOS)) if wide else 3,
            )
        specs.append(spec)
    starts = tuple(draw(st.integers(0, 5000)) / 1000 for _ in range(n))
    fault_period = float(draw(st.integers(*period)))
    delay_min = draw(st.integers(0, 50))
    network = LinkParams(
        loss=draw(st.integers(0, 30)) / 100,
        delay_min=delay_min / 1000,
        delay_max=draw(st.integers(delay_min, 50)) / 1000,
        dup=draw(st.integers(0, 20)) / 100,
    )
    demotions: tuple[int, ...] = VRRP_DEMOTIONS if variant == "vrrp" else CARP_DEMOTIONS
    if wide:
        demotions = tuple(range(0, 300, 7))

    @st.composite
    def one_fault(d: st.DrawFn) -> Fault:
        at = d(st.integers(0, int(fault_period * 1000))) / 1000
        kind = d(st.sampled_from(FAULT_KINDS))
        node = d(st.integers(0, n - 1))
        value = 0
        if kind == "demote":
            value = d(st.sampled_from(demotions))
        elif kind in ("link", "admin", "force"):
            value = d(st.integers(0, 1))
        elif kind == "partition":
            value = d(st.integers(1, 2**n - 2))
        elif kind == "lossy":
            value = d(st.integers(0, 100))
        return Fault(at, kind, node, value)

    schedule = draw(st.lists(one_fault(), min_size=faults[0], max_size=faults[1]))
    schedule.sort(key=lambda f: f.at)
    stay_down = frozenset(draw(st.sets(st.integers(0, n - 1), max_size=n - 1)))
    seed = draw(st.integers(0, 2**32 - 1))
    jitter = draw(st.sampled_from(TIMER_JITTERS))
    return Scenario(
        tuple(specs), starts, network, tuple(schedule), fault_period, stay_down, seed, jitter
    )


def apply(sim: SimNet, f: Fault) -> None:
    name = sim.nodes[f.node].name
    if f.kind == "crash":
        sim.crash(name)
    elif f.kind == "restart":
        sim.restart(name)
    elif f.kind == "stop":
        sim.stop(name)
    elif f.kind == "demote":
        sim.set_demotion(name, f.value)
    elif f.kind == "link":
        sim.set_link(name, bool(f.value))
    elif f.kind == "partition":
        sim.partition([n.name for i, n in enumerate(sim.nodes) if f.value >> i & 1])
    elif f.kind == "heal":
        sim.heal()
    elif f.kind == "admin":
        sim.admin(name, bool(f.value))
    elif f.kind == "force":
        sim.force_state(name, State.MASTER if f.value else State.BACKUP)
    elif f.kind == "lossy":
        lossy = LinkParams(f.value / 100, sim.network.delay_min, sim.network.delay_max)
        for other in sim.nodes:
            if other.name != name:
                sim.set_link_params(name, other.name, lossy, both=False)


def heal(sim: SimNet, sc: Scenario) -> None:
    """The network turns healthy; the nodes to stay down go (or stay) down, all others
    run. Demotions stay as the schedule left them."""
    sim.set_network(HEALTHY)
    sim.heal()
    for i, node in enumerate(sim.nodes):
        if not node.link_up:
            sim.set_link(node.name, True)
        if node.running and not node.machine.enabled:
            sim.admin(node.name, True)
        if i in sc.stay_down:
            if node.running:
                sim.crash(node.name)
        elif not node.running:
            sim.start(node.name)


def bsd_tie(sim: SimNet) -> bool:
    """Two running BSD-tie-break nodes rank equal: their election is a race.

    Not a bound the protocol gives (spec 4.7, "converges but is not deterministic"): two
    equal masters that hear each other both step down, and when their master-down timers
    then run out closer together than one network delay, both become MASTER again. Each
    round costs a master-down interval and repeats with a probability set by the network
    delay against the timers' lateness (test_bsd_tie_race_converges measures it), so
    with 3-5 equal nodes and no timer jitter it can take many minutes. For these the
    property is "one master in the end", within BSD_RACE_LIMIT.
    """
    keys = [
        preference(n.machine)
        for n in sim.running()
        if isinstance(n.machine, VirtualHost) and n.machine.settings.tiebreak == "bsd"
    ]
    return len(keys) != len(set(keys))


@dataclass
class Outcome:
    sim: SimNet
    heal_at: float
    bound: float  # how long after the heal one master was required
    settled_after: float  # last transition after the heal, relative to it (0: none)
    # The number of running MASTERs DRAIN after the heal, then at every change of it.
    master_counts: list[int]


def settled(sim: SimNet, quiet: float) -> bool:
    """One master, and no state change for ``quiet`` seconds."""
    last = sim.transitions[-1].at if sim.transitions else 0.0
    return len(sim.masters()) == 1 and sim.now - last >= quiet


def run(sc: Scenario) -> Outcome:
    sim = SimNet(sc.specs, seed=sc.seed, network=sc.network, timer_jitter=sc.timer_jitter)
    for spec, t in zip(sc.specs, sc.starts, strict=True):
        sim.at(t, partial(sim.start, spec.name))
    for f in sc.faults:
        sim.at(f.at, partial(apply, sim, f))
    heal_at = sc.heal_at
    sim.run_until(heal_at)
    heal(sim, sc)
    bound = sim.convergence_bound()
    # Let what the faulty network still has in flight (50 ms at most) arrive.
    sim.run_until(heal_at + DRAIN)
    counts_from = len(sim.master_counts) - 1  # the count then, and every change since
    sim.run_until(heal_at + bound)
    if bsd_tie(sim):
        mdi = max(n.machine.master_down_interval for n in sim.running())
        while not settled(sim, mdi) and sim.now < heal_at + BSD_RACE_LIMIT:
            sim.run_for(mdi)
        bound = sim.now - heal_at
    after = [t.at for t in sim.transitions if t.at >= heal_at]
    counts = [c for _, c in sim.master_counts[counts_from:]]
    return Outcome(sim, heal_at, bound, max(after, default=heal_at) - heal_at, counts)


def check_converged(sc: Scenario, out: Outcome) -> None:
    sim = out.sim
    note(sim.describe())
    note(f"healed at {out.heal_at}, last change {out.settled_after:.6f} s later")
    masters = sim.masters()
    assert len(masters) == 1, f"{len(masters)} masters {out.bound:.3f} s after the heal"
    if out.master_counts[0] and not bsd_tie(sim):
        # A master, once there is one on a healthy network, only ever yields to another
        # master: never a moment without one. (With a BSD tie two masters that hear
        # each other in the same instant both yield; that is the race.)
        assert min(out.master_counts) >= 1, f"no master for a while: {out.master_counts}"
    assert sim.holders() == masters, "the addresses are not held by the master alone"
    if sc.all_preempt:
        # Among equals (same key) any one may be MASTER: the tie-break only settles two
        # simultaneous masters, and no BACKUP preempts an equal master.
        assert masters[0] in sim.most_preferred(), "preempt everywhere, yet not the best"
    for node in sim.running():
        assert not node.rx_dropped, f"{node.name} refused adverts: {node.rx_dropped}"
        want = "up" if node.state is State.MASTER else "down"
        assert node.hooks and node.hooks[-1][1] == want, f"{node.name} hooks {node.hooks}"
    # And it stays that way, quietly: only the master advertises, on its schedule, and
    # nobody announces (the delayed gratuitous ARP is at most two adverts late).
    before = len(sim.transitions)
    sent = {n.name: n.adverts_sent for n in sim.nodes}
    announced = {n.name: n.announces for n in sim.nodes}
    sim.run_for(QUIET_WINDOW)
    assert sim.transitions[before:] == [], "state changes after convergence"
    assert sim.masters() == masters
    master = sim.node(masters[0])
    for node in sim.nodes:
        adverts = node.adverts_sent - sent[node.name]
        if node is master:
            assert adverts <= QUIET_WINDOW / master.machine.advert_interval + 1
            assert node.announces - announced[node.name] <= 1
        else:
            assert adverts == 0, f"{node.name} sent {adverts} adverts as {node.state}"
            assert node.announces == announced[node.name]


def derandomized(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


VARIANTS = ["carp-ucarp", "carp-bsd", "vrrp"]


@pytest.mark.parametrize("preempt", ["all", "none", "mixed"])
@pytest.mark.parametrize("variant", VARIANTS)
@derandomized(EXAMPLES)
@given(data=st.data())
def test_one_master_after_faults_heal(
    variant: Variant, preempt: Preempt, data: st.DataObject
) -> None:
    sc = data.draw(scenarios(variant, preempt), label="scenario")
    check_converged(sc, run(sc))


@pytest.mark.parametrize("variant", VARIANTS)
@derandomized(STORM_EXAMPLES)
@given(data=st.data())
def test_one_master_after_a_fault_storm(variant: Variant, data: st.DataObject) -> None:
    """Five nodes, 10-40 faults over 1-3 minutes, preempt on everywhere (so the result
    is also checked for rank)."""
    sc = data.draw(
        scenarios(variant, "all", nodes=(5, 5), faults=(10, 40), period=(60, 180)),
        label="scenario",
    )
    check_converged(sc, run(sc))


@pytest.mark.parametrize("variant", VARIANTS)
@derandomized(WIDE_EXAMPLES)
@given(data=st.data())
def test_one_master_with_any_timers(variant: Variant, data: st.DataObject) -> None:
    """Any advbase 1-4, deadratio 2-10, advskew 0-254, priority 1-254, VRRP interval
    0.1-3 s, demotions 0-300: the same properties. That includes a backup whose
    master-down interval is not longer than another node's advert interval, which then
    takes that node for dead (rule 3); when demotion makes the slower node rank better
    this used to flap (the two tests below)."""
    sc = data.draw(scenarios(variant, "mixed", wide=True), label="scenario")
    check_converged(sc, run(sc))


# -- what the properties found -----------------------------------------------------------


def bsd_pair(seed: int) -> SimNet:
    return SimNet([NodeSpec("a", 1, tiebreak="bsd"), NodeSpec("b", 2, tiebreak="bsd")], seed=seed)


@pytest.mark.parametrize("seed", range(10))
def test_bsd_tie_healed_split_brain_keeps_its_master(seed: int) -> None:
    """Minimal schedule: two equal nodes, tiebreak bsd; a partition makes both MASTER;
    it heals. The master that hears the other first yields, silently, as the BSDs do,
    and the other stays MASTER.

    It used to send "one last advert" first (meant for the ucarp tie-break, where the
    other master wins the tie and re-announces). Under the BSD rule an equal advert
    makes a master yield, so that advert always took the other master down too: no
    master at all for a master-down interval (3 s), then a race that could last minutes.
    """
    sim = bsd_pair(seed)
    sim.start("a")
    sim.run_until(5.0)
    sim.start("b")
    sim.run_until(10.0)
    assert sim.masters() == ["a"]
    sim.partition(["a"], ["b"])
    sim.run_until(20.0)
    assert sorted(sim.masters()) == ["a", "b"]
    changes = len(sim.transitions)
    sim.heal()
    for _ in range(3000):  # 30 s in 10 ms steps: never without a master
        sim.run_for(0.01)
        assert len(sim.masters()) >= 1, sim.describe()
    assert len(sim.masters()) == 1
    assert [(t.new, t.reason) for t in sim.transitions[changes:]] == [
        (State.BACKUP, "preferred master advertised (tie)")
    ]


@pytest.mark.parametrize(("nodes", "jitter", "limit"), [(2, 0.0, 120), (2, 0.005, 30)])
def test_bsd_tie_race_converges(nodes: int, jitter: float, limit: float) -> None:
    """Equal BSD nodes started at the same instant: both time out together, become
    MASTER, step down, and race again, round after round, until one timer runs out
    more than a network delay (0.1-1 ms here) before the other. The rounds repeat
    roughly half the time without timer jitter; a few ms of event-loop lateness, as
    real hosts have, settles it much sooner. Deterministic: fixed seeds."""
    took = []
    for seed in range(50):
        sim = SimNet(
            [NodeSpec(f"n{i}", i + 1, tiebreak="bsd") for i in range(nodes)],
            seed=seed,
            timer_jitter=jitter,
        )
        for n in sim.nodes:
            sim.start(n.name)
        while not settled(sim, 3.5) and sim.now < limit:
            sim.run_for(1.0)
        assert settled(sim, 3.5), f"seed {seed}: no single master after {limit} s"
        took.append(sim.transitions[-1].at)
    print(
        f"{nodes} equal BSD nodes, timer jitter {jitter * 1000:g} ms: one master after "
        f"median {statistics.median(took):.1f} s, max {max(took):.1f} s"
    )


def test_demoted_fast_backup_against_a_slow_master_does_not_storm() -> None:
    """Found by test_one_master_with_any_timers: n0 advbase 4; n1 advbase 1 (master-down
    3 s, shorter than n0's 4 s interval) and demoted by 1.

    n0 ranks better (demote byte 0 against 1) and is MASTER. n1 used to take it for dead
    (rule 3 on its advert, (3, 1) < (4, 0), or its timer); n0 heard a more demoted
    master and re-advertised at once; n1 yielded with one last advert, which n0 answered
    at once again, and so on: about 1,800 MASTER/BACKUP flips a second, each with both
    hooks, address changes and gratuitous ARPs. Rate-limiting the re-assertion made it a
    flip per interval, as on OpenBSD. Now n1, outranked, gives n0 deadratio of n0's own
    intervals: no flip at all, and n1 still takes over when n0 dies.
    """
    sim = SimNet([NodeSpec("n0", 1, advbase=4), NodeSpec("n1", 2, advbase=1)], seed=0)
    sim.set_demotion("n1", 1)
    sim.start("n0")
    sim.run_until(13.0)
    assert sim.masters() == ["n0"]
    sim.start("n1")
    # n1's first timer (3 s) may run out before n0's first advert (every 4 s) reaches
    # it: one spell as MASTER before it has heard any master, and never again.
    sim.run_until(13.0 + 4.1)
    changes = len(sim.transitions)
    sim.run_until(60.0)
    assert sim.masters() == ["n0"]
    assert sim.transitions[changes:] == []
    sim.crash("n0")
    sim.run_until(60.0 + 3 * 4 + 0.1)
    assert sim.masters() == ["n1"]


def test_demoted_backup_on_the_timeout_boundary_does_not_flap() -> None:
    """Found by test_one_master_with_any_timers: n0 advbase 2; n1 advbase 1, deadratio 2
    (master-down 2 s, the same as n0's 2 s interval), demotion 7 from the start. n0 is
    MASTER (less demoted). n1 does not take over on receipt, (2, 7) is not below (2, 0),
    but its timer used to run out just as n0's next advert was due: MASTER, then n0
    re-advertised and n1 yielded, about once per interval (FreeBSD and OpenBSD do the
    same). Outranked, n1 now waits 2 x 2 s."""
    sim = SimNet([NodeSpec("n0", 1, advbase=2), NodeSpec("n1", 2, advbase=1, deadratio=2)], seed=0)
    sim.set_demotion("n1", 7)
    sim.start("n0")
    sim.start("n1")
    sim.run_until(30.0)
    assert sim.masters() == ["n0"]
    changes = len(sim.transitions)
    sim.run_until(120.0)
    assert sim.transitions[changes:] == []


# -- the simulator itself ------------------------------------------------------------


def test_same_seed_same_run_and_another_seed_another() -> None:
    def transitions(seed: int) -> list[tuple[float, str, State]]:
        lossy = LinkParams(loss=0.3, delay_min=0.0, delay_max=0.05, dup=0.2)
        sim = SimNet(
            [NodeSpec(f"n{i}", i + 1, advskew=0, tiebreak="bsd") for i in range(4)],
            seed=seed,
            network=lossy,
        )
        for n in sim.nodes:
            sim.start(n.name)
        sim.run_until(120.0)
        return [(t.at, t.node, t.new) for t in sim.transitions]

    assert transitions(1) == transitions(1)
    assert transitions(1) != transitions(2)


def test_loss_delay_and_duplication_are_as_configured() -> None:
    net = LinkParams(loss=0.25, delay_min=0.01, delay_max=0.03, dup=0.1)
    sim = SimNet([NodeSpec("a", 1), NodeSpec("b", 2, advskew=100)], seed=3, network=net)
    sim.start("a")
    sim.run_until(3.5)  # a is MASTER (no preempt, b starts later)
    assert sim.masters() == ["a"]
    sim.start("b")
    sim.run_until(2000.0)
    a, b = sim.node("a"), sim.node("b")
    sent = a.adverts_sent
    assert sent > 1900
    # b receives about (1 - loss) * (1 + dup) of what a sends.
    assert abs(b.adverts_received / sent - 0.75 * 1.1) < 0.05
    assert abs(sim.duplicated / (0.75 * sent) - 0.1) < 0.03
    # 25 % loss never starves b for three intervals in a row often enough to matter, but
    # when it does b takes over: that is what the loss is for.
    assert sim.lost > 0.2 * sent


def test_delay_is_applied() -> None:
    net = LinkParams(delay_min=0.04, delay_max=0.04)
    sim = SimNet([NodeSpec("a", 1), NodeSpec("b", 2, advskew=100)], seed=0, network=net)
    sim.start("a")
    sim.start("b")
    sim.run_until(10.0)
    sim.stop("a")  # the bow-out reaches b 40 ms later
    sim.run_for(0.039)
    assert sim.masters() == []
    sim.run_for(0.002)
    assert sim.masters() == ["b"]


def test_partition_makes_a_split_brain_and_heal_ends_it() -> None:
    sim = SimNet([NodeSpec("a", 1), NodeSpec("b", 2, advskew=100)], seed=0)
    sim.start("a")
    sim.start("b")
    sim.run_until(10.0)
    sim.partition(["a"])
    sim.run_until(20.0)
    assert sorted(sim.masters()) == ["a", "b"]
    assert sim.max_masters == 2
    sim.heal()
    sim.run_until(22.5)
    assert sim.masters() == ["a"]
    assert sim.holders() == ["a"]


def test_crash_keeps_addresses_until_a_restart_releases_them() -> None:
    sim = SimNet([NodeSpec("a", 1), NodeSpec("b", 2, advskew=100)], seed=0)
    sim.start("a")
    sim.start("b")
    sim.run_until(10.0)
    sim.crash("a")
    sim.run_until(20.0)
    a = sim.node("a")
    assert sim.masters() == ["b"]
    assert a.holds_addresses  # kill -9 left them configured
    assert sim.holders(running_only=False) == ["a", "b"]
    sim.restart("a")
    assert not a.holds_addresses  # the fresh machine's BACKUP removed them
    assert a.incarnation == 2
    sim.run_until(40.0)
    assert sim.masters() == ["b"]  # no preempt


def test_link_down_is_init_and_demotion_survives_a_restart() -> None:
    sim = SimNet(
        [NodeSpec("a", 1, preempt=True), NodeSpec("b", 2, advskew=100, preempt=True)], seed=0
    )
    sim.start("a")
    sim.start("b")
    sim.run_until(10.0)
    sim.set_link("a", False)
    assert sim.node("a").state is State.INIT
    sim.run_until(15.0)
    assert sim.masters() == ["b"]
    sim.set_demotion("a", 200)
    sim.set_link("a", True)
    sim.restart("a")
    sim.run_until(30.0)
    assert sim.node("a").machine.demotion == 200
    assert sim.masters() == ["b"]  # a is more demoted, preempt or not
    sim.set_demotion("a", 0)
    sim.run_until(33.0)
    assert sim.masters() == ["a"]


def test_vrrp_release_hands_over_after_skew_time() -> None:
    sim = SimNet(
        [NodeSpec("a", 1, "vrrp", priority=200), NodeSpec("b", 2, "vrrp", priority=100)],
        seed=0,
    )
    sim.start("a")
    sim.start("b")
    sim.run_until(10.0)
    assert sim.masters() == ["a"]
    sim.stop("a")
    sim.run_for(0.4)  # Skew_Time for priority 100: 156/256 s
    assert sim.masters() == []
    sim.run_for(0.3)
    assert sim.masters() == ["b"]


def test_throughput() -> None:
    """A 2-node CARP cluster for 1000 simulated minutes, one failover an hour: every
    event happens (one timer and one delivery per advert interval, and each failover),
    so a simulated day is cheap. About 0.8 s of wall time on a 2-core machine (some
    75,000 times real time, 180,000 events), printed; the wall time is not asserted, as
    a loaded machine would make that a flaky benchmark rather than a check."""
    sim = SimNet([NodeSpec("a", 1, preempt=True), NodeSpec("b", 2, advskew=100)], seed=0)
    sim.start("a")
    sim.start("b")
    minutes = 1000
    for hour in range(1, minutes // 60 + 1):
        sim.at(hour * 3600.0 - 1800.0, partial(sim.crash, "a"))
        sim.at(hour * 3600.0 - 1700.0, partial(sim.restart, "a"))
    wall = time.perf_counter()
    sim.run_until(minutes * 60.0)
    wall = time.perf_counter() - wall
    assert sim.now == minutes * 60.0
    # Every advert interval: one timer and one delivery, give or take the failovers.
    assert sim.events > 1.9 * minutes * 60
    assert sim.masters() == ["a"]
    assert sum(t.new is State.MASTER for t in sim.transitions) == 2 * (minutes // 60) + 1
    ratio = minutes * 60 / wall
    print(f"{minutes} simulated minutes, {sim.events} events in {wall:.2f} s: {ratio:,.0f}x")
