"""A peer's status page, read (and, for a drill, asked to step aside) over HTTPS with
its [web] user: aiohttp, one session per peer, every request bounded by ``timeout``.

Nothing of the credential leaves this module: it goes in the Authorization header of
requests to the peer's URL only, and no error carries it (aiohttp's errors name the URL,
which holds no user or password: the config refuses that)."""

from __future__ import annotations

import email.utils
import json
import ssl
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from carpd.cluster.status import NodeStatus, Unreadable, read
from carpd.config.model import ClusterPeer

MAX_ANSWER = 4 * 1024 * 1024  # bytes of a peer's status read at most


@dataclass(frozen=True, slots=True)
class Seen:
    """One read of a peer: its status, or why there is none."""

    name: str
    url: str
    checked: float  # wall clock of the read
    status: NodeStatus | None  # None: it did not answer (or not readably)
    error: str | None
    took: float | None = None  # seconds the read took
    skew: float | None = None  # its clock minus ours, seconds (from its Date header, +-1 s)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "answering": self.status is not None,
            "checked": self.checked,
            "error": self.error,
            "took": self.took,
            "clock_skew": self.skew,
            "status": self.status.model_dump(mode="json") if self.status else None,
        }


class PeerError(Exception):
    pass


def tls(peer: ClusterPeer) -> ssl.SSLContext | aiohttp.Fingerprint:
    if peer.pin is not None:
        return aiohttp.Fingerprint(peer.pin)  # exactly that certificate, whoever signed it
    return ssl.create_default_context(cafile=str(peer.ca_file) if peer.ca_file else None)


class PeerClient:
    def __init__(self, peer: ClusterPeer, timeout: float) -> None:
        self.peer = peer
        self.base = peer.url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        password = peer.passfile.secret.get_secret_value().decode(errors="replace")
        # Sent with each request to the peer's URL, never following a redirect: a
        # redirect elsewhere must not get the credential (nor pass for the peer).
        self._headers = {"Authorization": _basic(peer.user, password)}
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=tls(peer), limit=2),
            timeout=self.timeout,
            raise_for_status=False,
        )

    async def close(self) -> None:
        await self._session.close()

    async def _get(self, path: str) -> tuple[aiohttp.ClientResponse, bytes]:
        async with self._session.get(
            self.base + path, headers=self._headers, allow_redirects=False
        ) as r:
            return r, await _body(r, MAX_ANSWER)

    async def status(self) -> Seen:
        """Its status now, or why not, within the timeout."""
        start, wall = time.monotonic(), time.time()
        try:
            r, body = await self._get("/api/status")
            if r.status != 200:
                raise PeerError(f"HTTP {r.status} {_reason(r, body)}")
            status = read(json.loads(body))
        except TimeoutError:  # before OSError: it is one (and aiohttp's timeouts too)
            why = f"no answer within {self.timeout.total:g} s"
            return Seen(self.peer.name, self.peer.url, wall, None, why)
        except (aiohttp.ClientError, OSError, PeerError, Unreadable, ValueError) as e:
            return Seen(self.peer.name, self.peer.url, wall, None, _why(e))
        took = time.monotonic() - start
        return Seen(self.peer.name, self.peer.url, wall, status, None, took, _skew(r, wall, took))

    async def maintenance(self, on: bool) -> None:
        """Its maintenance mode on or off, as its page's button does (the CSRF token from
        the page first). PeerError with its answer when refused."""
        try:
            r, body = await self._get("/")
            if r.status != 200:
                raise PeerError(f"its page: HTTP {r.status} {_reason(r, body)}")
            token = _meta(body.decode(errors="replace"), "carpd-csrf")
            if not token:
                raise PeerError(f"{self.peer.user} has no right to change it (no CSRF token)")
            async with self._session.post(
                self.base + "/api/maintenance",
                json={"on": on},
                headers={**self._headers, "X-CSRF-Token": token},
                allow_redirects=False,
            ) as p:
                answer = await _body(p, 65536)
                if p.status != 200:
                    raise PeerError(f"HTTP {p.status} {_reason(p, answer)}")
        except TimeoutError:  # before OSError, as above
            raise PeerError(f"no answer within {self.timeout.total:g} s") from None
        except (aiohttp.ClientError, OSError) as e:
            raise PeerError(_why(e)) from None


def _basic(user: str, password: str) -> str:
    """The Authorization header's value: aiohttp's own encoder (3.14 on; before it,
    BasicAuth's, which 3.14 deprecates)."""
    encode = getattr(aiohttp, "encode_basic_auth", None)
    if encode is not None:
        return str(encode(user, password))
    return str(aiohttp.BasicAuth(user, password).encode())


async def _body(r: aiohttp.ClientResponse, most: int) -> bytes:
    """The whole answer, or PeerError once it is longer than ``most`` bytes."""
    body = bytearray()
    async for chunk in r.content.iter_chunked(65536):
        body += chunk
        if len(body) > most:
            raise PeerError(f"its answer is larger than {most} bytes")
    return bytes(body)


def _why(e: BaseException) -> str:
    if isinstance(e, aiohttp.ServerFingerprintMismatch):
        return "its certificate is not the pinned one (fingerprint)"
    if isinstance(e, aiohttp.ClientConnectorCertificateError):
        return f"its certificate is not trusted: {e.certificate_error}"
    return str(e) or type(e).__name__


def _reason(r: aiohttp.ClientResponse, body: bytes) -> str:
    try:
        text = json.loads(body).get("error")
    except (ValueError, AttributeError):
        text = None
    return str(text)[:200] if text else (r.reason or "")


def _meta(page: str, name: str) -> str | None:
    import re

    m = re.search(rf'<meta name="{re.escape(name)}" content="([^"]*)">', page)
    return m.group(1) if m else None


def _skew(r: aiohttp.ClientResponse, sent: float, took: float) -> float | None:
    """The peer's clock minus ours, from its Date header (whole seconds: +-0.5 s, plus
    half the read's time)."""
    date = r.headers.get("Date")
    try:
        theirs = email.utils.parsedate_to_datetime(date).timestamp() if date else None
    except (TypeError, ValueError):
        return None
    # The Date header drops the fraction: its second's middle is the best guess (+-0.5 s).
    return None if theirs is None else round(theirs + 0.5 - (sent + took / 2), 1)
