"""The doctor: every check, on this node, in order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from carpd.config import ConfigError
from carpd.config.load import load_config
from carpd.doctor import daemon, node, pair
from carpd.doctor.report import Finding, Report


def examine(
    config_path: str,
    status: Mapping[str, Any] | None,
    unreachable: str | None = None,
    host: node.Host | None = None,
) -> Report:
    """``status``: the running carpd's (``carpctl status --json``), None if it could not
    be read (``unreachable`` says why): its checks are skipped, the others run."""
    host = host or node.Host()
    running = status is not None
    carpd = (
        f"running (pid {status.get('pid')}, node {status.get('node')})"
        if status is not None
        else f"not reachable ({unreachable}): only the offline checks ran"
    )
    try:
        config = load_config(config_path)
    except ConfigError as e:
        fix = f"carpd --config {config_path} --check, and the key it names"
        finding = Finding("config", None, False, str(e), fix)
        return Report(config_path, carpd, running, (finding,))
    found: list[Finding] = [
        Finding("config", None, True, f"loads: {len(config.carp)} vhid(s), none twice on a carpdev")
    ]
    ruleset = host.ruleset()
    own = node.own_addresses(config, host)
    found += node.carp_filter(config, ruleset, own)
    found += node.snat_adverts(config, ruleset, own)
    found += node.tcp_loose(config, host)
    found += node.conntrackd_port(config, host, ruleset)
    found += node.rp_filter(config, host)
    found += node.arp(config, host, running)
    found += node.bridges(config, host)
    found += daemon.advert_checks(status) if status is not None else daemon.not_running()
    found += pair.pair_checks(status) if status is not None else pair.skipped(daemon.NEEDS)
    return Report(config_path, carpd, running, tuple(found))
