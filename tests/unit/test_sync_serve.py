"""The serving side of a sync (`carpctl sync serve`, what `ssh PEER` runs) against a
hostile pusher: the real command, fed a request stream (security review, items 1, 2, 6,
10 and 20). The peer's own [[sync.files]] decide what it reads, lists and writes, and
which commands it runs; its state stays private; symlinks inside a synced directory are
never followed."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

from helpers_sync import (
    SSH_CONNECTION,
    apply_req,
    b64,
    journal_lines,
    peer_config,
    serve_stream,
    sha,
)

SHADOW = b"root:$6$hash-of-roots-password:19000:0:99999:7:::\n"


def files(d: Path) -> str:
    return f"""
[[sync.files]]
path = "{d}/etc/only.conf"
check = ["sh", "-c", "echo check {{new}} >> {d}/own-check.log"]
after = ["sh", "-c", "echo after {{path}} >> {d}/own-after.log"]
[[sync.files]]
path = "{d}/etc/dir"
exclude = ["*.local"]
[[sync.files]]
path = "{d}/etc/lan.pass"
secret = true
check = ["sh", "-c", "cat {{new}}; exit 1"]
[[sync.files]]
path = "{d}/etc/nft.conf"
check = ["sh", "-c", "echo 'line 3: comment \\"psk=Sup3rS3cret-IPsec\\"' >&2; exit 1"]
"""


def evil(d: Path) -> dict[str, object]:
    return {
        "check": ["sh", "-c", f"id > {d}/pwned-by-check"],
        "after": ["touch", f"{d}/pwned-by-after"],
        "record": {"user": "nobody-real", "from": "forged", "explanation": "x", "prev": None},
    }


def test_serve_reads_and_lists_nothing_outside_its_own_synced_files(tmp_path: Path) -> None:
    config = peer_config(tmp_path, files(tmp_path))
    (tmp_path / "shadow").write_bytes(SHADOW)
    (tmp_path / "etc/only.conf").write_text("only\n")
    (tmp_path / "etc/dir").mkdir()
    (tmp_path / "etc/dir/a.conf").write_text("a\n")
    (tmp_path / "etc/dir/mine.local").write_text("node's own\n")
    answers = serve_stream(
        config,
        [
            {"op": "read", "paths": [str(tmp_path / "shadow")]},
            {"op": "read", "paths": [f"{tmp_path}/etc/dir/../../shadow"]},
            {"op": "read", "paths": [f"{tmp_path}/etc/dir/mine.local"]},
            {"op": "list", "roots": [{"path": str(tmp_path), "exclude": []}]},
            {"op": "read", "paths": [f"{tmp_path}/etc/dir/a.conf"]},
        ],
    )
    shown = json.dumps(answers)
    assert "hash-of-roots" not in shown and b64(SHADOW) not in shown
    assert "node's own" not in shown and b64(b"node's own\n") not in shown
    for a in answers[:3]:
        assert a["ok"] is False and "not under this node's [[sync.files]]" in a["error"]
    # The pusher's roots are ignored: the node lists its own.
    assert set(answers[3]["files"]) == {f"{tmp_path}/etc/only.conf", f"{tmp_path}/etc/dir/a.conf"}
    assert answers[4]["contents"] == {f"{tmp_path}/etc/dir/a.conf": b64(b"a\n")}


def test_serve_writes_only_its_own_synced_files_and_runs_only_its_own_commands(
    tmp_path: Path,
) -> None:
    config = peer_config(tmp_path, files(tmp_path))
    only = tmp_path / "etc/only.conf"
    only.write_text("old\n")
    outside = tmp_path / "outside" / "evil-suid"
    auth = tmp_path / "ssh-user-auth"
    blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes(range(32))
    auth.write_text(f"publickey ssh-ed25519 {base64.b64encode(blob).decode()}\n")
    answers = serve_stream(
        config,
        [
            apply_req(outside, b"#!/bin/sh\nid\n", None, mode=0o4755, **evil(tmp_path)),
            apply_req(tmp_path / "etc/dir/../../x", b"x\n", None, **evil(tmp_path)),
            apply_req(only, b"new\n", b"old\n", **evil(tmp_path)),
            {"op": "rollback", "path": str(only), **evil(tmp_path)},
            apply_req(tmp_path / "etc/dir/new.sh", b"#!/bin/sh\n", None, 0o6755, **evil(tmp_path)),
        ],
        env={"SSH_CONNECTION": SSH_CONNECTION, "SSH_USER_AUTH": str(auth)},
    )
    assert [a["ok"] for a in answers] == [False, False, True, True, True], answers
    # A new file takes the pusher's permission bits, never setuid or setgid.
    assert stat.S_IMODE((tmp_path / "etc/dir/new.sh").stat().st_mode) == 0o755
    assert "not under this node's [[sync.files]]" in answers[0]["error"]
    assert not outside.parent.exists() and not (tmp_path / "x").exists()
    # The pusher's check and after never ran; this node's own did, on the push and the
    # rollback, which put the old version back.
    assert not (tmp_path / "pwned-by-check").exists()
    assert not (tmp_path / "pwned-by-after").exists()
    assert (tmp_path / "own-check.log").read_text().count("check ") == 2
    assert (tmp_path / "own-after.log").read_text() == f"after {only}\n" * 2
    assert only.read_text() == "old\n"
    # The journal has who the pusher says it is beside what ssh says.
    fingerprint = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    records = journal_lines(tmp_path / "state")
    assert len(records) == 5
    for r in records:
        assert r["user"] == "nobody-real"
        assert r["ssh"] == {
            "connection": SSH_CONNECTION,
            "key": f"ssh-ed25519 SHA256:{fingerprint}",
        }


def test_serve_follows_no_symlink_inside_a_synced_directory(tmp_path: Path) -> None:
    config = peer_config(tmp_path, files(tmp_path))
    victim = tmp_path / "victim"
    victim.write_bytes(SHADOW)
    victim.chmod(0o600)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    d = tmp_path / "etc/dir"
    d.mkdir()
    (d / "app.conf").symlink_to(victim)
    (d / "sub").symlink_to(elsewhere)
    answers = serve_stream(
        config,
        [
            {"op": "list", "roots": []},
            {"op": "read", "paths": [str(d / "app.conf"), str(d / "sub/x.conf")]},
            apply_req(d / "app.conf", b"owned\n", SHADOW),
            apply_req(d / "app.conf", b"owned\n", None),
            apply_req(d / "sub/new.conf", b"owned\n", None),
        ],
    )
    shown = json.dumps(answers)
    assert "hash-of-roots" not in shown and b64(SHADOW) not in shown
    assert answers[0]["files"] == {}
    assert answers[1]["contents"] == {str(d / "app.conf"): None, str(d / "sub/x.conf"): None}
    assert [a["ok"] for a in answers[2:]] == [False, False, False], answers
    assert victim.read_bytes() == SHADOW and (d / "app.conf").is_symlink()
    assert list(elsewhere.iterdir()) == []


def test_a_configured_symlink_is_followed_and_stays_a_symlink(tmp_path: Path) -> None:
    config = peer_config(tmp_path, files(tmp_path))
    real = tmp_path / "real.conf"
    real.write_text("old\n")
    real.chmod(0o600)
    (tmp_path / "etc/only.conf").symlink_to(real)
    (listed,) = serve_stream(config, [{"op": "list", "roots": []}])
    assert listed["files"][f"{tmp_path}/etc/only.conf"]["link"] == str(real)
    (applied,) = serve_stream(config, [apply_req(tmp_path / "etc/only.conf", b"new\n", b"old\n")])
    assert applied["ok"] is True, applied
    assert (tmp_path / "etc/only.conf").is_symlink() and real.read_text() == "new\n"
    assert stat.S_IMODE(real.stat().st_mode) == 0o600


def test_sync_state_is_private_under_umask_022_and_old_modes_are_repaired(
    tmp_path: Path,
) -> None:
    config = peer_config(tmp_path, files(tmp_path))
    state = tmp_path / "state" / "sync"
    # What an earlier carpctl left under umask 022: 0755 directories, 0644 files.
    (state / "versions").mkdir(parents=True)
    (state / "versions" / sha(b"older\n")).write_text("older\n")
    (state / "journal.jsonl").write_text('{"result": "applied"}\n')
    (state / "status.json").write_text("{}")
    for p in (state, state / "versions"):
        p.chmod(0o755)
    for p in (state / "versions" / sha(b"older\n"), state / "journal.jsonl", state / "status.json"):
        p.chmod(0o644)
    pass_ = tmp_path / "etc/lan.pass"
    pass_.write_text("oldsecretpass\n")
    pass_.chmod(0o600)
    passfile = tmp_path / "etc/dir/peer.pass"
    passfile.parent.mkdir()
    passfile.write_text("dir-oldsecret\n")
    passfile.chmod(0o600)
    (answer,) = serve_stream(
        config, [apply_req(passfile, b"dir-newsecret\n", b"dir-oldsecret\n")], umask=0o022
    )
    assert answer["ok"] is True, answer
    kept = state / "versions" / sha(b"dir-oldsecret\n")
    assert kept.read_text() == "dir-oldsecret\n"
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (state, *state.rglob("*"))}
    assert modes == {
        "sync": 0o700,
        "versions": 0o700,
        sha(b"older\n"): 0o600,
        kept.name: 0o600,
        "journal.jsonl": 0o600,
        "status.json": 0o600,
        "lock": 0o600,
    }


def test_check_output_is_masked_and_a_secret_files_output_never_shown(tmp_path: Path) -> None:
    config = peer_config(tmp_path, files(tmp_path))
    nft = tmp_path / "etc/nft.conf"
    nft.write_text("old\n")
    pass_ = tmp_path / "etc/lan.pass"
    pass_.write_text("oldsecretpass\n")
    answers = serve_stream(
        config,
        [
            apply_req(nft, b"new\n", b"old\n"),
            apply_req(pass_, b"newsecretpass\n", b"oldsecretpass\n"),
        ],
    )
    assert [a["ok"] for a in answers] == [False, False]
    assert "line 3: comment" in answers[0]["error"] and "Sup3rS3cret" not in answers[0]["error"]
    assert (
        answers[1]["error"] == f"check of {pass_} failed (1): output not shown (file marked secret)"
    )
    journal = (tmp_path / "state/sync/journal.jsonl").read_text()
    assert "Sup3rS3cret" not in journal and "secretpass" not in journal
