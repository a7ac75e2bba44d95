"""The peer over the system's OpenSSH: `ssh PEER carpctl sync serve`, one JSON request
and answer per line, each answer awaited at most ``timeout`` seconds (a dead or silent
peer is an error in bounded time, never a hang)."""

from __future__ import annotations

import json
import selectors
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

from carpd.sync.agent import PROTOCOL


class PeerError(Exception):
    pass


class Peer:
    def __init__(
        self, ssh: tuple[str, ...], destination: str, remote: str, config: Path, timeout: float
    ) -> None:
        self.destination = destination
        self.timeout = timeout
        remote_argv = [remote, "sync", "--config", str(config), "serve"]
        self.argv = [
            *ssh,
            "-o", "BatchMode=yes",  # never a password prompt: keys or the agent
            "-o", f"ConnectTimeout={max(1, int(timeout))}",
            "-o", f"ServerAliveInterval={max(1, int(timeout))}",
            "-o", "ServerAliveCountMax=1",
            "--", destination, " ".join(shlex.quote(a) for a in remote_argv),
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self._buf = b""

    def __enter__(self) -> Peer:
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        # The first answer also waits for ssh's handshake and the peer's carpctl to start.
        hello = self.call({"op": "hello"}, 2 * self.timeout)
        if hello.get("protocol") != PROTOCOL:
            raise PeerError(
                f"{self.destination} speaks sync protocol {hello.get('protocol')} (carpd "
                f"{hello.get('carpd')}), this node {PROTOCOL}: update both to one carpd"
            )
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    def call(self, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """One request; its answer. PeerError if the peer refused it, died or is silent."""
        proc = self.proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            proc.stdin.flush()
        except BrokenPipeError:
            raise self._gone() from None
        line = self._line(timeout if timeout is not None else self.timeout)
        answer: dict[str, Any] = json.loads(line)
        if not answer.pop("ok", False):
            raise PeerError(f"{self.destination}: {answer.get('error')}")
        return answer

    def _line(self, timeout: float) -> bytes:
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while b"\n" not in self._buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    proc.kill()
                    raise PeerError(f"{self.destination} did not answer within {timeout:.0f} s")
                chunk = proc.stdout.read1(65536)  # type: ignore[attr-defined]
                if not chunk:
                    raise self._gone()
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def _gone(self) -> PeerError:
        proc = self.proc
        assert proc is not None
        try:
            proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
        err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        last = err.splitlines()[-1] if err else f"ssh exited with {proc.returncode}"
        return PeerError(f"{self.destination} unreachable: {last}")
