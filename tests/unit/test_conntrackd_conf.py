"""conntrackd at a real firewall's scale: the conntrackd.conf sized from the table
(``max_entries``, else the node's nf_conntrack_max), the mode without an external cache
(``external_cache = false``), and the commit's deadline that grows with the peer's table.
The figures behind them are bench/scale_sync.py's (docs/firewall.md, "At scale")."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest
from fakes import FakeNetlink, FakePorts, config, install
from test_conntrack_effect import calls, fake_conntrackd, run_takeover, table
from test_conntrackd import pair

from carpd.config import ConfigError, load_config
from carpd.config.conntrackd_conf import Sizing, render, sizing
from carpd.config.document import Config
from carpd.daemon.effects import conntrack
from carpd.daemon.effects.conntrack import COMMIT_RATE, Conntrack, read_stats
from carpd.daemon.runtime.runtime import Daemon
from carpd.linux.conntrackd import ConntrackdStats

# conntrack-tools 1.4.7's `conntrackd -s` with DisableExternalCache On (captured in a lab
# namespace after 1,000 connections arrived from the peer): no external cache, an
# "external inject" section instead.
INJECT = """cache internal:
current active connections:\t           4
connections created:\t\t           4\tfailed:\t           0
connections updated:\t\t           0\tfailed:\t           0
connections destroyed:\t\t           0\tfailed:\t           0

external inject:
connections created:\t\t        1000\tfailed:\t           0
connections updated:\t\t          30\tfailed:\t           0
connections destroyed:\t\t          10\tfailed:\t           0

traffic processed:
                   0 Bytes                         0 Pckts

UDP traffic (active device=sync0):
                  96 Bytes sent                84040 Bytes recv
                   6 Pckts sent                  134 Pckts recv
                   0 Error send                    0 Error recv

message tracking:
                   0 Malformed msgs                    7 Lost msgs
"""


def conf(tmp_path: Path, extra: str = "") -> Config:
    return load_config(pair(tmp_path, extra))


def values(text: str) -> dict[str, str]:
    """conntrackd.conf's ``Key value`` lines."""
    out = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and not line.lstrip().startswith("#"):
            out[words[0]] = words[1]
    return out


