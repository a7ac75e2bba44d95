"""`carpctl sync serve`: the peer's side, on the other end of `ssh PEER`. One JSON
request per line on stdin, one answer per line on stdout, until EOF.

The pusher is not trusted (root on one node must not mean root on the other): this
node's own [[sync.files]] decide which paths it lists, reads and writes, and which check
and after-commands run; a pusher's `check` and `after` are ignored. The journal keeps
the user the pusher claims beside the ssh connection (and key) this node sees.

A push is done under this node's sync lock: the files must still be what the pusher
diffed against (else nothing is replaced), each new version is written beside its file
and fsynced, every check runs on the new versions, and only when all pass are the files
renamed into place, one by one (each is old or new, never half written), the previous
versions kept, the after-commands run and the journal appended.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from carpd import __version__
from carpd.sync.files import (
    FileInfo,
    Place,
    commit,
    digest,
    info_at,
    irregular,
    read_at,
    remove_stale_temps,
    unlink_temp,
    write_temp,
)
from carpd.sync.journal import Journal, now
from carpd.sync.mask import mask
from carpd.sync.scope import NotSynced, Scope

if TYPE_CHECKING:
    from carpd.linux.process import Leftovers

PROTOCOL = 1
COMMAND_TIMEOUT = 60.0  # a check or an after-command on the peer
OUTPUT_BYTES = 2000  # the tail of its output kept, before masking
HIDDEN = "output not shown (file marked secret)"
# What a pusher may say about a push in this node's journal; the rest is this node's.
CLAIMED = ("user", "from", "to", "explanation", "diff", "files", "drill")


class Refused(Exception):
    pass


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def run(argv: tuple[str, ...], new: str | None, path: str, leftovers: Leftovers) -> tuple[int, str]:
    """A check or an after-command: {new} and {path} filled in; its status (127: it did
    not start, or was killed at COMMAND_TIMEOUT) and the tail of its output. Done when it
    exits: a child it leaves running is killed, or left ("leave") without being waited
    for, as is one that holds its output open."""
    import asyncio  # here: carpctl's other commands start without asyncio

    from carpd.linux import process

    args = [a.replace("{new}", new or path).replace("{path}", path) for a in argv]
    r = asyncio.run(
        process.run(
            args, timeout=COMMAND_TIMEOUT, leftovers=leftovers, lines=None, tail_bytes=OUTPUT_BYTES
        )
    )
    if r.status is None:
        return 127, r.error or ""
    return r.status, r.output


def ssh_identity(environ: Mapping[str, str]) -> dict[str, str] | None:
    """The connection sshd says the request came over (``SSH_CONNECTION``: client
    address and port, server address and port) and, with sshd's ExposeAuthInfo, the
    fingerprint of the key that logged in; None when not run by sshd."""
    connection = environ.get("SSH_CONNECTION") or environ.get("SSH_CLIENT")
    if not connection:
        return None
    seen = {"connection": connection}
    keys = []
    with contextlib.suppress(OSError, UnicodeDecodeError):
        with open(environ.get("SSH_USER_AUTH") or os.devnull, "rb") as f:
            lines = f.read(65536).decode().splitlines()
        for line in lines:
            words = line.split()
            if len(words) >= 3 and words[0] == "publickey":
                with contextlib.suppress(binascii.Error, ValueError):
                    blob = base64.b64decode(words[2], validate=True)
                    fp = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
                    keys.append(f"{words[1]} SHA256:{fp}")
    if keys:
        seen["key"] = ", ".join(keys)
    return seen


class Agent:
    def __init__(
        self,
        state_dir: Path,
        lock_timeout: float,
        scope: Scope,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self.journal = Journal(state_dir)
        self.journal.secure()
        self.lock_timeout = lock_timeout
        self.scope = scope
        self.seen = ssh_identity(environ)

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "hello":
            return {"protocol": PROTOCOL, "carpd": __version__, "node": socket.gethostname()}
        if op == "list":  # this node's roots, whatever the pusher names
            found = {p: self.scope.info(p) for p in self.scope.expand()}
            return {"files": {p: i.to_json() for p, i in found.items() if i is not None}}
        if op == "read":
            paths = req["paths"]
            for p in paths:
                self.scope.root(p)  # NotSynced: nothing read
            return {"contents": {p: b64(self.scope.read(p)) for p in paths}}
        if op == "log":
            return {"records": self.journal.records()}
        if op == "apply":
            return self.apply(req["files"], req["record"])
        if op == "record":  # a drill's report, in this node's journal too (a claim)
            return self.record(req["record"])
        if op == "rollback":  # a pusher's check and after are ignored
            return self.rollback(req["path"], req["record"])
        raise Refused(f"unknown request {op!r}")

    def _record(self, claimed: dict[str, Any]) -> dict[str, Any]:
        record = {k: claimed[k] for k in CLAIMED if k in claimed}
        if isinstance(record.get("diff"), str):
            record["diff"] = mask(record["diff"])
        return {**record, "ssh": self.seen}

    def record(self, claimed: dict[str, Any]) -> dict[str, Any]:
        """A drill run from the other node: its report as that node tells it, beside the
        ssh connection this node saw. Nothing on this node changes but the journal."""
        drill = claimed.get("drill")
        if not isinstance(drill, dict) or not isinstance(drill.get("result"), str):
            raise Refused("a record needs a drill report")
        entry = {**self._record(claimed), "at": now(), "result": f"drill {drill['result'][:20]}"}
        self.journal.append(entry)
        return {}

    def apply(
        self, files: list[dict[str, Any]], claimed: dict[str, Any], rollback: bool = False
    ) -> dict[str, Any]:
        record = {**self._record(claimed), **({"rollback": True} if rollback else {})}
        with self.journal.lock(self.lock_timeout):
            done: list[dict[str, Any]] = []  # what was replaced: hashes as found here
            try:
                afters = self._apply(files, done)
            except (Refused, NotSynced) as e:
                self.journal.append({**record, "at": now(), "result": f"refused: {e}"})
                raise Refused(str(e)) from None
            entry = {**record, "at": now(), "files": done, "result": "applied", "after": afters}
            self.journal.append(entry)
            return {"applied": [f["path"] for f in files], "after": afters}

    def _shown(self, path: str, output: str) -> str:
        """A command's output as the journal and the pusher may see it."""
        return HIDDEN if self.scope.secret(path) else mask(output.strip())

    def _apply(
        self, files: list[dict[str, Any]], done: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        roots = [self.scope.root(f["path"]) for f in files]  # NotSynced before anything
        with contextlib.ExitStack() as stack:
            places = []
            for f in files:
                try:
                    places.append(stack.enter_context(self.scope.place(f["path"], create=True)))
                except OSError as e:  # a symlink on the way below a synced directory
                    raise Refused(f"{f['path']}: {e.strerror}: not replaced") from None
            for f, place in zip(files, places, strict=True):
                remove_stale_temps(place)
                if irregular(place):
                    raise Refused(f"{place.path}: not a regular file on this node: not replaced")
                have = info_at(place)
                if (have.sha256 if have else None) != f["expect"]:
                    raise Refused(
                        f"{place.path} changed on this node since the diff was shown: diff again"
                    )
            staged: list[tuple[Place, str, str]] = []  # the place, its replacement, its hash
            try:
                for f, root, place in zip(files, roots, places, strict=True):
                    sent = FileInfo.from_json(f["meta"])  # a new file: no setuid from afar
                    default = FileInfo(sent.sha256, sent.mode & 0o777, sent.uid, sent.gid)
                    data = unb64(f["content"]) or b""
                    tmp = write_temp(place, data, info_at(place) or default)
                    staged.append((place, tmp, digest(data)))
                    if root.check:
                        new = os.path.join(place.dir_path, tmp)
                        status, out = run(root.check, new, place.path, "kill")
                        if status != 0:
                            shown = self._shown(place.path, out)
                            raise Refused(f"check of {place.path} failed ({status}): {shown}")
                for place, tmp, new_sha in staged:
                    old = read_at(place)
                    old_sha = self.journal.keep(old[0]) if old is not None else None
                    commit(place, tmp)
                    done.append({"path": place.path, "old": old_sha, "new": new_sha})
            finally:
                for place, tmp, _ in staged:
                    unlink_temp(place, tmp)
        afters = []
        for root, f in zip(roots, files, strict=True):
            if root.after:
                # An after-command may (re)start a daemon: that one keeps running.
                status, out = run(root.after, None, f["path"], "leave")
                shown = self._shown(f["path"], out)
                afters.append({"path": f["path"], "status": status, "output": shown})
        return afters

    def rollback(self, path: str, claimed: dict[str, Any]) -> dict[str, Any]:
        """The version the last applied push of ``path`` replaced, back in place."""
        self.scope.root(path)
        last = next(
            (
                f
                for r in reversed(self.journal.records())
                if r.get("result") == "applied"
                for f in r.get("files", ())
                if f["path"] == path
            ),
            None,
        )
        if last is None:
            raise Refused(f"{path}: no push of it in the journal to roll back")
        if last["old"] is None:
            raise Refused(f"{path}: it did not exist before that push: remove it by hand")
        have = self.scope.info(path)
        data = self.journal.version(last["old"])
        meta = have or FileInfo(last["old"], 0o644, 0, 0)
        entry = {
            "path": path,
            "content": b64(data),
            "expect": have.sha256 if have else None,
            "meta": meta.to_json(),
        }
        return self.apply([entry], claimed, rollback=True)


def serve(agent: Agent, stdin: IO[str] = sys.stdin, stdout: IO[str] = sys.stdout) -> int:
    for line in stdin:
        try:
            answer = {"ok": True, **agent.handle(json.loads(line))}
        except (Refused, NotSynced) as e:
            answer = {"ok": False, "error": str(e)}
        except Exception as e:  # the pusher shows it; the agent goes on
            answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        stdout.write(json.dumps(answer) + "\n")
        stdout.flush()
    return 0
