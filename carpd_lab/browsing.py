"""Drive carpd_lab.browser (a real headless chromium) in a lab host's namespace."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from carpd_lab import bounds
from carpd_lab.netlab import Host, LogWatch


class Browser:
    """carpd_lab.browser in ``host``'s namespace, logged in as ``user``; ``trust``: the
    base64 SHA-256 of a certificate's public key (SPKI) to accept for HTTPS, as a
    self-signed page's pin."""

    def __init__(self, host: Host, user: str, password: str, trust: str | None = None) -> None:
        argv = [sys.executable, "-m", "carpd_lab.browser", "--user", user, "--password", password]
        argv += ["--trust-spki", trust] if trust else []
        self.proc = host.spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        self.log = LogWatch(self.proc.stdout)
        self.log.wait_for('"ready"', bounds.START_UP * 4)  # chromium's first start is slow

    def ask(self, line: str, timeout: float = bounds.START_UP * 2) -> dict[str, Any]:
        start = self.log.mark()
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        _, reply = self.log.wait_for(r"^\{", timeout, start)
        result: dict[str, Any] = json.loads(reply)
        assert "error" not in result, f"{line}: {result['error']}"
        return result
