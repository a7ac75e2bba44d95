"""/metrics: read back with the client library's own parser and checked by promtool."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fakes import FakeNetlink, FakePorts, config, install
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from carpd.core.model import State
from carpd.daemon.runtime.runtime import Daemon
from carpd.web.metrics import registry

PASSWORD = "never-in-metrics"


def exposition(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    install()
    text = f'name = "lan"\nvhid = 7\npass = "{PASSWORD}"\naddresses = ["192.0.2.100/24"]\n'
    text += 'groups = ["uplink"]\n'
    daemon = Daemon(config(tmp_path, text), FakePorts(FakeNetlink()))

    async def main() -> None:
        await daemon.start()
        daemon.force_state("lan", State.MASTER)
        await daemon.settle()

    asyncio.run(main())
    return generate_latest(registry(daemon.view)).decode()


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def test_the_metrics_say_state_roles_and_transitions_with_stable_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = exposition(tmp_path, monkeypatch)
    m = samples(text)
    lan = {"name": "lan", "vhid": "7", "carpdev": "eth0"}
    assert m["carpd_vhid_state"] == [(lan, 2.0)]  # MASTER
    assert m["carpd_vhid_is_master"] == [(lan, 1.0)]
    assert ({**lan, "from": "BACKUP", "to": "MASTER"}, 1.0) in m["carpd_transitions_total"]
    assert m["carpd_maintenance"] == [({}, 0.0)]
    assert m["carpd_adverts_sent_total"][0][0] == lan
    assert m["carpd_last_transition_timestamp_seconds"][0][1] > 1.7e9
    # A failover changes values, never series: no counter is labelled with a state.
    for name, rows in m.items():
        for labels, _ in rows:
            assert "state" not in labels, name
    assert PASSWORD not in text


def test_every_known_demotion_source_is_there_at_0_so_alerts_need_no_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = samples(exposition(tmp_path, monkeypatch))
    demotion = {labels["source"]: value for labels, value in m["carpd_demotion"]}
    assert demotion == {
        "maintenance": 0.0,
        "service disruption": 0.0,
        "startup": 0.0,
        "send errors": 0.0,
        "carpdev eth0 down": 0.0,  # ifdown, for each carpdev
        "group carp": 0.0,  # every vhid's group, and the configured ones
        "group uplink": 0.0,
    }


def test_a_demoting_source_and_group_show_their_amounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install()
    text = 'name = "lan"\nvhid = 7\npass = "x"\naddresses = ["192.0.2.100/24"]\n'
    ports = FakePorts(FakeNetlink())
    daemon = Daemon(config(tmp_path, text + 'groups = ["uplink"]\n'), ports)

    async def main() -> None:
        await daemon.start()
        ports.watcher.set("eth0", up=False)
        await ports.watcher.heard()
        daemon.adjust_group("uplink", 128)

    asyncio.run(main())
    m = samples(generate_latest(registry(daemon.view)).decode())
    demotion = {labels["source"]: value for labels, value in m["carpd_demotion"]}
    assert demotion["carpdev eth0 down"] == 240.0
    assert demotion["group uplink"] == 128.0
    assert demotion["maintenance"] == 0.0


def test_promtool_accepts_the_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("needs promtool (Debian package prometheus; scripts/setup)")
    text = exposition(tmp_path, monkeypatch)
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout + r.stderr == ""  # not even a lint warning


def test_the_docs_scrape_example_is_a_prometheus_config(tmp_path: Path) -> None:
    """docs/status-page.md's scrape_configs with basic_auth, as promtool reads it (the
    lab scrapes a MASTER with it: tests/lab/test_web_live.py)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("needs promtool (Debian package prometheus; scripts/setup)")
    docs = (Path(__file__).parents[2] / "docs" / "status-page.md").read_text()
    block = re.search(r"```yaml\n(scrape_configs:.*?)```", docs, re.S)
    assert block is not None, "docs/status-page.md has no scrape example"
    assert "basic_auth:" in block.group(1) and "password_file:" in block.group(1)
    config = tmp_path / "prometheus.yml"
    config.write_text(block.group(1))
    r = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
