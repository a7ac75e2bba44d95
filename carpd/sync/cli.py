"""`carpctl sync status|diff|push|log|rollback|serve`."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carpd.config import Config, ConfigError, load_config
from carpd.config.model import SyncFile
from carpd.sync.agent import Agent, b64, serve, unb64
from carpd.sync.files import FileInfo, expand, info
from carpd.sync.journal import Journal, LockTimeout, now, user
from carpd.sync.mask import unified
from carpd.sync.peer import Peer, PeerError

EXIT_OK, EXIT_DIFFER, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


@dataclass
class Compared:
    here: dict[str, FileInfo] = field(default_factory=dict)
    peer: dict[str, FileInfo] = field(default_factory=dict)

    @property
    def differ(self) -> list[str]:
        both = self.here.keys() & self.peer.keys()
        return sorted(p for p in both if self.here[p].sha256 != self.peer[p].sha256)

    @property
    def only_here(self) -> list[str]:
        return sorted(self.here.keys() - self.peer.keys())

    @property
    def only_peer(self) -> list[str]:
        return sorted(self.peer.keys() - self.here.keys())


class Sync:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.cfg = config.sync
        if self.cfg.peer is None:
            raise ConfigError(f"{config.source}: sync.peer: not set: which node to sync with")
        self.peer_name = self.cfg.peer
        self.journal = Journal(config.global_.state_dir)
        self.secrets = {f.path for f in self.cfg.files if f.secret}
        self.secrets |= {c.passfile.path for c in config.carp if c.passfile is not None}
        self.secrets |= {p for p in (config.web.tls_key, config.web.users_file) if p}

    def peer(self) -> Peer:
        return Peer(
            self.cfg.ssh,
            self.peer_name,
            self.cfg.remote,
            Path(self.config.source),
            self.cfg.timeout,
        )

    def entry(self, path: str) -> SyncFile | None:
        p = Path(path)
        return next((f for f in self.cfg.files if p == f.path or f.path in p.parents), None)

    def compare(self, peer: Peer) -> Compared:
        roots = [(f.path, f.exclude) for f in self.cfg.files]
        here = {str(p): i for p in expand(roots) if (i := info(p)) is not None}
        wire = [{"path": str(f.path), "exclude": list(f.exclude)} for f in self.cfg.files]
        theirs = peer.call({"op": "list", "roots": wire})["files"]
        return Compared(here, {p: FileInfo.from_json(i) for p, i in theirs.items()})

    def diff_text(self, peer: Peer, paths: list[str]) -> str:
        contents = peer.call({"op": "read", "paths": paths})["contents"]
        out = []
        for p in paths:
            here = Path(p).read_bytes() if Path(p).is_file() else None
            secret = Path(p) in self.secrets or bool((e := self.entry(p)) and e.secret)
            out.append(unified(p, unb64(contents.get(p)), here, secret, self.peer_name))
        return "".join(out)

    # -- commands ---------------------------------------------------------------------

    def status(self) -> int:
        report: dict[str, Any] = {"checked": time.time(), "peer": self.peer_name}
        try:
            with self.peer() as peer:
                c = self.compare(peer)
        except PeerError as e:
            self._save({**report, "error": str(e)})
            print(f"carpctl: sync: {e}", file=sys.stderr)
            return EXIT_UNREACHABLE
        report.update(differ=c.differ, only_here=c.only_here, only_peer=c.only_peer, error=None)
        self._save(report)
        for label, paths in (
            ("differs", c.differ),
            ("only here", c.only_here),
            ("only on the peer", c.only_peer),
        ):
            for p in paths:
                print(f"{label}: {p}")
        drift = len(c.differ) + len(c.only_here) + len(c.only_peer)
        if not drift:
            print(f"in sync with {self.peer_name}: {len(c.here)} file(s)")
        return EXIT_DIFFER if drift else EXIT_OK

    def _save(self, report: dict[str, Any]) -> None:
        """For carpd's status, page and metrics (drift), read from the file, never ssh."""
        self.journal.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.journal.status.with_suffix(".tmp")
        tmp.write_text(json.dumps(report))
        os.replace(tmp, self.journal.status)

    def diff(self, files: list[str]) -> int:
        with self.peer() as peer:
            c = self.compare(peer)
            paths = self._chosen(c, files, pushable=False)
            text = self.diff_text(peer, paths)
        sys.stdout.write(text)
        return EXIT_DIFFER if text else EXIT_OK

    def _chosen(self, c: Compared, files: list[str], pushable: bool) -> list[str]:
        candidates = c.differ + c.only_here + ([] if pushable else c.only_peer)
        if not files:
            return sorted(candidates)
        wanted = [str(Path(f).absolute()) for f in files]
        for f in wanted:
            if self.entry(f) is None:
                raise ConfigError(f"{f}: not under any [[sync.files]] path")
        return [f for f in wanted if f in candidates]

    def push(self, files: list[str], message: str | None) -> int:
        with self.journal.lock(self.cfg.timeout * 6), self.peer() as peer:
            c = self.compare(peer)
            paths = self._chosen(c, files, pushable=True)
            if not paths:
                print(f"nothing to push: {self.peer_name} has the same files")
                return EXIT_OK
            text = self.diff_text(peer, paths)
            sys.stdout.write(text)
            why = explanation(message)
            if why is None:
                print("carpctl: sync: no explanation: nothing pushed", file=sys.stderr)
                return EXIT_USAGE
            record = self._record(why, [(p, c.peer.get(p), c.here[p]) for p in paths], text)
            wire = []
            for p in paths:
                e = self.entry(p)
                assert e is not None
                old = c.peer.get(p)
                wire.append({
                    "path": p,
                    "content": b64(Path(p).read_bytes()),
                    "expect": old.sha256 if old else None,
                    "meta": c.here[p].to_json(),
                    "check": list(e.check) if e.check else None,
                    "after": list(e.after) if e.after else None,
                })  # fmt: skip
            try:
                answer = peer.call(
                    {"op": "apply", "files": wire, "record": record},
                    self._apply_timeout(len(paths)),
                )
            except PeerError as e:
                self.journal.append({**record, "at": now(), "result": f"refused: {e}"})
                print(f"carpctl: sync: refused: {e}", file=sys.stderr)
                return EXIT_DIFFER
        self.journal.append({**record, "at": now(), "result": "applied", "after": answer["after"]})
        print(f"pushed {len(paths)} file(s) to {self.peer_name}")
        failed = [a for a in answer["after"] if a["status"] != 0]
        for a in failed:
            print(
                f"carpctl: sync: after {a['path']}: status {a['status']}: {a['output']}",
                file=sys.stderr,
            )
        return EXIT_DIFFER if failed else EXIT_OK

    def _apply_timeout(self, files: int) -> float:
        """Checks and after-commands run on the peer while we wait (each up to 60 s)."""
        return self.cfg.timeout + files * 2 * 60.0

    def _record(
        self, why: str, files: list[tuple[str, FileInfo | None, FileInfo | None]], diff: str
    ) -> dict[str, Any]:
        return {
            "user": user(),
            "from": socket.gethostname(),
            "to": self.peer_name,
            "explanation": why,
            "files": [
                {"path": p, "old": o.sha256 if o else None, "new": n.sha256 if n else None}
                for p, o, n in files
            ],
            "diff": diff,
        }

    def rollback(self, file: str, message: str | None) -> int:
        path = str(Path(file).absolute())
        entry = self.entry(path)
        if entry is None:
            raise ConfigError(f"{path}: not under any [[sync.files]] path")
        why = explanation(message)
        if why is None:
            print("carpctl: sync: no explanation: nothing rolled back", file=sys.stderr)
            return EXIT_USAGE
        record = self._record(why, [], "")
        with self.journal.lock(self.cfg.timeout * 6), self.peer() as peer:
            try:
                req = {
                    "op": "rollback",
                    "path": path,
                    "check": list(entry.check) if entry.check else None,
                    "after": list(entry.after) if entry.after else None,
                    "record": record,
                }
                answer = peer.call(req, self._apply_timeout(1))
            except PeerError as e:
                self.journal.append(
                    {**record, "at": now(), "rollback": True, "result": f"refused: {e}"}
                )
                print(f"carpctl: sync: refused: {e}", file=sys.stderr)
                return EXIT_DIFFER
        self.journal.append(
            {
                **record,
                "at": now(),
                "rollback": True,
                "files": [{"path": path}],
                "result": "applied",
                "after": answer["after"],
            }
        )
        print(f"rolled back {path} on {self.peer_name}")
        return EXIT_OK

    def log(self) -> int:
        for r in self.journal.records():
            kind = "rollback" if r.get("rollback") else "push"
            who = f"{r.get('user')} {kind} {r.get('from')} -> {r.get('to')}"
            print(f"{r.get('at')} {who}: {r.get('result')}")
            print(f"    {r.get('explanation')}")
            for f in r.get("files", ()):
                print(f"    {f['path']} {str(f.get('old'))[:12]} -> {str(f.get('new'))[:12]}")
        return EXIT_OK


def explanation(message: str | None) -> str | None:
    """-m, or asked on the terminal; None without one (no terminal: never a silent push)."""
    if message is not None:
        return message.strip() or None
    if not sys.stdin.isatty():
        print(
            "carpctl: sync: give the explanation with -m (no terminal to ask on)", file=sys.stderr
        )
        return None
    try:
        return input("Why? (for the journal on both nodes; empty to cancel) ").strip() or None
    except EOFError:
        return None


def main(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        if args.sync_command == "serve":
            return serve(Agent(config.global_.state_dir, config.sync.timeout * 6))
        sync = Sync(config)
        command = args.sync_command
        if command == "status":
            return sync.status()
        if command == "diff":
            return sync.diff(args.files)
        if command == "push":
            return sync.push(args.files, args.message)
        if command == "rollback":
            return sync.rollback(args.file, args.message)
        return sync.log()
    except ConfigError as e:
        print(f"carpctl: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (PeerError, LockTimeout) as e:
        print(f"carpctl: sync: {e}", file=sys.stderr)
        return EXIT_UNREACHABLE
