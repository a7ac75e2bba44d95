"""`carpctl sync status|diff|push|log|rollback|serve`."""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carpd.config import Config, ConfigError, load_config
from carpd.sync.agent import HIDDEN, Agent, b64, serve, unb64
from carpd.sync.files import FileInfo
from carpd.sync.journal import Journal, LockTimeout, now, user
from carpd.sync.mask import mask, unified
from carpd.sync.peer import Peer, PeerError
from carpd.sync.printable import printable
from carpd.sync.scope import Scope

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
        self.journal.secure()
        self.scope = Scope.of(config)

    def peer(self) -> Peer:
        return Peer(
            self.cfg.ssh,
            self.peer_name,
            self.cfg.remote,
            Path(self.config.source),
            self.cfg.timeout,
        )

    def compare(self, peer: Peer) -> Compared:
        here = {p: i for p in self.scope.expand() if (i := self.scope.info(p)) is not None}
        wire = [{"path": r.path, "exclude": list(r.exclude)} for r in self.scope.roots]
        theirs = peer.call({"op": "list", "roots": wire})["files"]
        # A hostile peer names any path: only those synced here count (else `diff` would
        # print a local file outside every root, /etc/shadow).
        peer_files, dropped = {}, 0
        for p, i in theirs.items() if isinstance(theirs, dict) else ():
            try:
                if self.scope.locate(p) is None:
                    raise ValueError(p)
                peer_files[p] = FileInfo.from_json(i)
            except ValueError:
                dropped += 1
        if dropped:
            print(
                f"carpctl: sync: {self.peer_name}: {dropped} path(s) outside this node's "
                "[[sync.files]] ignored",
                file=sys.stderr,
            )
        return Compared(here, peer_files)

    def diff_text(self, peer: Peer, paths: list[str]) -> str:
        contents = peer.call({"op": "read", "paths": paths})["contents"]
        out = []
        for p in paths:
            theirs = contents.get(p) if isinstance(contents, dict) else None
            secret = self.scope.secret(p)
            out.append(unified(p, unb64(theirs), self.scope.read(p), secret, self.peer_name))
        return "".join(out)

    def warn_journal(self) -> bool:
        """This node's journal's problems on stderr; whether there were any."""
        problems = self.journal.problems()
        for problem in problems:
            print(f"carpctl: sync: warning: {printable(problem)}", file=sys.stderr)
        return bool(problems)

    # -- commands ---------------------------------------------------------------------

    def status(self) -> int:
        report: dict[str, Any] = {"checked": time.time(), "peer": self.peer_name}
        try:
            with self.peer() as peer:
                c = self.compare(peer)
        except PeerError as e:
            self.journal.save_status({**report, "error": str(e)})
            print(f"carpctl: sync: {printable(e)}", file=sys.stderr)
            return EXIT_UNREACHABLE
        report.update(differ=c.differ, only_here=c.only_here, only_peer=c.only_peer, error=None)
        self.journal.save_status(report)
        self.warn_journal()
        for label, paths in (
            ("differs", c.differ),
            ("only here", c.only_here),
            ("only on the peer", c.only_peer),
        ):
            for p in paths:
                print(f"{label}: {printable(p)}")
        drift = len(c.differ) + len(c.only_here) + len(c.only_peer)
        if not drift:
            print(f"in sync with {printable(self.peer_name)}: {len(c.here)} file(s)")
        return EXIT_DIFFER if drift else EXIT_OK

    def diff(self, files: list[str]) -> int:
        with self.peer() as peer:
            c = self.compare(peer)
            paths = self._chosen(c, files, pushable=False)
            text = self.diff_text(peer, paths)
        sys.stdout.write(printable(text, "\n\t"))
        return EXIT_DIFFER if text else EXIT_OK

    def _chosen(self, c: Compared, files: list[str], pushable: bool) -> list[str]:
        candidates = c.differ + c.only_here + ([] if pushable else c.only_peer)
        if not files:
            return sorted(candidates)
        wanted = [os.path.abspath(f) for f in files]
        for f in wanted:
            if self.scope.locate(f) is None:
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
            sys.stdout.write(printable(text, "\n\t"))
            why = explanation(message)
            if why is None:
                print("carpctl: sync: no explanation: nothing pushed", file=sys.stderr)
                return EXIT_USAGE
            record = self._record(why, [(p, c.peer.get(p), c.here[p]) for p in paths], text)
            wire = []
            for p in paths:
                root = self.scope.root(p)
                data = self.scope.read(p)
                if data is None:
                    raise ConfigError(f"{p}: gone from this node since the diff: nothing pushed")
                old = c.peer.get(p)
                # check and after still go along for a peer of an older carpd, which runs
                # them; a current peer runs its own config's and ignores these.
                wire.append({
                    "path": p,
                    "content": b64(data),
                    "expect": old.sha256 if old else None,
                    "meta": c.here[p].to_json(),
                    "check": list(root.check) if root.check else None,
                    "after": list(root.after) if root.after else None,
                })  # fmt: skip
            try:
                answer = peer.call(
                    {"op": "apply", "files": wire, "record": record},
                    self._apply_timeout(len(paths)),
                )
            except PeerError as e:
                return self._refused(record, e, paths)
        afters = self._afters(answer)
        self.journal.append({**record, "at": now(), "result": "applied", "after": afters})
        print(f"pushed {len(paths)} file(s) to {printable(self.peer_name)}")
        return EXIT_DIFFER if self._failed(afters) else EXIT_OK

    def _refused(self, record: dict[str, Any], e: PeerError, paths: list[str]) -> int:
        """The peer refused: masked (a check's output, from a peer of an older carpd
        unmasked; none at all for a secret file), journaled and shown."""
        why = str(e)
        for p in filter(self.scope.secret, paths):
            failed = rf"(check of {re.escape(p)} failed \(-?\d+\)): .*"
            why = re.sub(failed, lambda m: f"{m.group(1)}: {HIDDEN}", why, flags=re.S)
        why = mask(why)
        self.journal.append({**record, "at": now(), "result": f"refused: {why}"})
        print(f"carpctl: sync: refused: {printable(why)}", file=sys.stderr)
        return EXIT_DIFFER

    def _afters(self, answer: dict[str, Any]) -> list[dict[str, Any]]:
        """The peer's after-commands, their output masked (none for a secret file)."""
        afters = answer.get("after")
        return [
            {
                "path": str(a.get("path")),
                "status": a.get("status"),
                "output": HIDDEN
                if self.scope.secret(str(a.get("path")))
                else mask(str(a.get("output"))),
            }
            for a in (afters if isinstance(afters, list) else ())
            if isinstance(a, dict)
        ]

    @staticmethod
    def _failed(afters: list[dict[str, Any]]) -> bool:
        failed = [a for a in afters if a["status"] != 0]
        for a in failed:
            print(
                printable(f"carpctl: sync: after {a['path']}: status {a['status']}: {a['output']}"),
                file=sys.stderr,
            )
        return bool(failed)

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
        path = os.path.abspath(file)
        found = self.scope.locate(path)
        if found is None:
            raise ConfigError(f"{path}: not under any [[sync.files]] path")
        entry = found[0]
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
                return self._refused({**record, "rollback": True}, e, [path])
        afters = self._afters(answer)
        self.journal.append(
            {
                **record,
                "at": now(),
                "rollback": True,
                "files": [{"path": path}],
                "result": "applied",
                "after": afters,
            }
        )
        print(f"rolled back {printable(path)} on {printable(self.peer_name)}")
        return EXIT_DIFFER if self._failed(afters) else EXIT_OK

    def log(self) -> int:
        """The journal; exit 1, with a warning, if a line is not a record or the chain of
        hashes is broken (a record edited, inserted or removed)."""
        read = self.journal.read()
        for r in read.records:
            kind = "rollback" if r.get("rollback") else "drill" if r.get("drill") else "push"
            who = f"{r.get('user')}{seen(r)} {kind} {r.get('from')} -> {r.get('to')}"
            print(printable(f"{r.get('at')} {who}: {r.get('result')}"))
            print(printable(f"    {r.get('explanation')}"))
            files = r.get("files")
            for f in files if isinstance(files, list) else ():
                if isinstance(f, dict):
                    old, new = str(f.get("old"))[:12], str(f.get("new"))[:12]
                    print(printable(f"    {f.get('path')} {old} -> {new}"))
        problems = self.journal.problems(read)
        for problem in problems:
            print(f"carpctl: sync: warning: {printable(problem)}", file=sys.stderr)
        return EXIT_DIFFER if problems else EXIT_OK


def seen(record: dict[str, Any]) -> str:
    """Where a push came from as this node's sshd saw it (the user is the pusher's word)."""
    if "ssh" not in record:
        return ""
    ssh = record["ssh"]
    if not isinstance(ssh, dict):
        return " (not over ssh)"
    key = f", key {ssh['key']}" if ssh.get("key") else ""
    return f" (ssh from {ssh.get('connection')}{key})"


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
            scope = Scope.of(config)
            return serve(Agent(config.global_.state_dir, config.sync.timeout * 6, scope))
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
        print(f"carpctl: {printable(e)}", file=sys.stderr)
        return EXIT_USAGE
    except (PeerError, LockTimeout) as e:
        print(f"carpctl: sync: {printable(e)}", file=sys.stderr)
        return EXIT_UNREACHABLE
