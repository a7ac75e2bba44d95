"""Diagnoses are true now: each has a level and a time, and clears when its cause is gone
(the runtime on fake sockets and netlink, tests/unit/fakes.py)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from pathlib import Path

import pytest
from fakes import FakeNetlink, FakePorts, config, install

from carpd.config import Config, ConfigError, load_config
from carpd.core.model import State
from carpd.core.vrrp import VrrpPacket
from carpd.ctl.main import format_status
from carpd.daemon.runtime.runtime import Daemon
from carpd.daemon.seam.diagnosis import QUIET
from carpd.daemon.seam.view import DiagnosisView, to_json

# VRRPv3 at 50 ms, priority 100: master-down is 3 x 0.05 + 156/256 x 0.05 = 0.18 s.
ADVBASE = 0.05
MASTER_DOWN = 3 * ADVBASE + (256 - 100) * ADVBASE / 256
# Only a wait's limit: a start-up, a master-down interval and a busy machine.
WAIT = 10.0
PEER = ipaddress.IPv4Address("192.0.2.7")  # not one of eth0's own (fakes.OWN)


def vrrp(extra: str = "") -> str:
    return (
        f'protocol = "vrrp3"\nvhid = 9\nadvbase = {ADVBASE}\n'
        f'addresses = ["192.0.2.200/24"]\naccept = true\n{extra}'
    )


async def master(daemon: Daemon) -> None:
    """Started alone: MASTER once the master-down interval passes in silence."""
    await daemon.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while next(iter(daemon.vhosts.values())).machine.state is not State.MASTER:
        assert loop.time() < deadline, "never MASTER"
        await asyncio.sleep(MASTER_DOWN / 4)


def diagnoses(daemon: Daemon) -> tuple[DiagnosisView, ...]:
    return daemon.view().vhids[0].diagnostics


def test_a_lone_first_master_says_so_as_a_note_until_it_hears_an_advert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install()

    async def main() -> None:
        daemon = Daemon(config(tmp_path, vrrp()), FakePorts(FakeNetlink()))
        await master(daemon)
        (d,) = diagnoses(daemon)
        assert (d.kind, d.level) == ("silence", "info")
        assert d.text.startswith("became MASTER without having heard any advert")
        assert abs(d.since - time.time()) < WAIT  # wall time
        text = format_status(to_json(daemon.view()))
        assert "\tnote: became MASTER without having heard any advert" in text
        assert "diagnosis:" not in text
        # A node with a higher priority speaks: the silence is over, and so is the note.
        vh = next(iter(daemon.vhosts.values()))
        daemon.receiver._receive(vh, VrrpPacket(9, 200, 5, (vh.cfg.addresses[0].ip,)), 4, PEER)
        assert vh.machine.counters.adverts_received == 1
        assert diagnoses(daemon) == ()
        assert "became MASTER" not in format_status(to_json(daemon.view()))

    asyncio.run(main())


def test_a_master_that_never_heard_its_unicast_peers_is_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install()

    async def main() -> None:
        cfg = config(tmp_path, vrrp(f'peers = ["{PEER}"]\n'))
        daemon = Daemon(cfg, FakePorts(FakeNetlink()))
        await master(daemon)
        (d,) = diagnoses(daemon)
        assert (d.kind, d.level) == ("silence", "warning")
        assert f"from peers {PEER}" in d.text
        text = format_status(to_json(daemon.view()))
        assert f"\tdiagnosis: became MASTER without having heard any advert from peers {PEER}" in (
            text
        )

    asyncio.run(main())


def test_a_diagnosis_from_refused_adverts_holds_while_they_recur_and_then_clears(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install()

    async def main() -> None:
        cfg = config(tmp_path, 'vhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n')
        daemon = Daemon(cfg, FakePorts(FakeNetlink()))
        await daemon.start()
        vh = next(iter(daemon.vhosts.values()))
        now = daemon.now()
        daemon.receiver.diagnose(vh, "bad_hmac", "adverts from 192.0.2.66 fail the HMAC check")
        (d,) = vh.view(daemon.ledger, now, 0.0).diagnostics
        assert (d.kind, d.level, d.since) == ("bad_hmac", "warning", pytest.approx(now, abs=1))
        # Still coming a while later: the same diagnosis, first seen at the same time.
        later = now + QUIET / 2
        monkeypatch.setattr(daemon.receiver, "now", lambda: later)
        daemon.receiver.diagnose(vh, "bad_hmac", "adverts from 192.0.2.66 fail the HMAC check")
        (d,) = vh.view(daemon.ledger, later, 0.0).diagnostics
        assert d.since == pytest.approx(now, abs=1) and d.last == later
        # A quiet minute after the last one: fixed, or gone.
        assert vh.view(daemon.ledger, later + QUIET - 1, 0.0).diagnostics
        assert vh.view(daemon.ledger, later + QUIET + 1, 0.0).diagnostics == ()

    asyncio.run(main())


def test_the_node_is_named_by_node_name_or_the_host_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install()
    table = 'vhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n'

    async def node(cfg: Config) -> str:
        daemon = Daemon(cfg, FakePorts(FakeNetlink()))
        await daemon.start()
        return str(to_json(daemon.view())["node"])

    assert asyncio.run(node(config(tmp_path, table))) == socket.gethostname()
    path = tmp_path / "carpd.toml"
    path.write_text(path.read_text().replace("[global]\n", '[global]\nnode_name = "fw-a"\n'))
    assert asyncio.run(node(load_config(path))) == "fw-a"


def test_a_node_name_that_is_not_a_host_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "carpd.toml"
    path.write_text('[global]\nnode_name = "fw a<script>"\n')
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert "global.node_name" in str(refused.value) and str(path) in str(refused.value)