def test_conntrackd_conf_is_sized_for_the_table_it_says(tmp_path: Path) -> None:
    text = render(conf(tmp_path, "max_entries = 1000000\n"), {})
    v = values(text)
    # conntrackd.conf(5): HashLimit twice the table (dead entries stay cached a while);
    # conntrackd's default, 131072, silently kept the rest of a bigger table from the peer.
    assert v["HashLimit"] == "2000000"
    assert v["HashSize"] == "524288"  # a power of two, two entries a bucket when full
    # A burst renewing a quarter of the table fits the event socket (1.25 KiB an event,
    # measured), conntrackd may double it once, and resyncs 5 s after an overrun.
    assert v["NetlinkBufferSize"] == str(1000000 * 1280 // 4)
    assert v["NetlinkBufferSizeMaxGrowth"] == str(2 * 1000000 * 1280 // 4)
    assert v["NetlinkOverrunResync"] == "5"
    assert v["SndSocketBuffer"] == v["RcvSocketBuffer"] == str(1000000 * 128 // 4)
    assert v["DisableExternalCache"] == "Off"
    assert "# Sized for 1000000 connections ([conntrackd] max_entries)." in text


def test_without_max_entries_the_nodes_own_kernel_limit_sizes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = conf(tmp_path)
    assert config.conntrackd.max_entries is None
    assert sizing(config, kernel=500000) == Sizing.of(
        500000, "this node's net.netfilter.nf_conntrack_max"
    )
    limit = tmp_path / "nf_conntrack_max"
    limit.write_text("262144\n")
    monkeypatch.setattr("carpd.config.conntrackd_conf.NF_CONNTRACK_MAX", limit)
    assert values(render(config, {}))["HashLimit"] == "524288"
    limit.unlink()  # conntrack not loaded where it is written: the kernel's own default
    text = render(config, {})
    assert values(text)["HashLimit"] == "524288"
    assert "(no " in text and "the kernel's default)" in text


def test_a_small_table_keeps_conntrack_tools_own_sizes(tmp_path: Path) -> None:
    v = values(render(conf(tmp_path, "max_entries = 1024\n"), {}))
    assert (v["HashSize"], v["HashLimit"]) == ("32768", "131072")
    assert (v["NetlinkBufferSize"], v["NetlinkBufferSizeMaxGrowth"]) == ("2097152", "8388608")
    assert v["SndSocketBuffer"] == "1249280"


def test_max_entries_is_checked(tmp_path: Path) -> None:
    bad = pair(tmp_path, "max_entries = 100\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert str(info.value).splitlines() == [
        f"{bad}: conntrackd.max_entries = 100: allowed range is 1024-67108864"
    ]


def test_without_an_external_cache_conntrackd_injects_and_reads_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = pair(tmp_path, "external_cache = false\nmax_entries = 1000000\n")
    text = render(load_config(path), {})
    assert "\t\tDisableExternalCache On" in text.splitlines()
    binary = shutil.which("conntrackd") or "/usr/sbin/conntrackd"
    assert Path(binary).exists(), "needs the Debian package conntrackd (scripts/setup)"
    file = tmp_path / "conntrackd.conf"
    file.write_text(text)
    r = subprocess.run([binary, "-C", str(file), "-s"], capture_output=True, text=True)
    assert "can't connect" in r.stderr and "syntax error" not in r.stderr  # parsed it all


def test_statistics_without_an_external_cache_count_what_was_injected() -> None:
    stats, injected = read_stats(INJECT)
    assert stats == ConntrackdStats(
        internal=4, external=990, send_errors=0, recv_errors=0, malformed=0, lost=7, received=134
    )
    assert injected == (1000, 30, 10)
    captured = (Path(__file__).parent / "data" / "conntrackd-s-1.4.7.txt").read_text()
    stats, injected = read_stats(captured)  # with one: as before, no inject counts
    assert stats is not None and stats.external == 200 and injected is None


def test_the_commit_deadline_grows_with_the_peers_table(tmp_path: Path) -> None:
    ct = conf(tmp_path).conntrackd
    effect = Conntrack(ct, lambda amount, why: None)
    assert effect.commit_deadline() == ct.commit_timeout  # nothing counted yet
    effect.stats = ConntrackdStats(0, 500_000, 0, 0, 0, 0)
    assert effect.commit_deadline() == ct.commit_timeout + 500_000 / COMMIT_RATE == 12.0


def test_without_an_external_cache_nothing_is_committed_and_nothing_flushed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No commit before the addresses (the peer's connections are in the kernel already),
    and no -t on becoming BACKUP (its flush would delete them from the kernel table)."""
    install()
    monkeypatch.setattr(conntrack, "BULK_POLL", 3600.0)  # no bulk polls in this test
    binary, log = fake_conntrackd(tmp_path, commit=0.3)
    run_takeover(tmp_path, table(binary, "external_cache = false\n"), 0.5)
    started = [args for _, what, args in calls(log) if what == "start" and args != "-s"]
    assert started == ["-n", "-f", "-R", "-B"]


def test_a_busy_peers_table_that_never_stands_still_still_ends_the_bulk_resync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A firewall's table of 100,000 connections gains and loses a few every moment: the
    bulk resync is done once it has settled (within BULK_SETTLED of its size over
    BULK_QUIET), not only once it stands still, which a busy table never does; while it
    still grows by thousands, it is not done."""
    install()
    monkeypatch.setattr(conntrack, "BULK_POLL", 0.05)
    monkeypatch.setattr(conntrack, "BULK_QUIET", 0.5)
    binary, log = fake_conntrackd(tmp_path)
    external = Path(str(log) + ".external")
    daemon = Daemon(
        config(tmp_path, table(binary, "bulk_timeout = 30\n")), FakePorts(FakeNetlink())
    )
    demoted: list[int] = []
    settled_for: list[float] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await daemon.start()
        for n in range(10_000, 100_001, 10_000):  # arriving: 10,000 more every 0.1 s
            external.write_text(str(n))
            await asyncio.sleep(0.1)
        demoted.append(daemon.ledger.sources.get("state sync", 0))
        since = loop.time()
        churn = 0
        async with asyncio.timeout(10):  # then churn: never the same count twice
            while daemon.ledger.sources.get("state sync", 0):
                churn += 1
                external.write_text(str(100_000 + (37 * churn) % 101 - 50))
                await asyncio.sleep(0.05)
        settled_for.append(loop.time() - since)

    asyncio.run(main())
    assert demoted == [240]  # not done while the table was still arriving
    assert settled_for[0] >= conntrack.BULK_QUIET - 0.1
    assert "carp: demoted by -240 to 0 (state sync bulk done)" in caplog.messages


def test_a_restarted_conntrackd_is_not_taken_for_a_lossy_link(tmp_path: Path) -> None:
    """A conntrackd started again counts from 0, and the first message from the peer
    counts every sequence number it missed as lost (117,027 after a 250,000 table, in the
    bench): no stall for that, only for losses between two looks at the same one."""
    effect = Conntrack(conf(tmp_path).conntrackd, lambda amount, why: None)
    old = ConntrackdStats(0, 250_000, 0, 0, 0, lost=0, received=90_000)
    new = ConntrackdStats(0, 250_000, 0, 0, 0, lost=117_027, received=60_000)
    effect._diagnose(old, new)
    assert effect.stall is None
    later = ConntrackdStats(0, 250_000, 0, 0, 0, lost=117_100, received=60_010)
    effect._diagnose(new, later)
    assert effect.stall == "73 messages from the peer lost in 10 s"
