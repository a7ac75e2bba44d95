"""One link watch for the whole daemon: the carpdevs, conntrackd's sync link and
ifstated's interfaces are all fed from the subscription the daemon's ports give it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from fakes import FakeNetlink, FakePorts, config, install
from test_conntrack_effect import fake_conntrackd, table

from carpd.config.model import IfstatedConfig
from carpd.core.model import State
from carpd.daemon.effects import conntrack
from carpd.daemon.observers.ifstated import Ifstated
from carpd.daemon.runtime.runtime import Daemon
from carpd.linux import linkwatch

IFSTATED = """state synced {
\tif sync0.link.down
\t\tset-state unsynced
}
state unsynced {
\tif sync0.link.up
\t\tset-state synced
}
"""


async def until(done: Callable[[], bool]) -> None:
    """Until ``done()``: the subscribers' own tasks take their turn on the loop."""
    for _ in range(1000):
        if done():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


def test_one_subscription_serves_the_daemon_conntrackd_and_ifstated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fake watcher's events reach all three, and no other rtnetlink subscription is
    opened (before, conntrackd's effect and ifstated each opened one of their own)."""
    install()
    monkeypatch.setattr(conntrack, "BULK_POLL", 3600.0)
    opened: list[object] = []

    async def refused(self: linkwatch.LinkWatcher) -> None:
        opened.append(self)
        raise OSError("a second rtnetlink subscription")

    monkeypatch.setattr(linkwatch.LinkWatcher, "start", refused)
    binary, _ = fake_conntrackd(tmp_path)
    ports = FakePorts(FakeNetlink())
    ports.watcher.links["sync0"] = True
    daemon = Daemon(config(tmp_path, table(binary, 'interface = "sync0"\n')), ports)
    effect = next(e for e in daemon.host.effects if isinstance(e, conntrack.Conntrack))
    rules = tmp_path / "ifstated.conf"
    rules.write_text(IFSTATED)

    async def main() -> list[tuple[bool | None, str | None, State, bool]]:
        ifstated = await Ifstated.open(
            IfstatedConfig(file=rules), daemon.publisher.publish, daemon.links
        )
        daemon.publisher.subscribers.append(ifstated)
        await daemon.start()
        ifstated.begin(daemon.view())
        await until(lambda: ifstated.engine.current_state == "synced")
        await until(lambda: effect.link_up is True)
        seen = []

        def look() -> None:
            demoted = conntrack.LINK in effect._reasons
            state = daemon.find("carp1").machine.state
            seen.append((effect.link_up, ifstated.engine.current_state, state, demoted))

        look()
        ports.watcher.set("sync0", up=False)
        ports.watcher.set("eth0", up=False)
        await ports.watcher.heard()
        await until(lambda: effect.link_up is False)
        look()
        await daemon.stop()
        await ifstated.close()
        return seen

    assert asyncio.run(main()) == [
        (True, "synced", State.BACKUP, False),
        (False, "unsynced", State.INIT, True),
    ]
    assert ports.watcher.starts == 1
    assert opened == []
