"""The pushing side of a sync against a hostile peer, and what it keeps and prints
(security review, items 6, 9 and 20): secrets masked in diffs and command output, the
peer's paths kept to the synced roots, no raw terminal escapes, and a journal whose
records are chained so that an edit shows."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers_sync import b64, peer_config, sha

from carpd.ctl import main as ctl
from carpd.daemon.observers.configsync import ConfigSync, Drift
from carpd.sync.journal import Journal
from carpd.sync.mask import mask, unified

# Real-looking lines: (the line, the secret in it that must not be shown).
LEAKS = [
    ("    auth_pass hunter2-kad", "hunter2-kad"),  # keepalived.conf
    ("PresharedKey = 7pBbyd3kPzM8yQ4oNkmZtmo4a0HoQ1zKsvh4GbqqSGc=", "7pBbyd3kP"),  # wg0.conf
    ("PrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=", "yAnz5TF"),
    ('  "password": "hunter2json",', "hunter2json"),  # JSON
    ('{"user": "bob", "password": "hunter2json", "port": 5432}', "hunter2json"),
    ("client_secret=abc123def456", "abc123def456"),  # OAuth / oidc
    ('db_password = "s3cr3t-db"', "s3cr3t-db"),
    ("DB_PASSWORD: s3cr3t-yaml", "s3cr3t-yaml"),
    ("url = https://admin:Sup3rS3cret@repo.example.net/simple/", "Sup3rS3cret"),
    ("dsn: postgres://carpd:pgS3cret@db.example.net:5432/carpd", "pgS3cret"),
    ("rootpw {SSHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "W6ph5Mm5Pz8"),  # slapd.conf
    ("rootpw --iscrypted $6$salt$kickstarthash", "kickstarthash"),  # kickstart
    ("bind_pw ldapS3cret", "ldapS3cret"),
    ("bindpw ldapS3cret2", "ldapS3cret2"),  # nslcd.conf
    ("password = correct horse battery staple", "horse battery"),
    ('psk "ipsec-psk"', "ipsec-psk"),
    (': PSK "strongswan-psk"', "strongswan-psk"),  # ipsec.secrets
    ('  comment "psk=Sup3rS3cret-IPsec"', "Sup3rS3cret"),  # in an nft rule
    ("wpa_passphrase=wifi-S3cret", "wifi-S3cret"),  # hostapd.conf
    ("secret = 'rad1us'", "rad1us"),
    ("api_key: ak-12345", "ak-12345"),
    ("Authorization: Basic YWRtaW46c2VjcmV0", "YWRtaW46c2VjcmV0"),
    ("--password=cli-S3cret", "cli-S3cret"),
    ("spring.datasource.password=jdbcS3cret", "jdbcS3cret"),  # Java properties
]
KEPT = [
    "PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
    "proxy_pass http://backend.example.net;",
    "auth_type PASS",
    "passive yes",
    "url = https://repo.example.net/simple/",
    "table inet fw {",
    "include /etc/ipsec.secrets here",
    "check of /etc/carpd/lan.pass failed (1)",
]
BLOCKS = [
    "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBGPGPsecret\n=abcd\n"
    "-----END PGP PRIVATE KEY BLOCK-----",
    "-----BEGIN OpenVPN Static key V1-----\n6acef03f62675b4bvpnsecret\n"
    "-----END OpenVPN Static key V1-----",
    "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIECsecret\n-----END EC PRIVATE KEY-----",
    "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqsecret\n"
    "-----END ENCRYPTED PRIVATE KEY-----",
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rsecret\n",  # cut off: no END
]


@pytest.mark.parametrize(("line", "secret"), LEAKS)
def test_mask_hides_the_secret_of_a_real_looking_line(line: str, secret: str) -> None:
    out = mask(line + "\n")
    assert secret not in out and "********" in out
    assert out.split("********")[0].strip(), "the key stays visible"


@pytest.mark.parametrize("line", KEPT)
def test_mask_leaves_lines_without_secrets_alone(line: str) -> None:
    assert mask(line + "\n") == line + "\n"


def test_mask_hides_a_whole_value_and_whole_key_blocks() -> None:
    assert mask("password = correct horse battery\n") == "password = ********\n"
    assert mask("https://admin:pw@host.example/") == "https://admin:********@host.example/"
    for block in BLOCKS:
        text = f"before\n{block}\nafter\n"
        out = mask(text)
        assert "secret" not in out and out.startswith("before\n"), out
        assert unified("/k", b"old\n", text.encode(), secret=False, peer="fw2") == (
            "--- fw2:/k\n+++ here:/k\n(secret: contents not shown)\n"
        )


FAKE_PEER = """
import json, sys
spec = json.load(open(sys.argv[1]))
for line in sys.stdin:
    req = json.loads(line)
    op = req["op"]
    if op == "hello":
        a = {"ok": True, "protocol": 1, "carpd": "x", "node": "fw2"}
    elif op == "list":
        a = {"ok": True, "files": spec["files"]}
    elif op == "read":
        a = {"ok": True, "contents": {p: spec["content"] for p in req["paths"]}}
    else:
        a = spec["apply"]
    print(json.dumps(a), flush=True)
