"""This node's [[sync.files]]: which paths are synced, with which check, after-command and
secrecy. Both sides go only through it: the serving side reads, lists and writes only
these paths and runs only these commands, whatever the pusher asks, and the pushing side
keeps a peer's paths to them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from carpd.sync.files import FileInfo, Place, excluded, info_at, open_place, read_at, walk

if TYPE_CHECKING:
    from carpd.config import Config


class NotSynced(Exception):
    pass


@dataclass(frozen=True)
class Root:
    path: str
    exclude: tuple[str, ...] = ()
    check: tuple[str, ...] | None = None
    after: tuple[str, ...] | None = None
    secret: bool = False


class Scope:
    def __init__(self, roots: Iterable[Root], secrets: Iterable[str] = ()) -> None:
        self.roots = tuple(roots)
        self.secrets = set(secrets)

    @staticmethod
    def of(config: Config) -> Scope:
        roots = [
            Root(os.path.normpath(f.path), f.exclude, f.check, f.after, f.secret)
            for f in config.sync.files
        ]
        secrets = {c.passfile.path for c in config.carp if c.passfile is not None}
        secrets |= {p for p in (config.web.tls_key, config.web.users_file) if p}
        return Scope(roots, {os.path.normpath(p) for p in secrets})

    def locate(self, path: object) -> tuple[Root, tuple[str, ...]] | None:
        """The root ``path`` is synced by (the innermost) and the names below it; None
        for a path that is not synced here, excluded, or not written plainly (relative,
        with `..`, `.` or `//`)."""
        if not isinstance(path, str) or "\0" in path or not path.startswith("/"):
            return None
        if os.path.normpath(path) != path or path.startswith("//"):
            return None
        found: tuple[Root, tuple[str, ...]] | None = None
        for root in self.roots:
            if path == root.path:
                rel: tuple[str, ...] = ()
            elif path.startswith(root.path.rstrip("/") + "/"):
                rel = tuple(path[len(root.path.rstrip("/")) + 1 :].split("/"))
                if excluded(rel, root.exclude):
                    continue
            else:
                continue
            if found is None or len(root.path) > len(found[0].path):
                found = (root, rel)
        return found

    def root(self, path: str) -> Root:
        found = self.locate(path)
        if found is None:
            raise NotSynced(f"{path}: not under this node's [[sync.files]]")
        return found[0]

    def secret(self, path: str) -> bool:
        found = self.locate(path)
        return path in self.secrets or bool(found and found[0].secret)

    def expand(self) -> Iterator[str]:
        """Every path the roots name (a file, or the regular files under a directory)."""
        seen = set()
        for root in self.roots:
            for path in walk(root.path, root.exclude):
                if path not in seen and self.locate(path) is not None:
                    seen.add(path)
                    yield path

    @contextlib.contextmanager
    def place(self, path: str, create: bool = False) -> Iterator[Place]:
        """The synced file ``path``, found once (NotSynced if it is none of ours)."""
        found = self.locate(path)
        if found is None:
            raise NotSynced(f"{path}: not under this node's [[sync.files]]")
        place = open_place(found[0].path, found[1], create)
        try:
            yield place
        finally:
            place.close()

    def info(self, path: str) -> FileInfo | None:
        try:
            with self.place(path) as p:
                return info_at(p)
        except (NotSynced, OSError):
            return None

    def read(self, path: str) -> bytes | None:
        try:
            with self.place(path) as p:
                got = read_at(p)
        except (NotSynced, OSError):
            return None
        return None if got is None else got[0]
