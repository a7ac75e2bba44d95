"""What the log says of a conntrackd command that failed, one way or another."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from fakes import config

from carpd.daemon.effects.conntrack import Conntrack
from carpd.linux.process import Outcome


def effect_answering(tmp_path: Path, outcome: Outcome) -> Conntrack:
    """The effect with a client whose every command ends as ``outcome`` (no process)."""
    conf = tmp_path / "conntrackd.conf"
    conf.write_text("General {\n}\n")
    text = (
        'vhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n'
        f'\n[conntrackd]\nenabled = true\nbinary = "/bin/true"\nconfig = "{conf}"\n'
    )
    effect = Conntrack(config(tmp_path, text).conntrackd, lambda amount, why: None)

    class Client:
        async def run(self, *args: str, timeout: float) -> Outcome:
            return outcome

    effect.client = Client()  # type: ignore[assignment]
    return effect


def test_a_command_killed_at_its_timeout_says_killed_once(tmp_path: Path) -> None:
    """The runner's error names the kill too: the message must not say it twice, nor call
    a slow conntrackd one that cannot run."""
    killed = Outcome(
        status=None, duration=0.5, output="", error="killed after 0.5 s", timed_out=True
    )
    effect = effect_answering(tmp_path, killed)
    with pytest.raises(RuntimeError) as raised:
        asyncio.run(effect._cmd("-f", timeout=0.5))
    assert str(raised.value) == "conntrackd -f: killed after 0.5 s"


def test_a_binary_that_cannot_start_is_named(tmp_path: Path) -> None:
    absent = Outcome(status=None, duration=0.0, output="", error="could not start: No such file")
    effect = effect_answering(tmp_path, absent)
    with pytest.raises(RuntimeError) as raised:
        asyncio.run(effect._cmd("-f"))
    assert re.fullmatch(
        r"conntrackd -f: cannot run \S+: could not start: No such file", str(raised.value)
    )