"""


def hostile_peer(tmp_path: Path, spec: dict[str, Any]) -> Path:
    """This node's config, whose peer (its ``ssh``) is a fake that answers ``spec``."""
    (tmp_path / "fakepeer.py").write_text(FAKE_PEER)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    ssh = json.dumps([sys.executable, str(tmp_path / "fakepeer.py"), str(tmp_path / "spec.json")])
    files = f'[[sync.files]]\npath = "{tmp_path}/etc/dir"\n'
    files += f'[[sync.files]]\npath = "{tmp_path}/etc/lan.pass"\nsecret = true\n'
    return peer_config(tmp_path, files, f'peer = "fw2"\nssh = {ssh}\ntimeout = 20\n')


def meta(data: bytes) -> dict[str, Any]:
    return {"sha256": sha(data), "mode": 0o644, "uid": 0, "gid": 0, "link": None}


SHADOW = b"root:$6$hash-of-roots-password:19000:0:99999:7:::\n"
ESCAPE = "\x1b]0;owned\x07\x1b[2J"


def test_a_hostile_peers_paths_stay_in_the_synced_roots_and_its_escapes_are_shown_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shadow = tmp_path / "shadow"
    shadow.write_bytes(SHADOW)
    root = tmp_path / "etc/dir"
    root.mkdir(parents=True)
    (root / "a.conf").write_text("a\n")
    spec = {
        "files": {
            str(shadow): meta(b"x"),
            f"{root}/../../shadow": meta(b"x"),
            f"{root}/{ESCAPE}": meta(b"x"),
            f"{root}/a.conf": meta(b"x"),
        },
        "content": b64(b"peer's \x1b[2J line\n"),
        "apply": {"ok": False, "error": "no"},
    }
    config = str(hostile_peer(tmp_path, spec))
    assert ctl.main(["sync", "--config", config, "diff"]) == 1
    out, err = capsys.readouterr()
    assert "hash-of-roots" not in out + err and "shadow" not in out + err
    assert "\x1b" not in out + err and "\x07" not in out + err
    assert f"--- fw2:{root}/\\x1b]0;owned\\x07\\x1b[2J" in out
    assert "-peer's \\x1b[2J line" in out

    assert ctl.main(["sync", "--config", config, "status"]) == 1
    out, err = capsys.readouterr()
    assert "shadow" not in out + err and "\x1b" not in out + err
    assert out.splitlines() == [
        f"differs: {root}/a.conf",
        f"only on the peer: {root}/\\x1b]0;owned\\x07\\x1b[2J",
    ]

    # carpctl status shows the drift status wrote (its line rendered by the daemon, as
    # the status command's "text" asks), and the daemon's own strings, escaped.
    found = ConfigSync(lambda: Drift(tmp_path / "state")).report()
    assert found is not None
    vhost = {"name": f"lan{ESCAPE}", "state": "MASTER", "carpdev": "lan0", "vhid": 1,
             "advbase": 1, "advskew": 0, "addresses": ["192.0.2.1/24"]}  # fmt: skip
    result = {"vhosts": [vhost], "config_sync": found.to_json(), "report_lines": found.lines()}
    reply = {"ok": True, "result": result}
    monkeypatch.setattr(ctl, "request", lambda *a, **k: reply)
    assert ctl.main(["--socket", str(tmp_path / "sock"), "status"]) == 0
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err and "\x07" not in out + err
    assert out.startswith("lan\\x1b]0;owned\\x07\\x1b[2J: MASTER carpdev lan0")
    assert f"{root}/\\x1b]0;owned\\x07\\x1b[2J (only on the peer)" in out


