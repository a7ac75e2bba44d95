"""The takeover plan (carpd.daemon.seam.plan): the host steps of a takeover, a release and a
stop, top to bottom, for a config that uses every integration, from the core's own
drains. The tables here are the ones in docs/architecture.md: change both together."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path
from typing import Any

from fakes import FakeNetlink, config

from carpd.core.demotion import Demotion
from carpd.core.model import Reason, State
from carpd.daemon.registry import Needs, effects_for
from carpd.daemon.runtime.host import Host
from carpd.daemon.runtime.vhost import Vhost, make_router
from carpd.daemon.seam.lanes import Lane
from carpd.daemon.seam.plan import shown, works

# lan: conntrackd, [route], a [[follow]]ed interface, up/down/pre_release hooks and
# master, backup and pre-release [[action]]s; web: a vhid of a [[pool]].
TEXT = """name = "lan"
vhid = 1
pass = "x"
addresses = ["192.0.2.100/24"]
up = "/bin/true"
down = "/bin/true"
pre_release = "/bin/true"
pre_release_timeout = 3.0

[[action]]
name = "m"
vhid = "lan"
on = ["master", "backup", "pre-release"]
run = ["/bin/true"]
timeout = 4.0

[[follow]]
interface = "wan1"
vhid = "lan"
dhcp = "none"

[route]
enabled = true

[conntrackd]
enabled = true
binary = "/nonexistent/conntrackd"

[[pool]]
name = "web"
carpdev = "eth0"
address = "192.0.2.80/24"
nodes = ["5:0", "6:100"]
pass = "y"
"""

B, F = True, False  # blocking, background
TAKEOVER = [
    ("conntrackd commit", B, 2.0, "conntrackd"),
    ("add addresses", B, 10.0, "addresses"),
    ("conntrackd resync as master", F, None, "conntrackd"),
    ("follow wan1 up", F, 10.0, "follow wan1"),
    ("master actions", F, None, "lan actions"),
    ("announce", B, None, "addresses"),
    ("route announce", B, 2.0, "route"),
    ("up hook", F, None, "hooks"),
]
RELEASE = [
    ("route withdraw", B, 2.0, "route"),
    ("pre-release hook", B, 4.0, "hooks"),
    ("pre-release actions", B, 5.0, "lan actions"),
    ("remove addresses", B, 10.0, "addresses"),
    ("conntrackd resync as backup", F, None, "conntrackd"),
    ("follow wan1 down", F, 10.0, "follow wan1"),
    ("backup actions", F, None, "lan actions"),
    ("down hook", F, None, "hooks"),
]
STOP = [  # a MASTER stopping: the release's steps, but no conntrackd resync as backup
    ("route withdraw", B, 2.0, "route"),
    ("pre-release hook", B, 4.0, "hooks"),
    ("pre-release actions", B, 5.0, "lan actions"),
    ("remove addresses", B, 10.0, "addresses"),
    ("follow wan1 down", F, 10.0, "follow wan1"),
    ("backup actions", F, None, "lan actions"),
    ("down hook", F, None, "hooks"),
]
POOL_TAKEOVER = [  # ip mode: the bucket map is the address; no gratuitous ARP
    ("conntrackd commit", B, 2.0, "conntrackd"),
    ("conntrackd resync as master", F, None, "conntrackd"),
    ("pool buckets", B, 11.0, "pool"),
    ("route announce", B, 2.0, "route"),
]

Row = tuple[str, bool, float | None, str | None]


class Demote:
    """No demotion lever is pulled here."""

    def state_sync_demotion(self, amount: int, why: str) -> None:
        pass

    def scoped_demotion(self, *args: object) -> None:
        pass


def plans(tmp_path: Path) -> dict[str, list[Row]]:
    """Each transition's rows, planned (never run) from the machines' drains."""
    cfg = config(tmp_path, TEXT)
    out: dict[str, list[Row]] = {}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        needs = Needs(FakeNetlink(), lambda e: None, Demote())  # type: ignore[arg-type]
        effects = effects_for(cfg, (), needs)
        view = lambda vh: vh.view(Demotion(), 0, 0)  # noqa: E731
        host = Host(needs.netlink, needs.publish, effects, view, needs.roles)
        source = {4: ipaddress.ip_address("192.0.2.1")}
        vhs = {c.name: Vhost(c, make_router(c, source), None, Lane(c.name, loop)) for c in cfg.carp}  # type: ignore[arg-type]

        def step(name: str, what: str) -> None:
            vh = vhs[name]
            m = vh.machine
            if what == "start":
                m.start(0.0)
            elif what == "stop":
                m.stop(1.0, Reason.SHUTDOWN)
            else:
                m.force_state(State[what], 1.0)
            rows: list[Row] = []
            for work in works(m.drain()):
                assert work.cause is not None, work  # every host action knows its transition
                planned = host.plan(vh, work, vh.view(Demotion(), 0, 0))
                rows += [(p.step, p.blocking, p.deadline, p.chain) for p in shown(planned)]
            out[f"{name} {what}"] = rows

        for name in vhs:
            step(name, "start")
        step("lan", "MASTER")
        step("lan", "BACKUP")
        step("lan", "MASTER")
        step("lan", "stop")
        step("web-5", "MASTER")
        for e in effects:  # before its watchers ever ran
            await e.close()

    asyncio.run(main())
    return out


def test_the_takeover_release_and_stop_plans_are_the_documented_tables(tmp_path: Path) -> None:
    got = plans(tmp_path)
    assert got["lan MASTER"] == TAKEOVER
    assert got["lan BACKUP"] == RELEASE
    assert got["lan stop"] == STOP
    assert got["web-5 MASTER"] == POOL_TAKEOVER


def test_the_docs_table_is_the_plan() -> None:
    """docs/architecture.md draws the same rows, in the same order."""
    text = (Path(__file__).parents[2] / "docs" / "architecture.md").read_text()
    for title, rows in (("takeover", TAKEOVER), ("release", RELEASE), ("stop", STOP)):
        section = text.split(f"<!-- plan: {title} -->")[1].split("<!-- /plan -->")[0]
        lines = [line for line in section.splitlines() if line.startswith("| ") and "`" in line]
        names = [line.split("`")[1] for line in lines]
        assert names == [r[0] for r in rows], title
        for line, (_, blocking, _, chain) in zip(lines, rows, strict=True):
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert cells[1] == ("blocking" if blocking else "background"), line
            assert cells[3] == f"`{chain}`", line


def test_status_json_shows_the_last_transitions_plan(tmp_path: Path, monkeypatch: Any) -> None:
    """carpctl status --json: per vhid, the plan of its last transition."""
    from fakes import FakePorts, install

    from carpd.daemon.runtime.runtime import Daemon
    from carpd.daemon.seam.view import to_json

    install()
    daemon = Daemon(
        config(tmp_path, 'vhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n'),
        FakePorts(),
    )

    async def main() -> dict[str, Any]:
        await daemon.start()
        daemon.force_state("carp1", State.MASTER)
        await daemon.settle()
        return to_json(daemon.view())

    (vhid,) = asyncio.run(main())["vhosts"]
    assert vhid["plan"] == [
        {"step": "add addresses", "blocking": True, "deadline": 10.0, "chain": "addresses"},
        {"step": "announce", "blocking": True, "deadline": None, "chain": "addresses"},
    ]
