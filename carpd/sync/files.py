"""Files as sync sees them: what a path holds (hash, mode, owner, symlink), the paths
under the configured roots, and replacing a file atomically."""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

TEMP_PREFIX = ".carpd-sync-"  # a replacement being written, beside its file


@dataclass(frozen=True)
class FileInfo:
    sha256: str
    mode: int  # permission bits
    uid: int
    gid: int
    link: str | None = None  # the path is a symlink to this (its target is what syncs)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(d: dict[str, Any]) -> FileInfo:
        return FileInfo(**d)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def info(path: Path) -> FileInfo | None:
    """What ``path`` holds, following a symlink; None if there is no regular file."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            return None
        link = os.readlink(path) if path.is_symlink() else None
        return FileInfo(
            digest(path.read_bytes()), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, link
        )
    except OSError:
        return None


def expand(roots: Iterable[tuple[Path, tuple[str, ...]]]) -> Iterator[Path]:
    """Every file a root names: the file, or each file under the directory (not the
    ones an exclude matches, nor our own half-written replacements)."""
    for root, exclude in roots:
        if not root.is_dir():
            yield root
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                rel = str(path.relative_to(root))
                if name.startswith(TEMP_PREFIX) or any(
                    fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(name, pat) for pat in exclude
                ):
                    continue
                yield path


def replace(path: Path, data: bytes, like: FileInfo | None, default: FileInfo) -> Path:
    """Write ``data`` beside ``path`` (a symlink: beside its target), with the owner and
    mode of the file it replaces (``like``) or else ``default``'s; fsynced, not yet in
    place. Returns the temporary file: ``commit`` renames it over the file."""
    real = path.resolve() if path.is_symlink() else path
    real.parent.mkdir(parents=True, exist_ok=True)
    meta = like or default
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=real.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), meta.mode)
            with contextlib.suppress(PermissionError):  # not root: keep ours
                os.fchown(f.fileno(), meta.uid, meta.gid)
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def commit(tmp: Path, path: Path) -> None:
    """rename(2) the replacement over the file (a symlink stays, its target changes):
    every reader sees the old file or the new one, never a half-written one."""
    real = path.resolve() if path.is_symlink() else path
    os.replace(tmp, real)
    dirfd = os.open(real.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def remove_stale_temps(paths: Iterable[Path]) -> None:
    """Replacements an interrupted push left beside these files."""
    for directory in {(p.resolve() if p.is_symlink() else p).parent for p in paths}:
        with contextlib.suppress(OSError):
            for stale in directory.glob(TEMP_PREFIX + "*"):
                stale.unlink(missing_ok=True)
