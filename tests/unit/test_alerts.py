"""packaging/prometheus's alerting rules and packaging/grafana's dashboard: the rules pass
`promtool check rules` and their own `promtool test rules` (synthetic series, each alert
firing when it should and silent when it should not), a broken rule fails that test, and
every metric the rules and the dashboard's panels name is one carpd exports: read from
/metrics of a real daemon on fake ports with conntrackd (a stand-in), a config sync
report, an address put back, a drill report (written by carpctl's own code) and a
[[cluster.peer]] that answers over HTTPS with a pinned certificate, plus Prometheus's own
`up`."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from fakes import FakeNetlink, FakePorts, config, install
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from carpd.core.model import State
from carpd.ctl import drill
from carpd.daemon.runtime.runtime import Daemon
from carpd.daemon.seam.view import to_json
from carpd.web.metrics import registry

ROOT = Path(__file__).parents[2]
RULES = ROOT / "packaging" / "prometheus" / "carpd-alerts.yml"
RULE_TESTS = ROOT / "packaging" / "prometheus" / "carpd-alerts.test.yml"
DASHBOARD = ROOT / "packaging" / "grafana" / "carpd-dashboard.json"
STATS = (Path(__file__).parent / "data" / "conntrackd-s-1.4.7.txt").read_text()
# Labels Prometheus gives every series of a target: its job and instance, and the
# `cluster` the rules ask a user to set on each pair's targets.
TARGET_LABELS = {"job", "instance", "cluster"}
# Series Prometheus makes itself for each target.
PROMETHEUS_SERIES = {"up": TARGET_LABELS}
# Current Grafana dashboards (10.4 to 11.x) are at schema 39.
SCHEMA_VERSION = 39


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("needs promtool (Debian package prometheus; scripts/setup)")
    return found


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60)


# -- what carpd exports ------------------------------------------------------------


def certificate(tmp_path: Path) -> tuple[Path, Path, str]:
    """A self-signed certificate for the peer (openssl) and its SHA-256 to pin."""
    cert, key = tmp_path / "peer.pem", tmp_path / "peer.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=fw2", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(cert)],
        check=True, capture_output=True, text=True, timeout=30,
    ).stdout  # fmt: skip
    return cert, key, out.strip().split("=", 1)[1]  # "sha256 Fingerprint=AB:CD:..."


def exported(tmp_path: Path) -> dict[str, set[str]]:
    """Every series name /metrics gives (a counter's with its _total), with its labels,
    from a daemon that has every report with samples: [conntrackd] (a stand-in that
    answers `-s` as conntrackd 1.4.7 does), the file `carpctl sync status` writes, a
    MASTER's address removed by "another program" and put back, the last drill's report
    (a passed one, so that its last success is there too, saved by carpctl's own
    drill.save) and a [[cluster.peer]] "fw2": an HTTPS server on loopback, its
    certificate pinned, that answers /api/status with this very daemon's status, as a
    peer's carpd would with its own (so the peer has a vhid, and a Date header)."""
    install()
    binary = tmp_path / "conntrackd"
    (tmp_path / "stats.txt").write_text(STATS)
    binary.write_text(f'#!/bin/sh\n[ "$3" = -s ] && cat {tmp_path}/stats.txt\nexit 0\n')
    binary.chmod(0o755)
    conf = tmp_path / "conntrackd.conf"
    conf.write_text(f"General {{\n\tLockFile {tmp_path / 'conntrackd.lock'}\n}}\n")
    (tmp_path / "state" / "sync").mkdir(parents=True)
    drift = {"checked": time.time(), "peer": "root@fw2", "differ": ["/etc/a"], "error": None}
    (tmp_path / "state" / "sync" / "status.json").write_text(json.dumps(drift))
    drill.save(tmp_path / "state", {"result": "passed", "why": None, "finished": time.time(),
                                    "peer": "fw2"})  # fmt: skip
    cert, key, fingerprint = certificate(tmp_path)
    (tmp_path / "fw2.pass").write_text("a password\n")
    listening = socket.create_server(("127.0.0.1", 0))  # its port, for the config
    port = listening.getsockname()[1]
    vip = ipaddress.ip_interface("192.0.2.100/24")
    table = f'name = "lan"\nvhid = 7\npass = "x"\naddresses = ["{vip}"]\n'
    table += f'\n[conntrackd]\nenabled = true\nbinary = "{binary}"\nconfig = "{conf}"\n'
    # Read every 60 s: the one read that counts is the refresh below.
    table += "\n[cluster]\ninterval = 60.0\n"
    table += f'\n[[cluster.peer]]\nname = "fw2"\nurl = "https://127.0.0.1:{port}"\n'
    table += f'passfile = "{tmp_path / "fw2.pass"}"\nfingerprint = "{fingerprint}"\n'
    ports = FakePorts(FakeNetlink())
    daemon = Daemon(config(tmp_path, table), ports)

    async def status(request: web.Request) -> web.StreamResponse:
        return web.json_response(to_json(daemon.view()))

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/api/status", status)
        runner = web.AppRunner(app, shutdown_timeout=1.0)
        await runner.setup()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        await web.SockSite(runner, listening, ssl_context=context).start()
        try:
            await run()
        finally:
            await runner.cleanup()

    async def run() -> None:
        await daemon.start()
        await daemon.settle()
        await daemon.integrations.refresh()  # every peer read now (carpctl status --fresh)
        daemon.force_state("lan", State.MASTER)
        await daemon.settle()
        await ports.watcher.heard()
        ports.watcher.set_address(vip, False)  # another program's `ip addr del`
        await ports.watcher.heard()
        await daemon.settle()
        await ports.watcher.heard()
        await daemon.stop()

    try:
        asyncio.run(main())
    finally:
        listening.close()
    text = generate_latest(registry(daemon.view)).decode()
    names: dict[str, set[str]] = dict(PROMETHEUS_SERIES)
    for family in text_string_to_metric_families(text):
        if family.type == "counter":  # declared even with no sample yet (no drop so far)
            names.setdefault(family.name + "_total", set())
        for s in family.samples:
            names.setdefault(s.name, set()).update(s.labels)
    # The reports this relies on are there: a conntrackd stand-in that stopped answering
    # or a config sync file no longer read would make the check below vacuous.
    for needed in (
        "carpd_state_sync_external_connections",
        "carpd_config_sync_drift_files",
        "carpd_addresses_restored_total",
        "carpd_drill_last_result",
        "carpd_drill_last_success_timestamp_seconds",
        "carpd_cluster_peer_up",
        "carpd_cluster_peer_clock_skew_seconds",  # only from a peer that answered
        "carpd_cluster_peer_master",
    ):
        assert needed in names, f"{needed} missing from /metrics: {sorted(names)}"
    return names


# -- PromQL: which series an expression names ---------------------------------------

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left"}
KEYWORDS |= {"group_right", "bool", "offset", "inf", "nan"}
SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")


def series_in(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana one, with $variables) selects:
    identifiers left once strings, matchers, ranges, grouping clauses and variables are
    gone, that are neither functions (followed by a parenthesis) nor keywords."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\$\{?\w+\}?", " ", s)
    found = set()
    for m in re.finditer(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*", s):
        if s[m.end() :].lstrip().startswith("(") or m.group().lower() in KEYWORDS:
            continue
        found.add(m.group())
    return found


def matcher_labels(expr: str) -> Iterator[tuple[str, str]]:
    """(metric, label) for each label matcher of each selector."""
    for m in SELECTOR.finditer(expr):
        for label in re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", m.group(2)):
            yield m.group(1), label


def test_series_in_finds_the_metrics_and_nothing_else() -> None:
    expr = (
        'sum by (cluster, name, vhid) (carpd_vhid_is_master{job="carpd", name=~"a|b"}) == 0\n'
        "or increase(carpd_x_total[10m]) > 0 unless carpd_y offset 10m\n"
        "and on (instance, job) (up offset 1h == 1) - time() > 1e3"
    )
    assert series_in(expr) == {"carpd_vhid_is_master", "carpd_x_total", "carpd_y", "up"}
    grafana = 'rate(carpd_z_total{instance=~"$instance"}[$__rate_interval])'
    assert series_in(grafana) == {"carpd_z_total"}
    assert list(matcher_labels(grafana)) == [("carpd_z_total", "instance")]


# -- the rules ---------------------------------------------------------------------


def rule_exprs(text: str) -> dict[str, str]:
    """Each rule's name and expression, from the file's own layout: `- alert: NAME`, then
    `expr:` on one line or as a block scalar (`>-`) indented below it. Checked against
    promtool's count of the rules, so a rule this misses fails the test."""
    out: dict[str, str] = {}
    lines = text.splitlines()
    name = None
    for i, line in enumerate(lines):
        if m := re.match(r"\s*- alert: (\w+)$", line):
            name = m.group(1)
        elif (m := re.match(r"(\s*)expr: (.*)$", line)) and name is not None:
            indent, value = len(m.group(1)), m.group(2).strip()
            if value in (">-", ">", "|", "|-"):
                block = []
                for more in lines[i + 1 :]:
                    if more.strip() and len(more) - len(more.lstrip()) <= indent:
                        break
                    block.append(more.strip())
                value = " ".join(block)
            out[name] = value
            name = None
    return out


def test_promtool_checks_the_rules_and_each_has_for_severity_and_annotations() -> None:
    r = run_promtool("check", "rules", str(RULES))
    assert r.returncode == 0, r.stdout + r.stderr
    found = re.search(r"SUCCESS: (\d+) rules found", r.stdout)
    assert found is not None, r.stdout
    exprs = rule_exprs(RULES.read_text())
    assert len(exprs) == int(found.group(1)) >= 15
    text = RULES.read_text()
    for name in exprs:
        body = text.split(f"- alert: {name}\n", 1)[1].split("- alert: ", 1)[0]
        assert re.search(r"^\s+for: \d+[smh]\b", body, re.M), name
        assert re.search(r"^\s+severity: (critical|warning|info)$", body, re.M), name
        assert "summary:" in body and "description:" in body, name


def test_the_rules_pass_their_promtool_tests_and_every_alert_is_tested_both_ways() -> None:
    r = run_promtool("test", "rules", str(RULE_TESTS))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout
    tests = RULE_TESTS.read_text()
    fires = set(re.findall(r"alertname: (\w+)\n\s+exp_alerts:\n\s+- exp_labels", tests))
    silent = set(re.findall(r"alertname: (\w+)\n\s+exp_alerts: \[\]", tests))
    alerts = set(rule_exprs(RULES.read_text()))
    assert fires == alerts, alerts ^ fires
    assert silent == alerts, alerts ^ silent


@pytest.mark.parametrize(
    ("alert", "old", "new"),
    [
        # The pair counted by carpdev too: fw1's lan on eth0 and fw2's on eth1 are two
        # vhids, each of one node; the BACKUP's alone has no MASTER.
        ("CarpdVhidNoMaster", "(cluster, name, vhid)", "(cluster, name, vhid, carpdev)"),
        # Without the cluster label: two pairs with the same vhid look like a split brain.
        ("CarpdVhidSplitBrain", "on (cluster, name, vhid)", "on (name, vhid)"),
        # The new-series branch never true: a vhid's first restore goes unseen.
        ("CarpdAddressesRestored", "offset 10m == 1", "offset 10m == 2"),
        # A node whose drills never passed: "and" for "unless" sees only those that did.
        ("CarpdDrillOverdue", "unless on (instance, job)", "and on (instance, job)"),
        # The threshold in hours instead of seconds: overdue after 35 hours.
        ("CarpdDrillOverdue", "> 35 * 86400", "> 35 * 3600"),
        # A skew only one way: the node whose peer is behind never alerts.
        ("CarpdClusterClockSkew", "< -5", "< -50"),
    ],
)
def test_a_broken_rule_fails_its_promtool_tests(
    tmp_path: Path, alert: str, old: str, new: str
) -> None:
    """Each mutation is one a careless edit could make; the rule still passes `promtool
    check rules`, and its tests catch it."""
    text = RULES.read_text()
    expr = rule_exprs(text)[alert]
    mutated = expr.replace(old, new)
    if alert == "CarpdVhidSplitBrain":
        mutated = mutated.replace("sum by (cluster, name, vhid)", "sum by (name, vhid)")
    assert mutated != expr
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line.strip() == f"- alert: {alert}")
    at = next(i for i in range(start, len(lines)) if lines[i].strip().startswith("expr:"))
    end = at + 1
    while lines[end].strip() and not lines[end].strip().startswith("for:"):
        end += 1
    lines[at:end] = [f"        expr: '{mutated}'"]
    (tmp_path / RULES.name).write_text("\n".join(lines))
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    assert run_promtool("check", "rules", str(tmp_path / RULES.name)).returncode == 0
    r = run_promtool("test", "rules", str(tmp_path / RULE_TESTS.name))
    assert r.returncode != 0, r.stdout + r.stderr
    assert f"alertname: {alert}," in r.stderr


