"""The ``[sync]`` table: ``carpctl sync`` keeps files the same on the peer."""

from __future__ import annotations

from pydantic import Field

from carpd.config.values import Frozen, PathSetting, StrictBool


class SyncFile(Frozen):
    """A ``[[sync.files]]`` entry: a file, or a directory and everything under it."""

    path: PathSetting
    """A file, or a directory and everything under it."""
    exclude: tuple[str, ...] = ()
    """Glob patterns of paths under a directory to leave out."""
    check: tuple[str, ...] | None = Field(default=None, min_length=1)
    """A command run on the peer before the new version replaces the old one (``{new}``: the
    new version, beside the old one; ``{path}``: the file); an exit other than 0 refuses the
    push."""
    after: tuple[str, ...] | None = Field(default=None, min_length=1)
    """A command run on the peer after the push, e.g. a reload."""
    secret: StrictBool = False
    """Never show its contents (diff, journal, log): only that it changed."""


class SyncConfig(Frozen):
    """The ``[sync]`` table: ``carpctl sync`` keeps files the same on the peer, over the
    system's OpenSSH (its keys, known_hosts and agent)."""

    peer: str | None = Field(default=None, min_length=1, pattern=r"^[^\s-][^\s]*$")
    """The other node, as ssh names it (``root@fw2``); usually in the overlay."""
    ssh: tuple[str, ...] = Field(default=("ssh",), min_length=1)
    """The ssh command and its options."""
    remote: str = "carpctl"
    """The carpctl command on the peer."""
    timeout: float = Field(default=10.0, gt=0, le=600, strict=True, allow_inf_nan=False)
    """Seconds for ssh's connection and for each answer (the first: twice that); then the
    peer counts as unreachable."""
    files: tuple[SyncFile, ...] = ()
    """The files to keep the same, one [[sync.files]] table each."""
