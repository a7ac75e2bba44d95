"""Who may use the status page: HTTP basic users from a file of scrypt hashes, and the
CSRF token that every POST must carry.

The users file has one ``name:scrypt$<n>$<r>$<p>$<salt>$<hash>`` line per user (salt and
hash in base64), written by ``carpctl web-user NAME``; the password itself is never
stored. A check costs one scrypt (about 70 ms here): it runs in a worker thread
(hashlib.scrypt releases the GIL), one at a time, so password guessing cannot stall the
protocol's loop; a header already checked is remembered (by its SHA-256) for a while.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

N, R, P = 2**14, 8, 1  # scrypt's cost: 16 MiB and ~70 ms per check
MAXMEM = 64 * 1024 * 1024
REMEMBERED = 300.0  # seconds a checked Authorization header stays good without a new check
MAX_REMEMBERED = 256


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

    def csrf(self, user: str) -> str:
        return hmac.new(self.secret, user.encode(), "sha256").hexdigest()

    def csrf_ok(self, user: str, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.csrf(user), token)

    async def user(self, authorization: str | None) -> str | None:
        """The user an ``Authorization: Basic`` header proves, or None."""
        if not authorization or not authorization.startswith("Basic "):
            return None
        key = hashlib.sha256(authorization.encode()).digest()
        now = time.monotonic()
        known = self._checked.get(key)
        if known is not None and now - known[1] < REMEMBERED:
            return known[0]
        try:
            decoded = base64.b64decode(authorization[6:], validate=True).decode()
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        name, _, password = decoded.partition(":")
        stored = self.users.get(name, self._dummy)
        async with self._one:  # one scrypt at a time, in the worker thread
            loop = asyncio.get_running_loop()
            ok = await loop.run_in_executor(self._pool, verify_password, stored, password)
        if not ok or name not in self.users:
            return None
        if len(self._checked) >= MAX_REMEMBERED:
            self._checked.clear()
        self._checked[key] = (name, now)
        return name

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
