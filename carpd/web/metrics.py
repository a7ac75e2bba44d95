"""Prometheus metrics from the daemon's view, with the official client library.

Labels are stable: a vhid is ``name``, ``vhid`` and ``carpdev``, never its state, so a
failover changes values, not series (keepalived exporters label counters with the state
and start new series on every transition). ``carpd_vhid_state`` is a number:

    0 INIT   1 BACKUP   2 MASTER   3 DISABLED (taken down: carpctl down, or CARP disabled)

The only labels that name states are ``from`` and ``to`` of ``carpd_transitions_total``:
at most nine series per vhid, and exactly what they count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from carpd import __version__
from carpd.core.demotion import (
    MAINTENANCE,
    SENDERR,
    SERVICES,
    STARTUP,
    STATE_SYNC,
    group_source,
    ifdown_source,
)
from carpd.core.model import State
from carpd.daemon.seam.integration import Sampled
from carpd.daemon.seam.view import NodeView, VhidView

STATE_VALUE = {State.INIT: 0, State.BACKUP: 1, State.MASTER: 2}
DISABLED = 3
VHID_LABELS = ["name", "vhid", "carpdev"]


def _labels(v: VhidView) -> list[str]:
    return [v.name, str(v.cfg.vhid), v.cfg.carpdev]


class ViewCollector(Collector):
    def __init__(self, view: Callable[[], NodeView]) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        view = self.view()
        info = GaugeMetricFamily("carpd_info", "carpd's version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        yield from self._vhids(view)
        demotion = GaugeMetricFamily(
            "carpd_demotion",
            "Demotion by source (0: not demoted); group NAME demotes that group's vhids only",
            labels=["source"],
        )
        for source, amount in sorted(demotion_sources(view).items()):
            demotion.add_metric([source], amount)
        yield demotion
        yield GaugeMetricFamily(
            "carpd_maintenance", "1 while persistent maintenance mode is on",
            value=int(view.maintenance),
        )  # fmt: skip
        yield from self._reports(view)

    def _vhids(self, view: NodeView) -> Iterator[Metric]:
        def gauge(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=VHID_LABELS)

        def counter(name: str, doc: str, extra: list[str] | None = None) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, labels=VHID_LABELS + (extra or []))

        state = gauge("carpd_vhid_state", "0 INIT, 1 BACKUP, 2 MASTER, 3 DISABLED")
        master = gauge("carpd_vhid_is_master", "1 while this node is MASTER of the vhid")
        demotion = gauge("carpd_vhid_demotion", "The demotion this vhid advertises")
        flapping = gauge("carpd_vhid_flapping", "1 while the vhid flaps (see the log)")
        last = gauge("carpd_last_transition_timestamp_seconds", "When the vhid last changed state")
        sent = counter("carpd_adverts_sent", "Adverts the kernel took from us")
        received = counter("carpd_adverts_received", "Valid adverts from other nodes")
        rejected = counter("carpd_adverts_rejected", "Adverts refused, by reason", ["reason"])
        transitions = counter("carpd_transitions", "State changes", ["from", "to"])
        steps = counter("carpd_host_step_runs", "Host steps (addresses, hooks, ...)", ["step"])
        failed = counter("carpd_host_step_failures", "Host steps that failed", ["step"])
        late = counter("carpd_host_step_late", "Host steps past their deadline", ["step"])
        for v in view.vhids:
            labels = _labels(v)
            state.add_metric(labels, STATE_VALUE[v.state] if v.enabled else DISABLED)
            master.add_metric(labels, int(v.state is State.MASTER))
            demotion.add_metric(labels, v.demotion)
            flapping.add_metric(labels, int(v.flapping))
            if v.last_transition is not None:
                last.add_metric(labels, v.last_transition)
            sent.add_metric(labels, v.counters.adverts_sent)
            received.add_metric(labels, v.counters.adverts_received)
            for reason, n in sorted(v.counters.dropped.items()):
                rejected.add_metric([*labels, reason], n)
            for (old, new), n in sorted(v.transition_counts.items()):
                transitions.add_metric([*labels, old, new], n)
            for s in v.host_steps:
                steps.add_metric([*labels, s.name], s.runs)
                failed.add_metric([*labels, s.name], s.failed)
                late.add_metric([*labels, s.name], s.late)
        for dev, dropped in sorted(view.dropped.items()):  # before a vhid was known
            for reason, n in sorted(dropped.items()):
                rejected.add_metric(["", "", dev, reason], n)
        yield from (state, master, demotion, flapping, last, sent, received, rejected)
        yield from (transitions, steps, failed, late)

    def _reports(self, view: NodeView) -> Iterator[Metric]:
        """Each integration's figures, as its report gives them (Sampled): one family per
        name, with a sample per label set."""
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        for report in view.reports.values():
            if not isinstance(report, Sampled):
                continue
            for s in report.samples():
                family = families.get(s.name)
                if family is None:
                    kind = GaugeMetricFamily if s.kind == "gauge" else CounterMetricFamily
                    labels = [k for k, _ in s.labels]
                    family = families[s.name] = kind(s.name, s.doc, labels=labels)
                family.add_metric([v for _, v in s.labels], s.value)
        yield from families.values()


def demotion_sources(view: NodeView) -> dict[str, int]:
    """Every source the node knows of, at 0 unless it demotes now: the node-wide ones
    (a carpdev's link for each carpdev, state sync with [conntrackd]) and each interface
    group's carpdemote count."""
    known = [MAINTENANCE, SERVICES, STARTUP, SENDERR]
    known += [ifdown_source(v.cfg.carpdev) for v in view.vhids]
    known += [STATE_SYNC] if "state_sync" in view.reports else []
    sources = {**dict.fromkeys(known, 0), **view.demotion}
    sources.update((group_source(g), n) for g, n in view.groups.items())
    return sources


def registry(view: Callable[[], NodeView]) -> CollectorRegistry:
    """A registry of its own (not the library's global one, with its process metrics)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(ViewCollector(view))
    return reg
