"""Files as sync sees them: what a path holds (hash, mode, owner, symlink), the paths
under a configured root, and replacing a file atomically.

A file is reached once, as a `Place`: an open directory and a name in it. A configured
path that is a symlink is followed (its target is what syncs); below a configured
directory nothing is followed: every directory on the way is opened with O_NOFOLLOW and
the file too, so a symlink planted inside a synced directory can neither be read nor
written through, and a path checked is the path written (no second resolution)."""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

TEMP_PREFIX = ".carpd-sync-"  # a replacement being written, beside its file
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


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
        """From the wire; ValueError unless every field has its type."""
        try:
            info = FileInfo(**d)
        except TypeError:
            raise ValueError(f"not a file's description: {d!r}") from None
        ints = (info.mode, info.uid, info.gid)
        if not isinstance(info.sha256, str) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in ints
        ):
            raise ValueError(f"not a file's description: {d!r}")
        if info.link is not None and not isinstance(info.link, str):
            raise ValueError(f"not a file's description: {d!r}")
        return info


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Place:
    """Where a synced file is, found once: an open directory and the file's name in it."""

    path: str  # as configured and shown
    dir_fd: int
    dir_path: str  # the directory, resolved (for a check's {new})
    name: str
    link: str | None  # the configured path is a symlink to this

    def close(self) -> None:
        os.close(self.dir_fd)


def _subdir(fd: int, name: str, create: bool) -> int:
    """The directory ``name`` in ``fd``, never through a symlink; made if ``create``."""
    try:
        return os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=fd)
    except FileNotFoundError:
        if not create:
            raise
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o755, dir_fd=fd)
    return os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=fd)


def open_place(root: str, rel: tuple[str, ...], create: bool) -> Place:
    """The place of ``root`` itself (``rel`` empty: a symlink there is followed, once) or
    of ``rel`` under the directory ``root``. ``create``: make missing directories."""
    if not rel:
        link = os.readlink(root) if os.path.islink(root) else None
        parent, name = os.path.split(os.path.realpath(root))
        if create:
            os.makedirs(parent, exist_ok=True)
        return Place(root, os.open(parent, _DIR), parent, name, link)
    top = os.path.realpath(root)
    if create:
        os.makedirs(top, exist_ok=True)
    fd = os.open(top, _DIR)
    where = top
    try:
        for part in rel[:-1]:
            sub = _subdir(fd, part, create)
            os.close(fd)
            fd, where = sub, os.path.join(where, part)
    except BaseException:
        os.close(fd)
        raise
    return Place(os.path.join(root, *rel), fd, where, rel[-1], None)


def read_at(place: Place) -> tuple[bytes, os.stat_result] | None:
    """The file's contents and stat; None if there is no regular file (a symlink below a
    configured directory is none: it is not opened)."""
    try:
        fd = os.open(
            place.name,
            os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
            dir_fd=place.dir_fd,
        )
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            return None
        return f.read(), st


def irregular(place: Place) -> bool:
    """Something other than a regular file is there (a symlink, a directory ...)."""
    try:
        st = os.stat(place.name, dir_fd=place.dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return not stat.S_ISREG(st.st_mode)


def info_at(place: Place) -> FileInfo | None:
    got = read_at(place)
    if got is None:
        return None
    data, st = got
    return FileInfo(digest(data), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, place.link)


def write_temp(place: Place, data: bytes, meta: FileInfo) -> str:
    """``data`` beside the file, with ``meta``'s owner and mode, fsynced, not yet in place.
    Returns the temporary file's name: ``commit`` renames it over the file."""
    name = TEMP_PREFIX + secrets.token_hex(8)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(name, flags, 0o600, dir_fd=place.dir_fd)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            with contextlib.suppress(PermissionError):  # not root: keep ours
                os.fchown(f.fileno(), meta.uid, meta.gid)
            os.fchmod(f.fileno(), meta.mode)  # after fchown, which clears setuid bits
            os.fsync(f.fileno())
    except BaseException:
        unlink_temp(place, name)
        raise
    return name


def commit(place: Place, tmp: str) -> None:
    """rename(2) the replacement over the file (a configured symlink stays, its target
    changes): every reader sees the old file or the new one, never a half-written one."""
    os.replace(tmp, place.name, src_dir_fd=place.dir_fd, dst_dir_fd=place.dir_fd)
    os.fsync(place.dir_fd)


def unlink_temp(place: Place, tmp: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=place.dir_fd)


def remove_stale_temps(place: Place) -> None:
    """Replacements an interrupted push left beside this file."""
    with contextlib.suppress(OSError):
        for name in os.listdir(place.dir_fd):
            if name.startswith(TEMP_PREFIX):
                unlink_temp(place, name)


def excluded(rel: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    """Left out of a directory root: a pattern matches the path under it or the name, or
    it is one of our own half-written replacements."""
    path = "/".join(rel)
    return rel[-1].startswith(TEMP_PREFIX) or any(
        fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(rel[-1], pat) for pat in exclude
    )


def walk(root: str, exclude: tuple[str, ...]) -> Iterator[str]:
    """Every file a root names: the file, or each regular file under the directory (not
    through a symlink, nor the excluded ones)."""
    if not os.path.isdir(root):
        yield root
        return
    top = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(top):  # symlinked directories: not entered
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = tuple(os.path.relpath(full, top).split(os.sep))
            if os.path.islink(full) or excluded(rel, exclude):
                continue
            yield os.path.join(root, *rel)
