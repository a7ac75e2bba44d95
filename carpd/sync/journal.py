"""The sync journal, one per node: a JSON line per push, refused ones too (time, user,
explanation, files with their hashes, the masked diff), and the versions a push replaced,
by hash, for rollback. In ``state_dir/sync``; a lock there serializes pushes."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from carpd.sync.files import digest


class LockTimeout(Exception):
    pass


class Journal:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "sync"
        self.path = self.dir / "journal.jsonl"
        self.versions = self.dir / "versions"
        self.status = self.dir / "status.json"  # the last `carpctl sync status`, for carpd

    def append(self, record: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, sort_keys=True) + "\n"
        with open(self.path, "a") as f:  # one write of one line: appends do not interleave
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def records(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            with contextlib.suppress(ValueError):  # a torn last line (a crash mid-append)
                out.append(json.loads(line))
        return out

    def keep(self, data: bytes) -> str:
        """Store a version by its hash (once); the hash."""
        sha = digest(data)
        path = self.versions / sha
        if not path.exists():
            self.versions.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return sha

    def version(self, sha: str) -> bytes:
        return (self.versions / sha).read_bytes()

    @contextlib.contextmanager
    def lock(self, timeout: float) -> Iterator[None]:
        """One push at a time on this node, local or from the peer."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "lock", "w") as f:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LockTimeout(f"another push holds {self.dir / 'lock'}") from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def user() -> str:
    """Who is behind it: the user sudo ran it for, else the login."""
    for var in ("SUDO_USER", "LOGNAME", "USER"):
        if os.environ.get(var):
            return os.environ[var]
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name
