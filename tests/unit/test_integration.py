"""The integration contract (daemon/integration.py): one registration point, typed
reports, and status (JSON and carpctl's text) rendered from them with today's shape."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeNetlink, FakePorts, install, takeover
from fakes import config as carp_config

from carpd.config import Config, load_config
from carpd.ctl.main import format_status
from carpd.daemon.effects.conntrack import StateSyncReport
from carpd.daemon.effects.pool import Pools
from carpd.daemon.observers.configsync import ConfigSyncReport
from carpd.daemon.observers.ifstated import IfstatedReport, IfstatedTest
from carpd.daemon.registry import Needs, effects_for
from carpd.daemon.runtime.runtime import Daemon
from carpd.daemon.seam.events import Lifecycle
from carpd.daemon.seam.integration import Integration, Integrations, Report
from carpd.daemon.seam.lanes import HostWork, Step
from carpd.daemon.seam.view import NodeView, VhidView, to_json, when
from carpd.linux.conntrackd import ConntrackdStats
from carpd.linux.realtime import RealtimeReport

VHID = '[[carp]]\nvhid = 1\ncarpdev = "eth0"\npass = "x"\naddresses = ["192.0.2.100/24"]\n'
POOL = """
[[pool]]
name = "web"
carpdev = "eth0"
address = "192.0.2.80/24"
nodes = ["3:0", "4:100", "5:200"]
pass = "s3cret"
"""


class Demote:
    """No demotion lever is pulled here."""

    def state_sync_demotion(self, amount: int, why: str) -> None:
        pass

    def scoped_demotion(self, *args: object) -> None:
        pass


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "carpd.toml"
    path.write_text(f'[global]\nstate_dir = "{tmp_path}/state"\n{text}')
    return load_config(path)


def node(reports: dict[str, Report]) -> NodeView:
    return NodeView(
        node="fw1",
        pid=1,
        config="carpd.toml",
        maintenance=False,
        demotion={},
        groups={},
        services=None,
        vhids=(),
        dropped={},
        reports=reports,
    )


# -- a trivial integration: no config table, one module (here), one registration ------


@dataclass(frozen=True, slots=True)
class ToyReport:
    beats: int

    def to_json(self) -> dict[str, Any]:
        return {"beats": self.beats}

    def lines(self) -> list[str]:
        return [f"toy: {self.beats} beat(s)"]


class Toy:
    """An effect that counts the host actions it saw, and shows the count."""

    name = "toy"

    def __init__(self) -> None:
        self.beats = 0

    def before(self, work: HostWork, vhid: VhidView) -> Sequence[Step]:
        self.beats += 1
        return ()

    def after(self, work: HostWork, vhid: VhidView) -> Sequence[Step]:
        return ()

    def report(self) -> ToyReport:
        return ToyReport(self.beats)

    async def close(self) -> None:
        pass


def test_a_trivial_integration_shows_in_status_from_its_one_registration(
    tmp_path: Path,
) -> None:
    """Registered through Needs.extra only (the effects registry.effects_for returns are the
    registry), the toy's report is in the view, the JSON under its name, and carpctl's
    text, with no line anywhere else naming it."""
    toy = Toy()
    needs = Needs(None, lambda _: None, Demote(), extra=(toy,))  # type: ignore[arg-type]
    effects = effects_for(load(tmp_path, VHID), [], needs)
    assert isinstance(toy, Integration)
    registry = Integrations(lambda: effects)
    toy.beats = 2
    view = node(registry.reports())
    assert view.reports == {"toy": ToyReport(2)}
    status = to_json(view, text=True)
    assert status["toy"] == {"beats": 2}
    assert format_status(status).splitlines()[-1] == "toy: 2 beat(s)"
    assert "report_lines" not in to_json(view)  # --json and /api/status: as they were


def test_a_trivial_integration_shows_in_the_running_daemons_status(tmp_path: Path) -> None:
    """The same toy, given to the real Daemon as its extra effect: Daemon.view() has its
    report after a takeover, `carpctl status --json` its JSON and the text its line."""
    install()
    toy = Toy()
    cfg = carp_config(tmp_path, 'vhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n')
    daemon = Daemon(cfg, FakePorts(FakeNetlink()), effects=(toy,))
    takeover(daemon, 0.0)
    beats = toy.beats
    assert beats >= 2  # the start-up's address removal, then the takeover's addresses
    assert daemon.view().reports["toy"] == ToyReport(beats)
    status = to_json(daemon.view(), text=True)
    assert status["toy"] == {"beats": beats}
    assert f"toy: {beats} beat(s)" in format_status(status).splitlines()


def test_a_reload_reaches_the_integrations_beside_the_lanes_from_daemon_reload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """ifstated and the real-time policy are made by Daemon.start and told each config by
    Daemon.reload (not by serve): a changed ifstated file starts a new runner at once,
    one broken on disk keeps the running one, a config without [ifstated] stops it, and
    Daemon.stop closes them. Status shows them in registration order."""
    install()
    rules = tmp_path / "ifstated.conf"
    rule = "state {} {{\n\tif eth0.link.down\n\t\tset-state {}\n}}\n"
    rules.write_text(rule.format("one", "one"))
    vhid = 'vhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n'
    with_file = vhid + f'\n[ifstated]\nfile = "{rules}"\n'
    daemon = Daemon(carp_config(tmp_path, with_file), FakePorts(FakeNetlink()))

    def shown() -> tuple[str | None, ...]:
        status = to_json(daemon.view())
        return tuple(None if status[k] is None else status[k].get("state", "on")
                     for k in ("ifstated", "realtime"))  # fmt: skip

    async def begun(state: str) -> tuple[str | None, ...]:
        """Once the runner's start (a task of its own) entered ``state``."""
        for _ in range(1000):
            if shown()[0] == state:
                break
            await asyncio.sleep(0)
        return shown()

    order: list[str] = []

    async def main() -> list[tuple[str | None, ...]]:
        await daemon.start()
        daemon.publisher.publish(Lifecycle("ready"))
        seen = [await begun("one")]
        order.extend(daemon.integrations.reports())  # no drift file: no config_sync
        rules.write_text(rule.format("two", "two"))  # read again on a reload, as ifstated does
        await daemon.reload(carp_config(tmp_path, with_file))
        seen.append(await begun("two"))
        rules.write_text("state {\n")  # broken after the config was checked
        await daemon.reload(daemon.config)
        seen.append(shown())
        await daemon.reload(carp_config(tmp_path, vhid))
        seen.append(shown())
        await daemon.stop()
        return seen

    assert asyncio.run(main()) == [("one", "on"), ("two", "on"), ("two", "on"), (None, "on")]
    assert "ifstated: " in caplog.text and "keeping the running one" in caplog.text
    assert order == ["addresses", "ifstated", "realtime"]