def test_the_pusher_masks_what_the_peer_says_about_its_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An older peer (or a hostile one) sends a check's output unmasked: the pusher masks
    it before its journal and its terminal."""
    root = tmp_path / "etc/dir"
    root.mkdir(parents=True)
    (root / "a.conf").write_text("a\n")
    error = 'check of a.conf failed (1): line 3: comment "psk=Sup3rS3cret-IPsec"\x1b[2J'
    spec = {"files": {}, "content": None, "apply": {"ok": False, "error": error}}
    config = str(hostile_peer(tmp_path, spec))
    assert ctl.main(["sync", "--config", config, "push", "-m", "x"]) == 1
    out, err = capsys.readouterr()
    assert "line 3: comment" in err and "Sup3rS3cret" not in out + err and "\x1b" not in err
    journal = (tmp_path / "state/sync/journal.jsonl").read_text()
    assert "line 3: comment" in journal and "Sup3rS3cret" not in journal

    after = [{"path": f"{root}/a.conf", "status": 1, "output": "password = hunter2\x1b[2J"}]
    spec["apply"] = {"ok": True, "applied": [f"{root}/a.conf"], "after": after}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert ctl.main(["sync", "--config", config, "push", "-m", "x"]) == 1
    out, err = capsys.readouterr()
    assert "password = ********" in err and "hunter2" not in out + err and "\x1b" not in err
    assert "hunter2" not in (tmp_path / "state/sync/journal.jsonl").read_text()

    # A secret file's check or after-command: no output at all, masked or not.
    secret = tmp_path / "etc/lan.pass"
    secret.write_text("newcarppass\n")
    hidden = "output not shown (file marked secret)"
    for apply in (
        {"ok": False, "error": f"check of {secret} failed (1): bad line newcarppass"},
        {"ok": True, "after": [{"path": str(secret), "status": 1, "output": "newcarppass"}]},
    ):
        spec["apply"] = apply
        (tmp_path / "spec.json").write_text(json.dumps(spec))
        assert ctl.main(["sync", "--config", config, "push", "-m", "x", str(secret)]) == 1
        out, err = capsys.readouterr()
        assert hidden in err and "carppass" not in out + err
    assert "carppass" not in (tmp_path / "state/sync/journal.jsonl").read_text()


def line_hash(line: str) -> str:
    return hashlib.sha256(line.encode()).hexdigest()


def log(config: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = ctl.main(["sync", "--config", config, "log"])
    out, err = capsys.readouterr()
    return rc, out, err


def test_journal_records_are_chained_and_an_edit_shows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(hostile_peer(tmp_path, {}))
    journal = Journal(tmp_path / "state")
    for n in range(3):
        journal.append({"explanation": f"change {n}", "result": "applied", "prev": "forged"})
    lines = journal.path.read_text().splitlines()
    prevs = [json.loads(x)["prev"] for x in lines]
    assert prevs == [None, line_hash(lines[0]), line_hash(lines[1])]
    assert log(config, capsys)[::2] == (0, "")

    # An edit of the second record: the third no longer follows it.
    lines[1] = lines[1].replace("change 1", "nothing to see")
    journal.path.write_text("\n".join(lines) + "\n")
    rc, out, err = log(config, capsys)
    assert rc == 1 and "nothing to see" in out
    assert f"journal {journal.path}: the chain is broken at line 3" in err

    # The first record removed: the chain does not start at the start.
    journal.path.write_text("\n".join(lines[1:]) + "\n")
    assert "the chain is broken at line 1" in log(config, capsys)[2]

    # A line that is not a record is reported, not skipped silently.
    journal.path.write_text("\n".join([lines[0], "{not json", lines[1]]) + "\n")
    rc, out, err = log(config, capsys)
    assert rc == 1 and f"journal {journal.path}: 1 unparsable line(s) skipped: 2" in err
    assert "the chain is broken at line 3" in err
    # sync status warns too.
    spec = {"files": {}, "content": None, "apply": {}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert ctl.main(["sync", "--config", config, "status"]) == 0
    out, err = capsys.readouterr()
    assert f"warning: journal {journal.path}: 1 unparsable line(s) skipped: 2" in err


def test_an_old_journal_without_hashes_is_the_start_of_the_chain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(hostile_peer(tmp_path, {}))
    journal = Journal(tmp_path / "state")
    journal.path.parent.mkdir(parents=True)
    old = ['{"explanation": "old 1", "result": "applied"}', '{"explanation": "old 2"}']
    journal.path.write_text("\n".join(old) + "\n")
    assert log(config, capsys)[::2] == (0, "")
    journal.append({"explanation": "new", "result": "applied"})
    assert journal.records()[-1]["prev"] == line_hash(old[1])
    rc, out, err = log(config, capsys)
    assert (rc, err) == (0, "") and "old 1" in out and "new" in out
    # A record without a hash after chained ones is an insertion.
    with journal.path.open("a") as f:
        f.write('{"explanation": "inserted"}\n')
    rc, out, err = log(config, capsys)
    assert rc == 1 and "the chain is broken at line 4" in err