def test_the_rules_name_only_metrics_and_labels_carpd_exports(tmp_path: Path) -> None:
    names = exported(tmp_path)
    exprs = rule_exprs(RULES.read_text())
    for alert, expr in exprs.items():
        used = series_in(expr)
        assert used, alert
        assert used <= set(names), f"{alert}: {sorted(used - set(names))} not exported"
        for metric, label in matcher_labels(expr):
            assert label in names[metric] | TARGET_LABELS, f"{alert}: {metric} has no {label}"


# -- the dashboard -----------------------------------------------------------------


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in items:
        yield p
        yield from panels(p.get("panels", []))


def dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_dashboard_is_current_grafana_json_on_a_chosen_datasource() -> None:
    d = dashboard()
    assert d["schemaVersion"] == SCHEMA_VERSION
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["instance"]["type"] == "query"
    assert variables["instance"]["multi"] and variables["instance"]["includeAll"]
    ids = [p["id"] for p in panels(d["panels"])]
    assert len(ids) == len(set(ids))
    graphs = [p for p in panels(d["panels"]) if p["type"] != "row"]
    titles = {p["title"] for p in graphs}
    for wanted in ("State of each vhid, per node", "MASTERs per vhid across the pair",
                   "Demotion by source", "Transitions", "Adverts sent and received",
                   "Adverts rejected, by reason", "Host steps failed and late",
                   "Connections: ours and the peer's", "conntrackd, bulk resync, stall",
                   "Config drift (the last carpctl sync status)",
                   "Addresses put back, taken away, failed", "Last drill",
                   "Since the last drill that passed", "Peers answering",
                   "Clock skew to each peer", "MASTER as each peer says"):  # fmt: skip
        assert wanted in titles, wanted
    for p in graphs:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"], p["title"]
        x, w = p["gridPos"]["x"], p["gridPos"]["w"]
        assert x >= 0 and x + w <= 24, p["title"]


def test_the_dashboard_names_only_metrics_and_labels_carpd_exports(tmp_path: Path) -> None:
    names = exported(tmp_path)
    d = dashboard()
    exprs = [(p["title"], t["expr"]) for p in panels(d["panels"]) for t in p.get("targets", [])]
    for v in d["templating"]["list"]:
        if v["type"] == "query":
            query = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.fullmatch(r"label_values\((.*), (\w+)\)", query)
            assert m is not None, query
            exprs.append((f"variable {v['name']}", m.group(1)))
            assert m.group(2) in TARGET_LABELS
    assert len(exprs) > 20
    for where, expr in exprs:
        used = series_in(expr)
        assert used, f"{where}: {expr}"
        assert used <= set(names), f"{where}: {sorted(used - set(names))} not exported"
        for metric, label in matcher_labels(expr):
            assert label in names[metric] | TARGET_LABELS, f"{where}: {metric} has no {label}"
    # The pair's own panels: every vhid metric carpd has is on the dashboard.
    shown = set().union(*(series_in(e) for _, e in exprs))
    vhid_metrics = {n for n, labels in names.items() if {"name", "vhid"} <= labels}
    assert vhid_metrics - {"carpd_last_transition_timestamp_seconds"} <= shown
