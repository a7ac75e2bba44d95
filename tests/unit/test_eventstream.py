"""`carpctl events` against the real control socket and the runtime's events."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest
from fakes import FakeNetlink, FakePorts, config, install

from carpd.core.model import State
from carpd.ctl.main import follow
from carpd.daemon.observers import eventstream
from carpd.daemon.observers.eventstream import EventStream
from carpd.daemon.runtime.runtime import Daemon
from carpd.daemon.seam.events import Lifecycle
from carpd.daemon.service import commands
from carpd.daemon.service.control import ControlServer
from carpd_lab import bounds


def test_carpctl_events_prints_each_transition_as_it_happens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install()
    text = 'name = "lan"\nvhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n'
    daemon = Daemon(config(tmp_path, text), FakePorts(FakeNetlink()))
    stream = EventStream()
    daemon.publisher.subscribers.append(stream)
    path = tmp_path / "control.sock"
    out = io.StringIO()

    async def printed(text: str) -> None:
        """Until the client has printed a line with ``text`` (bounded)."""
        deadline = asyncio.get_running_loop().time() + bounds.REACTION + bounds.COMMAND
        while text not in out.getvalue():
            assert asyncio.get_running_loop().time() < deadline, f"{text} not printed"
            await asyncio.sleep(0.01)

    async def main() -> int:
        await daemon.start()
        server = ControlServer(path, {**commands.handlers(daemon), "events": stream.follow})
        await server.start()
        client = asyncio.ensure_future(asyncio.to_thread(follow, str(path), out))
        while not stream._followers:  # the client is following
            await asyncio.sleep(0.01)
        daemon.force_state("lan", State.MASTER)
        await daemon.settle()
        # As it happens: printed while the daemon is still MASTER, not once it is over.
        await printed('"to": "MASTER"')
        assert '"to": "BACKUP"' not in out.getvalue()
        daemon.force_state("lan", State.BACKUP)
        await daemon.settle()
        await printed('"present": false')  # the last event: the addresses gone
        await server.close()  # closes the follower's connection too
        return await client

    assert asyncio.run(main()) == 3  # the daemon went away
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    moves = [(e["from"], e["to"], e["reason"]) for e in events if e["event"] == "transition"]
    assert moves == [
        ("BACKUP", "MASTER", "user requested"),
        ("MASTER", "BACKUP", "user requested"),
    ]
    assert [e["present"] for e in events if e["event"] == "addresses"] == [True, False]
    assert all(e["vhid"] == "lan" for e in events if "vhid" in e and e["event"] != "demotion")


def test_a_follower_that_falls_behind_is_dropped_not_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install()
    monkeypatch.setattr(eventstream, "QUEUE", 5)
    text = 'name = "lan"\nvhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n'
    daemon = Daemon(config(tmp_path, text), FakePorts(FakeNetlink()))
    stream = EventStream()

    async def main() -> list[dict[str, object]]:
        await daemon.start()
        follower = stream.follow({})
        first = asyncio.ensure_future(follower.__anext__())
        await asyncio.sleep(0)  # registered, never reading again
        view = daemon.view()
        for _ in range(20):
            stream.notify(Lifecycle("ready"), view)
        got = [await first]
        got += [item async for item in follower]
        return got

    got = asyncio.run(main())
    assert got[-1] == eventstream.OVERFLOW and len(got) <= 6
    assert not stream._followers
