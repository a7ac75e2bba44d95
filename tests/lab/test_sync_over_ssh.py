"""carpctl sync between two nodes over real OpenSSH (sshd in each namespace): diff,
push with an explanation, the journal on both nodes, rollback, drift in status, a check
that refuses, an unreachable peer, two pushes at once, interrupted pushes, and one shared
carpd.toml whose per-node values (an overlay) survive a push and a reload."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from carpd_lab import bounds
from carpd_lab.netlab import Lab, LogWatch, carpd_argv, pids
from carpd_lab.sshnodes import SshNode, SshPair

TIMEOUT = 5  # [sync] timeout: ssh's connect and each answer (the first: twice that)
CARPCTL = str(Path(sys.executable).parent / "carpctl")


def shared_config(pair: SshPair, files: str, extra: str = "") -> str:
    """The carpd.toml both nodes share; their own values are in node.toml."""
    root = pair.root
    ssh = ", ".join(json.dumps(a) for a in pair.ssh())
    return (
        f'[global]\nstate_dir = "{root}/state"\ncontrol_socket = "{root}/state/carpd.sock"\n'
        f'service_checks = "{root}/checks"\noverlay = "node.toml"\n{extra}\n'
        f"[sync]\nssh = [{ssh}]\nremote = {json.dumps(CARPCTL)}\ntimeout = {TIMEOUT}\n{files}\n"
        '[[carp]]\nname = "lan"\nvhid = 1\ncarpdev = "lan0"\npass = "s3cret-carp"\n'
        'addresses = ["192.0.2.1/24"]\n'
    )


def setup_nodes(pair: SshPair, files: str, extra: str = "") -> tuple[SshNode, SshNode]:
    n1, n2 = pair.nodes
    for me, other in ((n1, n2), (n2, n1)):
        me.path("etc/carpd.toml").write_text(shared_config(pair, files, extra))
        me.path("etc/node.toml").write_text(f'[sync]\npeer = "root@{other.address}"\n')
    return n1, n2


def sync_argv(node: SshNode, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "carpd.ctl",
        "sync",
        "--config",
        f"{node.root}/etc/carpd.toml",
        *args,
    ]


def sync(node: SshNode, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return node.run(*sync_argv(node, *args), stdin=stdin)


def journal(node: SshNode) -> list[dict[str, object]]:
    path = node.path("state/sync/journal.jsonl")
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def pair(lab: Lab) -> SshPair:
    return SshPair(lab)


FILES = """
[[sync.files]]
path = "{root}/etc/fw"
exclude = ["*.local"]
check = ["sh", "-c", "! grep -q BROKEN {{new}}"]
after = ["sh", "-c", "echo reloaded {{path}} >> {root}/state/after.log"]
[[sync.files]]
path = "{root}/etc/carpd.toml"
"""


def test_diff_push_journal_status_rollback_and_a_refusing_check(pair: SshPair) -> None:
    root = pair.root
    n1, n2 = setup_nodes(pair, FILES.format(root=root))
    for node in (n1, n2):
        (node.path("etc/fw")).mkdir()
        node.path("etc/fw/rules.nft").write_text("table inet fw {\n  # v1\n}\n")
        node.path("etc/fw/ipsec.secrets").write_text('psk "old-secret"\n')
        node.path("etc/fw/mine.local").write_text(f"{node.host.name}\n")  # excluded
    n1.path("etc/fw/rules.nft").write_text("table inet fw {\n  # v2\n}\n")
    n1.path("etc/fw/ipsec.secrets").write_text('psk "new-secret"\n')
    n1.path("etc/fw/host.key").write_text(
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    )
    rules = f"{root}/etc/fw/rules.nft"

    # Drift: status says which, exits 1, and carpd's status file has it.
    r = sync(n1, "status")
    assert r.returncode == 1, r.stderr
    assert f"differs: {rules}" in r.stdout and f"only here: {root}/etc/fw/host.key" in r.stdout
    assert "mine.local" not in r.stdout
    drift = json.loads(n1.path("state/sync/status.json").read_text())
    assert drift["error"] is None and rules in drift["differ"]

    # The diff, secrets masked.
    r = sync(n1, "diff")
    assert r.returncode == 1
    assert "-  # v1\n+  # v2\n" in r.stdout
    assert "(only secret values differ: not shown)" in r.stdout  # ipsec.secrets' psk
    assert "old-secret" not in r.stdout and "new-secret" not in r.stdout
    assert "(secret: contents not shown)" in r.stdout and "AAAA" not in r.stdout

    # No explanation, no terminal: nothing is pushed.
    r = sync(n1, "push")
    assert r.returncode == 2 and "give the explanation with -m" in r.stderr
    assert "v1" in n2.path("etc/fw/rules.nft").read_text()

    # A push: the files replaced, the after-command run, the journal on both nodes.
    r = sync(n1, "push", "-m", "allow ssh from the jump host")
    assert r.returncode == 0, r.stderr
    for name in ("rules.nft", "ipsec.secrets", "host.key"):
        assert n2.path(f"etc/fw/{name}").read_bytes() == n1.path(f"etc/fw/{name}").read_bytes()
    assert n2.path("etc/fw/mine.local").read_text() == "s2\n"
    assert f"reloaded {rules}" in n2.path("state/after.log").read_text()
    (mine,), (theirs,) = journal(n1), journal(n2)
    # The peer journals the connection its sshd saw beside the user the pusher names.
    assert theirs["ssh"]["connection"].split()[0] == n1.address  # type: ignore[index]
    # and the key it came with (sshd's ExposeAuthInfo): the lab client key's fingerprint.
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(pair.keys / "client.pub")],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert theirs["ssh"]["key"] == f"ssh-ed25519 {listed[1]}"  # type: ignore[index]
    assert (n2.path("state/sync").stat().st_mode & 0o777) == 0o700
    for record in (mine, theirs):
        assert record["explanation"] == "allow ssh from the jump host"
        assert record["result"] == "applied" and record["user"]
        assert "new-secret" not in json.dumps(record) and "AAAA" not in json.dumps(record)
    assert {f["path"] for f in theirs["files"]} == {
        rules,
        f"{root}/etc/fw/ipsec.secrets",
        f"{root}/etc/fw/host.key",
    }  # type: ignore[index,union-attr]
    assert sync(n1, "status").returncode == 0
    assert "allow ssh from the jump host" in sync(n1, "log").stdout

    # A check on the peer refuses: nothing replaced, refused in both journals.
    n1.path("etc/fw/rules.nft").write_text("BROKEN\n")
    r = sync(n1, "push", "-m", "typo")
    assert r.returncode == 1 and "check of" in r.stderr
    assert "v2" in n2.path("etc/fw/rules.nft").read_text()
    assert not list(n2.path("etc/fw").glob(".carpd-sync-*"))
    assert journal(n2)[-1]["result"].startswith("refused: check of")  # type: ignore[union-attr]
    assert journal(n1)[-1]["result"].startswith("refused:")  # type: ignore[union-attr]

    # Rollback on the peer: the version the push replaced.
    r = sync(n1, "rollback", rules, "-m", "the jump host is gone")
    assert r.returncode == 0, r.stderr
    assert "v1" in n2.path("etc/fw/rules.nft").read_text()
    assert journal(n2)[-1]["rollback"] is True


def test_an_unreachable_peer_is_an_error_in_bounded_time_and_changes_nothing(
    pair: SshPair,
) -> None:
    n1, n2 = setup_nodes(pair, FILES.format(root=pair.root))
    # n2 drops everything to its sshd: connect times out (no refusal to hurry it).
    drop = (
        "table inet lab {\n chain input {\n  type filter hook input priority 0\n"
        "  tcp dport 22 drop\n }\n}\n"
    )
    assert n2.run("nft", "-f", "-", stdin=drop).returncode == 0
    n1.path("etc/carpd.toml").write_text(n1.path("etc/carpd.toml").read_text() + "# changed\n")
    before = n2.path("etc/carpd.toml").read_text()
    for args in (("status",), ("push", "-m", "x")):
        t0 = time.monotonic()
        r = sync(n1, *args)
        took = time.monotonic() - t0
        assert r.returncode == 3, (args, r.stdout, r.stderr)
        assert "root@203.0.113.2" in r.stderr
        assert took < 3 * TIMEOUT + bounds.COMMAND, f"{args}: {took:.1f} s"  # connect, hello
    assert n2.path("etc/carpd.toml").read_text() == before
    drift = json.loads(n1.path("state/sync/status.json").read_text())
    assert "unreachable" in drift["error"] or "did not answer" in drift["error"]


def test_two_pushes_at_once_are_serialized(pair: SshPair) -> None:
    n1, n2 = setup_nodes(pair, FILES.format(root=pair.root))
    n1.path("etc/carpd.toml").write_text(n1.path("etc/carpd.toml").read_text() + "# one\n")
    procs = [
        n1.spawn(
            *sync_argv(n1, "push", "-m", f"push {i}"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in (1, 2)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    said = sorted(o[0].decode().strip().splitlines()[-1] for o in outs)
    assert said[0].startswith("nothing to push") and said[1].startswith("pushed 1 file(s)")
    assert [r["result"] for r in journal(n2)] == ["applied"]
    assert n2.path("etc/carpd.toml").read_text() == n1.path("etc/carpd.toml").read_text()


# The pusher's own bounds until the peer applies: the first answer (ssh's handshake, the
# peer's carpctl starting) within twice the timeout, the listing and the read within one
# each. Then the peer stages each file and runs its check, a helper process.
REACHES_APPLY = 4 * TIMEOUT
STAGES_FILE = bounds.COMMAND


def serve_pid(node: SshNode, deadline: float) -> int:
    """The peer's end of a push: the ``carpctl sync ... serve`` the pusher's ssh started."""
    while time.monotonic() < deadline:
        for pid in pids(node.host):
            with contextlib.suppress(OSError):
                args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if b"sync" in args and args[-2:] == [b"serve", b""]:
                    return pid
        time.sleep(0.01)
    raise TimeoutError(f"{node.host.name}: no sync serve")


def test_an_interrupted_push_leaves_every_file_old_or_new(pair: SshPair) -> None:
    """The peer's end dies (a crash, a cut connection) at three moments of one push of 16
    files: as it starts, while it stages the replacements, and while it renames them
    into place (some files replaced, some not yet). Each time the push fails, every file
    is the old or the new version, and the next push completes and leaves no temporary
    file behind. The moments are awaited, not slept for: with a sleep, the push ran
    anywhere from before the peer's end existed to after it had finished."""
    n1, n2 = setup_nodes(pair, FILES.format(root=pair.root))
    rng = random.Random(13)
    for node in (n1, n2):
        node.path("etc/fw").mkdir()
    fw = n2.path("etc/fw")
    names = [f"f{i:02d}" for i in range(16)]
    # Not UTF-8: the diff says "Binary files ... differ" instead of diffing and masking
    # megabytes of text, which took 25 s a push and is no part of this claim.
    old = {n: bytes([0x80 + i]) * 300_000 for i, n in enumerate(names)}
    new = {n: bytes([0xA0 + i]) * 300_000 for i, n in enumerate(names)}
    for n in names:
        n1.path(f"etc/fw/{n}").write_bytes(new[n])
        n2.path(f"etc/fw/{n}").write_bytes(old[n])

    def staged() -> int:
        return sum(p.name.startswith(".carpd-sync-") for p in fw.iterdir())

    def reached(moment: str, k: int, before: dict[str, int]) -> bool:
        if moment == "staging":  # k replacements written beside their files
            return staged() >= k
        if moment == "committing":  # k files renamed into place
            return sum((fw / n).stat().st_ino != ino for n, ino in before.items()) >= k
        return True  # as the peer's end starts

    argv = sync_argv(n1, "push", "-m", "big")
    for attempt, moment in enumerate(("start", "staging", "committing")):
        before = {n: (fw / n).stat().st_ino for n in names}
        pending = sum((fw / n).read_bytes() == old[n] for n in names)
        # Never the last step of a stage: the push is still under way when the peer dies.
        k = rng.randint(1, pending // 2 if moment == "committing" else pending - 1)
        push = n1.spawn(*argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + REACHES_APPLY + len(names) * STAGES_FILE
        pid = serve_pid(n2, time.monotonic() + 2 * TIMEOUT)
        while not reached(moment, k, before):
            assert time.monotonic() < deadline, f"{moment}: the push never got there"
            time.sleep(0.001)
        os.kill(pid, signal.SIGKILL)
        assert push.wait(timeout=3 * TIMEOUT) != 0, f"{moment}: the push was not interrupted"
        for n in names:
            data = (fw / n).read_bytes()
            assert data in (old[n], new[n]), f"attempt {attempt} ({moment}): {n} is half written"
        now_new = sum((fw / n).read_bytes() == new[n] for n in names)
        if moment == "committing":  # some replaced, some not yet
            assert len(names) - pending + k <= now_new < len(names), (k, now_new)
        else:
            assert now_new == len(names) - pending, (moment, now_new)
    assert staged() > 0  # the killed ones' replacements, left behind
    r = sync(n1, "push", "-m", "again")
    assert r.returncode == 0, r.stderr
    assert all((fw / n).read_bytes() == new[n] for n in names)
    assert staged() == 0  # the interrupted ones' temps, removed


OVERLAY_FILES = """
[[sync.files]]
path = "{root}/etc/carpd.toml"
check = [{carpd}, "--check", "--config", "{{new}}"]
after = [{carpctl}, "--socket", "{root}/state/carpd.sock", "reload"]
"""


def test_one_shared_carpd_toml_keeps_each_nodes_own_values_and_reloads_without_a_flap(
    pair: SshPair, lab: Lab
) -> None:
    """The overlay (node.toml, never synced) gives each node its carpdev and advskew; a
    push of carpd.toml is checked by the peer's carpd with the peer's overlay, and the
    peer reloads it (carpctl reload) with no transition."""
    carpd = ", ".join(json.dumps(a) for a in carpd_argv())
    files = OVERLAY_FILES.format(root=pair.root, carpd=carpd, carpctl=json.dumps(CARPCTL))
    n1, n2 = setup_nodes(pair, files)
    for n, (node, dev) in enumerate(((n1, "lan0"), (n2, "lan1")), start=1):
        lab.add_interface(node.host, dev, "br0", f"192.0.2.{n + 1}/24")
    n2.path("etc/node.toml").write_text(
        n2.path("etc/node.toml").read_text() + '[carp.lan]\ncarpdev = "lan1"\nadvskew = 100\n'
    )
    config = f"{pair.root}/etc/carpd.toml"
    procs, logs = [], []
    for node, state in ((n1, "MASTER"), (n2, "BACKUP")):  # the one that must win first
        proc = node.spawn(
            *carpd_argv("--config", config), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert proc.stdout is not None
        log = LogWatch(proc.stdout)
        log.wait_for(rf"lan: state transition: \S+ -> {state}", bounds.first_master(3.4))
        procs.append(proc)
        logs.append(log)
    logs[1].wait_for(r"carpd \S+ started", bounds.START_UP)

    # A change to the shared file on n1, pushed: n2 checks it with its own overlay,
    # takes it, reloads, and keeps lan1 and advskew 100.
    text = n1.path("etc/carpd.toml").read_text().replace("[sync]", "hook_timeout = 20.0\n[sync]", 1)
    n1.path("etc/carpd.toml").write_text(text)
    mark = logs[1].mark()
    r = sync(n1, "push", "-m", "hooks may take 20 s")
    assert r.returncode == 0, r.stdout + r.stderr
    assert n2.path("etc/carpd.toml").read_text() == text
    logs[1].wait_for(r"configuration reloaded: 1 vhid\(s\) unchanged", bounds.COMMAND, mark)
    status = json.loads(
        n2.carpctl("--socket", f"{pair.root}/state/carpd.sock", "--json", "status").stdout
    )
    (vh,) = status["vhosts"]
    assert (vh["carpdev"], vh["advskew"], vh["state"]) == ("lan1", 100, "BACKUP")
    assert not [x for x in logs[1].lines[mark:] if "state transition" in x]
    assert not [x for x in logs[0].lines if "MASTER -> " in x]

    # A shared file valid here that the peer's carpd refuses (its overlay names the vhid
    # by its old name): nothing replaced, nothing reloaded.
    mark = logs[1].mark()
    n1.path("etc/carpd.toml").write_text(text.replace('name = "lan"', 'name = "lan2"', 1))
    r = sync(n1, "push", "-m", "rename the vhid")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "carp.lan: no [[carp]] of that name (there are: lan2)" in r.stderr
    assert n2.path("etc/carpd.toml").read_text() == text
    assert not [x for x in logs[1].lines[mark:] if "reload" in x]
