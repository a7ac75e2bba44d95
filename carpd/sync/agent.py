"""`carpctl sync serve`: the peer's side, on the other end of `ssh PEER`. One JSON
request per line on stdin, one answer per line on stdout, until EOF.

A push is done under this node's sync lock: the files must still be what the pusher
diffed against (else nothing is replaced), each new version is written beside its file
and fsynced, every check runs on the new versions, and only when all pass are the files
renamed into place, one by one (each is old or new, never half written), the previous
versions kept, the after-commands run and the journal appended.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from carpd import __version__
from carpd.sync.files import FileInfo, commit, expand, info, remove_stale_temps, replace
from carpd.sync.journal import Journal, now

PROTOCOL = 1
COMMAND_TIMEOUT = 60.0  # a check or an after-command on the peer


class Refused(Exception):
    pass


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def run(argv: list[str], new: Path | None, path: Path) -> tuple[int, str]:
    """A check or an after-command: {new} and {path} filled in; its status and output."""
    args = [a.replace("{new}", str(new or path)).replace("{path}", str(path)) for a in argv]
    try:
        r = subprocess.run(
            args, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return 127, str(e)
    return r.returncode, (r.stdout + r.stderr)[-2000:]


class Agent:
    def __init__(self, state_dir: Path, lock_timeout: float) -> None:
        self.journal = Journal(state_dir)
        self.lock_timeout = lock_timeout

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "hello":
            return {"protocol": PROTOCOL, "carpd": __version__, "node": socket.gethostname()}
        if op == "list":
            roots = [(Path(r["path"]), tuple(r.get("exclude", ()))) for r in req["roots"]]
            found = {str(p): info(p) for p in expand(roots)}
            return {"files": {p: i.to_json() for p, i in found.items() if i is not None}}
        if op == "read":
            out = {}
            for p in req["paths"]:
                try:
                    out[p] = b64(Path(p).read_bytes())
                except OSError:
                    out[p] = None
            return {"contents": out}
        if op == "log":
            return {"records": self.journal.records()}
        if op == "apply":
            return self.apply(req["files"], req["record"])
        if op == "rollback":
            return self.rollback(req["path"], req.get("check"), req.get("after"), req["record"])
        raise Refused(f"unknown request {op!r}")

    def apply(self, files: list[dict[str, Any]], record: dict[str, Any]) -> dict[str, Any]:
        with self.journal.lock(self.lock_timeout):
            done: list[dict[str, Any]] = []  # what was replaced: hashes as found here
            try:
                afters = self._apply(files, done)
            except Refused as e:
                self.journal.append({**record, "at": now(), "result": f"refused: {e}"})
                raise
            entry = {**record, "at": now(), "files": done, "result": "applied", "after": afters}
            self.journal.append(entry)
            return {"applied": [f["path"] for f in files], "after": afters}

    def _apply(
        self, files: list[dict[str, Any]], done: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        paths = [Path(f["path"]) for f in files]
        remove_stale_temps(paths)
        for f, path in zip(files, paths, strict=True):
            have = info(path)
            if (have.sha256 if have else None) != f["expect"]:
                raise Refused(f"{path} changed on this node since the diff was shown: diff again")
        staged: list[tuple[Path, Path]] = []
        try:
            for f, path in zip(files, paths, strict=True):
                old = info(path)
                tmp = replace(path, unb64(f["content"]) or b"", old, FileInfo.from_json(f["meta"]))
                staged.append((tmp, path))
                if f.get("check"):
                    status, out = run(f["check"], tmp, path)
                    if status != 0:
                        raise Refused(f"check of {path} failed ({status}): {out.strip()}")
            for tmp, path in staged:
                old_sha = self.journal.keep(path.read_bytes()) if path.exists() else None
                new = info(tmp)
                commit(tmp, path)
                done.append({"path": str(path), "old": old_sha, "new": new.sha256 if new else None})
        finally:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
        afters = []
        for f, path in zip(files, paths, strict=True):
            if f.get("after"):
                status, out = run(f["after"], None, path)
                afters.append({"path": str(path), "status": status, "output": out.strip()})
        return afters

    def rollback(
        self, path: str, check: list[str] | None, after: list[str] | None, record: dict[str, Any]
    ) -> dict[str, Any]:
        """The version the last applied push of ``path`` replaced, back in place."""
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
        have = info(Path(path))
        data = self.journal.version(last["old"])
        meta = have or FileInfo(last["old"], 0o644, 0, 0)
        entry = {
            "path": path,
            "content": b64(data),
            "expect": have.sha256 if have else None,
            "meta": meta.to_json(),
            "check": check,
            "after": after,
        }
        return self.apply([entry], {**record, "rollback": True})


def serve(agent: Agent, stdin: IO[str] = sys.stdin, stdout: IO[str] = sys.stdout) -> int:
    for line in stdin:
        try:
            answer = {"ok": True, **agent.handle(json.loads(line))}
        except Refused as e:
            answer = {"ok": False, "error": str(e)}
        except Exception as e:  # the pusher shows it; the agent goes on
            answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        stdout.write(json.dumps(answer) + "\n")
        stdout.flush()
    return 0
