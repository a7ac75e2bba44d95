"""A sync peer on local files: its carpd.toml, and the real `carpctl sync serve` fed a
request stream in a subprocess (what `ssh PEER` runs), as the pusher drives it."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

CARP = (
    '[[carp]]\nname = "lan"\nvhid = 1\ncarpdev = "lan0"\npass = "x"\naddresses = ["192.0.2.1/24"]\n'
)
SSH_CONNECTION = "198.51.100.7 50022 192.0.2.2 22"


def peer_config(d: Path, files: str, sync: str = "") -> Path:
    """A node whose [[sync.files]] are ``files``; state in d/state, files in d/etc."""
    (d / "etc").mkdir(exist_ok=True)
    path = d / "carpd.toml"
    path.write_text(
        f'[global]\nstate_dir = "{d}/state"\ncontrol_socket = "{d}/carpd.sock"\n'
        f"[sync]\n{sync}\n{files}\n{CARP}"
    )
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def apply_req(
    path: Path, content: bytes, expect: bytes | None, mode: int = 0o644, **extra: Any
) -> dict[str, Any]:
    """An `apply` as a pusher sends it (``extra``: check, after, record)."""
    record = extra.pop("record", {"user": "alice", "from": "fw1", "explanation": "t"})
    meta = {"sha256": sha(content), "mode": mode, "uid": os.getuid(), "gid": os.getgid()}
    meta["link"] = None
    entry = {
        "path": str(path),
        "content": b64(content),
        "expect": None if expect is None else sha(expect),
        "meta": meta,
        **extra,
    }
    return {"op": "apply", "files": [entry], "record": record}


def serve_stream(
    config: Path,
    requests: list[dict[str, Any]],
    env: dict[str, str] | None = None,
    umask: int = 0o022,
) -> list[dict[str, Any]]:
    """`carpctl sync --config CONFIG serve` with these requests on stdin: its answers."""
    argv = [sys.executable, "-m", "carpd.ctl", "sync", "--config", str(config), "serve"]
    base = {k: v for k, v in os.environ.items() if not k.startswith("SSH_")}
    r = subprocess.run(
        argv,
        input="".join(json.dumps(q) + "\n" for q in requests),
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **(env or {})},
        preexec_fn=lambda: os.umask(umask) and None,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    answers = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(answers) == len(requests), r.stdout + r.stderr
    return answers


def journal_lines(state: Path) -> list[dict[str, Any]]:
    path = state / "sync" / "journal.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()]
