"""Who may use the status page: HTTP basic users from a file of scrypt hashes, and the
CSRF token that every POST must carry.

The users file has one ``name:scrypt$<n>$<r>$<p>$<salt>$<hash>`` line per user (salt and
hash in base64), written by ``carpctl web-user NAME``; the password itself is never
stored. A check costs one scrypt (about 70 ms here): it runs in a worker thread
(hashlib.scrypt releases the GIL), one at a time, so password guessing cannot stall the
protocol's loop; a header already checked is remembered (by its SHA-256) for a while.

Checks must not pile up either, or a client that sends many and goes away would keep a
core busy and make a real login wait seconds. So beyond MAX_PENDING checks for clients
still connected a new one is refused at once (503, Retry-After), the check of a client
that has gone is skipped, and a source address (an IPv6 /64) with MAX_FAILURES failed
checks in FAILURE_WINDOW seconds is refused (429) until the oldest of them is that old.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

N, R, P = 2**14, 8, 1  # scrypt's cost: 16 MiB and ~70 ms per check
MAXMEM = 64 * 1024 * 1024
REMEMBERED = 300.0  # seconds a checked Authorization header stays good without a new check
MAX_REMEMBERED = 256
MAX_PENDING = 4  # checks running or waiting, for clients still there
BUSY_RETRY = 1  # seconds a client refused for that is told to wait
MAX_FAILURES = 10  # failed checks per source address in FAILURE_WINDOW
FAILURE_WINDOW = 60.0
MAX_SOURCES = 1024  # source addresses whose failures are kept


class Busy(Exception):
    """No check now: ``status`` (503 or 429) and seconds to wait (Retry-After)."""

    def __init__(self, status: int, retry_after: int, message: str) -> None:
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, maxmem=MAXMEM)
    b64 = base64.b64encode
    return f"scrypt${N}${R}${P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(stored: str, password: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        want = base64.b64decode(digest, validate=True)
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt, validate=True),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=MAXMEM,
            dklen=len(want),
        )
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(got, want)


def load_users(path: Path) -> dict[str, str]:
    """name -> hash; a line that is not ``name:scrypt$...`` is an error (OSError or
    ValueError, with the line number, never the line)."""
    users = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, stored = line.partition(":")
        if not sep or not name or not stored.startswith("scrypt$") or stored.count("$") != 5:
            raise ValueError(f"{path}: line {number}: not name:scrypt$... (carpctl web-user)")
        users[name] = stored
    return users


class Authenticator:
    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self.secret = secrets.token_bytes(32)  # CSRF tokens: new ones on every start
        # Unknown names cost a check too: no telling them apart by the time it takes.
        self._dummy = hash_password(secrets.token_hex(16))
        self._checked: dict[bytes, tuple[str, float]] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="carpd-auth")
        self._one = asyncio.Semaphore(1)
        self._pending: list[Callable[[], bool]] = []  # each check's "is its client there?"
        self._failures: dict[str, list[float]] = {}  # source -> times of its failed checks

    def csrf(self, user: str) -> str:
        return hmac.new(self.secret, user.encode(), "sha256").hexdigest()

    def csrf_ok(self, user: str, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.csrf(user), token)

    async def user(
        self,
        authorization: str | None,
        source: str = "",
        alive: Callable[[], bool] = lambda: True,
    ) -> str | None:
        """The user an ``Authorization: Basic`` header proves, or None; Busy when no
        check can be made now. ``source``: who failures count against; ``alive``: is the
        client still connected (a check for one that is gone is skipped)."""
        if not authorization or not authorization.startswith("Basic "):
            return None
        key = hashlib.sha256(authorization.encode()).digest()
        known = self._remembered(key)
        if known is not None:
            return known
        try:
            decoded = base64.b64decode(authorization[6:], validate=True).decode()
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        name, _, password = decoded.partition(":")
        self._refuse_if_busy(source)
        self._pending.append(alive)
        try:
            async with self._one:  # one scrypt at a time, in the worker thread
                known = self._remembered(key)  # the same header, checked while this waited
                if known is not None or not alive():
                    return known
                stored = self.users.get(name, self._dummy)
                loop = asyncio.get_running_loop()
                ok = await loop.run_in_executor(self._pool, verify_password, stored, password)
        finally:
            self._pending.remove(alive)
        if not ok or name not in self.users:
            self._failed(source)
            return None
        if len(self._checked) >= MAX_REMEMBERED:
            self._checked.clear()
        self._checked[key] = (name, time.monotonic())
        return name

    def _remembered(self, key: bytes) -> str | None:
        known = self._checked.get(key)
        if known is not None and time.monotonic() - known[1] < REMEMBERED:
            return known[0]
        return None

    def _refuse_if_busy(self, source: str) -> None:
        now = time.monotonic()
        recent = [t for t in self._failures.get(source, ()) if now - t < FAILURE_WINDOW]
        if len(recent) >= MAX_FAILURES:
            wait = math.ceil(FAILURE_WINDOW - (now - recent[0]))
            raise Busy(429, wait, f"too many failed logins from {source}: try again in {wait} s")
        if sum(a() for a in self._pending) >= MAX_PENDING:
            raise Busy(503, BUSY_RETRY, "busy checking other logins: try again")

    def _failed(self, source: str) -> None:
        now = time.monotonic()
        if source not in self._failures and len(self._failures) >= MAX_SOURCES:
            for old in [s for s, t in self._failures.items() if now - t[-1] >= FAILURE_WINDOW]:
                del self._failures[old]
            if len(self._failures) >= MAX_SOURCES:  # still full: the longest known goes
                del self._failures[next(iter(self._failures))]
        times = [t for t in self._failures.pop(source, []) if now - t < FAILURE_WINDOW]
        self._failures[source] = [*times, now]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
