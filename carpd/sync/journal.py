"""The sync journal, one per node: a JSON line per push, refused ones too (time, user,
the ssh connection it came over, explanation, files with their hashes, the masked diff),
and the versions a push replaced, by hash, for rollback. In ``state_dir/sync``; a lock
there serializes pushes.

Everything here is private to root: old versions of secret files are kept here, and
`carpctl sync` runs over ssh, outside the unit's UMask. The directories are 0700 and the
files 0600 whatever the umask, and older, looser modes are repaired at start.

Each record carries ``prev``, the SHA-256 of the line before it (None for the first), so
an edited, inserted or removed record shows; records of an older carpd, without it, are
the start of the chain."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carpd.sync.files import digest

_FILE = os.O_NOFOLLOW | os.O_CLOEXEC
_SHA = re.compile(r"[0-9a-f]{64}")


class LockTimeout(Exception):
    pass


@dataclass
class Read:
    """The journal's records, and what is wrong with the file (1-based line numbers)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    unparsable: list[int] = field(default_factory=list)
    broken: list[int] = field(default_factory=list)  # a record that does not follow its line


def _line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def _private_dir(path: Path) -> None:
    """``path`` made if missing, and 0700 (never through a symlink)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | _FILE)
    try:
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def _open_private(path: Path, flags: int) -> int:
    """Open (or create) a file 0600 whatever the umask, and repair an older mode."""
    fd = os.open(path, flags | _FILE, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Journal:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "sync"
        self.path = self.dir / "journal.jsonl"
        self.versions = self.dir / "versions"
        self.status = self.dir / "status.json"  # the last `carpctl sync status`, for carpd

    def secure(self) -> None:
        """Repair what an older carpctl left under umask 022: 0755 directories, 0644
        journal, status and old versions (of passfiles too)."""
        for directory in (self.dir, self.versions):
            try:
                st = os.lstat(directory)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                with contextlib.suppress(PermissionError):  # not root: a `log` still works
                    _private_dir(directory)
                    for entry in os.scandir(directory):
                        if entry.is_file(follow_symlinks=False):
                            os.close(_open_private(Path(entry.path), os.O_RDONLY))

    def _ensure(self, *dirs: Path) -> None:
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        for d in (self.dir, *dirs):
            _private_dir(d)

    def append(self, record: dict[str, Any]) -> None:
        """One line, chained to the line before it (under a lock of its own: the pusher
        appends outside the push lock)."""
        self._ensure()
        fd = _open_private(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            last, torn = _last_line(fd)
            if torn:  # a crash mid-append: that line ends here, the next is whole
                _write_all(fd, b"\n")
            prev = None if last is None else _line_hash(last)
            line = json.dumps({**record, "prev": prev}, sort_keys=True) + "\n"
            _write_all(fd, line.encode())  # one write of one line
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> Read:
        out = Read()
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return out
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        chained = False
        for n, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                out.unparsable.append(n)
                continue
            out.records.append(record)
            if "prev" in record:
                chained = True
                if record["prev"] != (_line_hash(lines[n - 2]) if n > 1 else None):
                    out.broken.append(n)
            elif chained:  # a record without a hash after chained ones: inserted
                out.broken.append(n)
        return out

    def records(self) -> list[dict[str, Any]]:
        return self.read().records

    def problems(self, read: Read | None = None) -> list[str]:
        """Warnings for `sync log` and `sync status`: lines skipped, the chain broken."""
        read = read if read is not None else self.read()
        out = []
        if read.unparsable:
            lines = ", ".join(map(str, read.unparsable))
            out.append(
                f"journal {self.path}: {len(read.unparsable)} unparsable line(s) skipped: {lines}"
            )
        for n in read.broken:
            out.append(
                f"journal {self.path}: the chain is broken at line {n}: it does not follow the "
                "line before it (a record was edited, inserted or removed)"
            )
        return out

    def keep(self, data: bytes) -> str:
        """Store a version by its hash (once), 0600; the hash."""
        sha = digest(data)
        path = self.versions / sha
        if not path.exists():
            self._ensure(self.versions)
            tmp = path.with_suffix(".tmp")
            fd = _open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            try:
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        return sha

    def version(self, sha: str) -> bytes:
        if not isinstance(sha, str) or not _SHA.fullmatch(sha):
            raise ValueError(f"not a version's hash: {sha!r}")
        return (self.versions / sha).read_bytes()

    def save_status(self, report: dict[str, Any]) -> None:
        """For carpd's status, page and metrics (drift), read from the file, never ssh."""
        self._ensure()
        tmp = self.status.with_suffix(".tmp")
        fd = _open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            _write_all(fd, json.dumps(report).encode())
        finally:
            os.close(fd)
        os.replace(tmp, self.status)

    @contextlib.contextmanager
    def lock(self, timeout: float) -> Iterator[None]:
        """One push at a time on this node, local or from the peer."""
        self._ensure()
        fd = _open_private(self.dir / "lock", os.O_RDWR | os.O_CREAT)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LockTimeout(f"another push holds {self.dir / 'lock'}") from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _last_line(fd: int) -> tuple[bytes | None, bool]:
    """The file's last line (without its newline; None if empty), and whether it is torn
    (no newline at its end)."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None, False
    torn = os.pread(fd, 1, size - 1) != b"\n"
    end = size if torn else size - 1
    tail, pos = b"", end
    while pos > 0:
        step = min(65536, pos)
        pos -= step
        tail = os.pread(fd, step, pos) + tail
        cut = tail.rfind(b"\n")
        if cut >= 0:
            return tail[cut + 1 :], torn
    return tail, torn


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def user() -> str:
    """Who is behind it: the user sudo ran it for, else the login."""
    for var in ("SUDO_USER", "LOGNAME", "USER"):
        if os.environ.get(var):
            return os.environ[var]
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name