def test_status_keeps_its_keys_while_an_integration_is_off() -> None:
    """The page and scripts read state_sync, pools, ifstated and realtime as null when
    off, as before the reports were typed."""
    status = to_json(node({}))
    assert {k: status[k] for k in ("state_sync", "pools", "ifstated", "realtime")} == dict.fromkeys(
        ("state_sync", "pools", "ifstated", "realtime")
    )
    assert "report_lines" not in status


def test_each_report_renders_what_status_showed_before(tmp_path: Path) -> None:
    """The JSON under each key and carpctl's lines, as the hand-written readers made them."""
    stats = ConntrackdStats(4, 200, 3, 0, 0, 116, 9)
    sync = StateSyncReport(True, "done", "up", None, (), stats, 42, True)
    pools = Pools(load(tmp_path, POOL), None)  # type: ignore[arg-type]
    pools.pools["web"].mine.update({0, 2})
    ifs = IfstatedReport(
        "/etc/ifstated.conf", "demoted", (IfstatedTest("ping -c1 x", 10, False, True),)
    )
    rt = RealtimeReport(10, "normal", "Operation not permitted", 2, 1.0)
    drift = ConfigSyncReport.read(
        {"checked": 1_700_000_000, "peer": "root@fw2", "differ": ["/etc/a"],
         "only_here": ["/etc/c"], "only_peer": ["/etc/b"], "error": None}
    )  # fmt: skip
    pools_report = pools.report()
    assert pools_report is not None
    reports: dict[str, Report] = {
        "state_sync": sync, "pools": pools_report, "ifstated": ifs, "config_sync": drift,
        "realtime": rt,
    }  # fmt: skip
    status = to_json(node(reports), text=True)
    assert status["state_sync"] == {
        "running": True,
        "bulk": "done",
        "link": "up",
        "stall": None,
        "demoted_by": [],
        "stats": {
            "internal": 4, "external": 200, "send_errors": 3, "recv_errors": 0,
            "malformed": 0, "lost": 116, "received": 9,
        },
        "started_by_carpd": 42,
        "stop_with_carpd": True,
    }  # fmt: skip
    assert status["pools"] == {
        "web": {
            "name": "web",
            "address": "192.0.2.80/24",
            "mode": "ip",
            "mac": "01:00:5e:00:01:03",
            "carpdev": "eth0",
            "buckets": 3,
            "serving": [0, 2],
            "vhids": ["web-3", "web-5"],
        }
    }
    assert status["ifstated"] == {
        "file": "/etc/ifstated.conf",
        "state": "demoted",
        "tests": [{"test": "ping -c1 x", "every": 10, "ok": False, "active": True}],
    }
    assert status["config_sync"] == {
        "peer": "root@fw2",
        "checked": when(1_700_000_000),
        "in_sync": False,
        "drift": 3,
        "differ": ["/etc/a"],
        "only_here": ["/etc/c"],
        "only_peer": ["/etc/b"],
        "error": None,
    }
    assert status["realtime"] == {
        "realtime_priority": 10,
        "policy": "normal",
        "refused": "Operation not permitted",
        "budget_exceeded": 2,
        "budget_s": 1.0,
    }
    assert status["report_lines"] == [
        "state sync: conntrackd running, bulk resync done, sync link up; ours 4, the peer's "
        "200; lost 116, malformed 0, send errors 3, receive errors 0",
        "\tconntrackd (pid 42) was started by carpd and stops with it (stop_with_carpd)",
        "pool web: 192.0.2.80/24 on eth0, balancing ip (01:00:5e:00:01:03): serving 2 of 3 "
        "buckets: 0 (web-3), 2 (web-5)",
        'ifstated: state demoted; "ping -c1 x" FAILING',
        f"config sync: 3 file(s) differ from root@fw2 (checked {when(1_700_000_000)}): "
        "/etc/a, /etc/c (only here), /etc/b (only on the peer)",
        "realtime: realtime_priority 10 refused (Operation not permitted): normal policy; "
        "back to the normal policy 2 time(s) after 1 s of CPU without sleeping",
    ]


def test_carpctl_escapes_each_reports_line_so_none_forges_another() -> None:
    """A report line holds words from a peer or a file (a drifted path, an ifstated
    test): a newline or an escape in it is shown escaped, never as a line of its own."""
    drift = ConfigSyncReport.read(
        {"checked": None, "peer": "fw2", "differ": ["/etc/a\nvhid1: MASTER\x1b[2J"]}
    )
    text = format_status(to_json(node({"config_sync": drift}), text=True))
    assert text.splitlines() == [
        "config sync: 1 file(s) differ from fw2 (checked None): /etc/a\\nvhid1: MASTER\\x1b[2J"
    ]
