"""carpd.sync without a network: masking, atomic replacement, the agent's apply and
rollback on local files, and the per-node overlay."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from carpd.config import ConfigError, load_config
from carpd.sync.agent import Agent, b64, serve
from carpd.sync.files import FileInfo
from carpd.sync.mask import mask, unified
from carpd.sync.scope import Root, Scope


def test_secrets_never_reach_a_diff() -> None:
    text = 'pass = "s3cret"\npassword: hunter2\npsk "abc"\nkeep = 1\n'
    assert mask(text) == "pass = ********\npassword: ********\npsk ********\nkeep = 1\n"
    key = b"-----BEGIN OPENSSH PRIVATE KEY-----\nxyz\n-----END OPENSSH PRIVATE KEY-----\n"
    out = unified("/k", b"old", key, secret=False, peer="fw2")
    assert "xyz" not in out and "(secret: contents not shown)" in out
    out = unified("/c", b'pass = "a"\n', b'pass = "b"\n', secret=False, peer="fw2")
    assert "only secret values differ" in out and '"a"' not in out and '"b"' not in out
    assert "fw2:/c" in unified("/c", b"a\n", b"b\n", secret=False, peer="fw2")


def agent_apply(
    agent: Agent, path: Path, content: bytes, expect: str | None, **kw: object
) -> dict[str, object]:
    req = {
        "op": "apply",
        "files": [{"path": str(path), "content": b64(content), "expect": expect,
                   "meta": FileInfo("x", 0o640, os.getuid(), os.getgid()).to_json(), **kw}],
        "record": {"explanation": "t", "files": [{"path": str(path)}]},
    }  # fmt: skip
    out = io.StringIO()
    serve(agent, io.StringIO(json.dumps(req) + "\n"), out)
    answer: dict[str, object] = json.loads(out.getvalue())
    return answer


def test_apply_keeps_mode_and_symlinks_checks_first_and_refuses_a_changed_peer(
    tmp_path: Path,
) -> None:
    real = tmp_path / "real.conf"
    real.write_text("old\n")
    real.chmod(0o600)
    link = tmp_path / "link.conf"
    link.symlink_to(real)
    # This node's own check (a pusher's is ignored).
    scope = Scope([Root(str(link), check=("sh", "-c", "! grep -q broken {new}"))])
    agent = Agent(tmp_path / "state", 5.0, scope)
    old = scope.info(str(link))
    assert old is not None and old.link == str(real)

    # The peer changed since the diff: nothing replaced.
    answer = agent_apply(agent, link, b"new\n", expect="0" * 64)
    assert answer["ok"] is False and "changed on this node" in str(answer["error"])
    # A failing check: nothing replaced, no temporary file left.
    answer = agent_apply(agent, link, b"broken\n", expect=old.sha256, check=["true"])
    assert answer["ok"] is False and "check of" in str(answer["error"])
    assert real.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "link.conf",
        "real.conf",
        "state",
    ]
    # Applied: through the symlink, which stays; the mode is the old file's.
    answer = agent_apply(agent, link, b"new\n", expect=old.sha256)
    assert answer["ok"] is True, answer
    assert (
        link.is_symlink() and real.read_text() == "new\n" and (real.stat().st_mode & 0o777) == 0o600
    )
    results = [r["result"] for r in agent.journal.records()]
    assert (
        results[0].startswith("refused: ")
        and results[1].startswith("refused: check")
        and results[2] == "applied"
    )
    # Rollback: the version the push replaced.
    out = io.StringIO()
    req = {"op": "rollback", "path": str(link), "record": {"explanation": "back"}}
    serve(agent, io.StringIO(json.dumps(req) + "\n"), out)
    assert json.loads(out.getvalue())["ok"] is True
    assert real.read_text() == "old\n"


def test_the_overlay_gives_a_node_its_own_values_and_names_itself_in_errors(tmp_path: Path) -> None:
    (tmp_path / "carpd.toml").write_text(
        '[global]\noverlay = "node.toml"\n[[carp]]\nname = "lan"\nvhid = 1\ncarpdev = "eth0"\n'
        'pass = "x"\naddresses = ["192.0.2.1/24"]\n'
    )
    node = tmp_path / "node.toml"
    node.write_text('[carp.lan]\ncarpdev = "eth1"\nadvskew = 100\n[sync]\npeer = "root@fw1"\n')
    c = load_config(tmp_path / "carpd.toml")
    assert (c.carp[0].carpdev, c.carp[0].advskew, c.sync.peer) == ("eth1", 100, "root@fw1")
    node.write_text("[carp.lan]\nadvskew = 300\n")
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "carpd.toml")
    assert str(e.value) == f"{node}: carp.lan.advskew = 300: allowed range is 0-254"
    node.write_text("[carp.wan]\nadvskew = 1\n")
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "carpd.toml")
    assert str(e.value) == f"{node}: carp.wan: no [[carp]] of that name (there are: lan)"


def test_drift_reaches_status_from_the_file_status_writes(tmp_path: Path) -> None:
    from carpd.daemon.observers.configsync import ConfigSync, ConfigSyncReport, Drift

    drift = Drift(tmp_path)
    assert drift.report() is None  # never checked: nothing shown
    (tmp_path / "sync").mkdir()
    report = {"checked": 1_700_000_000, "peer": "root@fw2", "differ": ["/etc/a"],
              "only_here": [], "only_peer": ["/etc/b"], "error": None}  # fmt: skip
    (tmp_path / "sync" / "status.json").write_text(json.dumps(report))
    found_file = drift.report()
    assert found_file is not None
    shown = ConfigSyncReport.read(found_file).to_json()
    assert (shown["in_sync"], shown["drift"]) == (False, 2)
    found = ConfigSync(lambda: drift).report()
    assert found is not None and found.to_json() == shown
    [line] = found.lines()  # carpctl status's
    assert line.startswith("config sync: 2 file(s) differ from root@fw2 (checked ")
    assert line.endswith("/etc/a, /etc/b (only on the peer)")
