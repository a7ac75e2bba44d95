"""One probe of one [[track]] target: ``(ok, detail)``, within the tracker's timeout,
never raising for the target's own failure.

No process per probe where Python or the kernel can answer directly: a link's state
from sysfs, a file's number, a process from /proc, a TCP connect, HTTP with aiohttp,
ICMP echo with icmplib (a raw socket), DNS with dnspython, BIRD's BGP and BFD state from
its control socket (its text protocol). Only ``script`` and FRR (vtysh: FRR's vty
protocol is not a stable interface) start a program.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carpd.config.model import TrackConfig

if TYPE_CHECKING:
    import aiohttp

Result = tuple[bool, str]
BIRD_SOCKET = "/run/bird/bird.ctl"  # Debian's bird2
SYS_NET = Path("/sys/class/net")


class Prober:
    """The probes of one tracker: what they keep between probes (an HTTP session)."""

    def __init__(self, cfg: TrackConfig) -> None:
        self.cfg = cfg
        self._session: aiohttp.ClientSession | None = None
        self._body = re.compile(cfg.body) if cfg.body else None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def probe(self, target: str) -> Result:
        """One probe, bounded by the tracker's timeout."""
        try:
            return await asyncio.wait_for(self._probe(target), self.cfg.timeout)
        except TimeoutError:
            return False, f"no answer within {self.cfg.timeout:g} s"
        except OSError as e:
            return False, _reason(e)
        except Exception as e:  # a probe's own bug: the target is down, the task goes on
            return False, f"{type(e).__name__}: {e}"

    async def _probe(self, target: str) -> Result:
        kind = self.cfg.kind
        if kind == "interface":
            return interface(target)
        if kind == "file":  # 64 bytes at most, never waiting on a FIFO: on the loop
            return number_file(target)
        if kind == "process":
            # On the loop, in slices: in a thread it holds the GIL all the same, and the
            # switches cost more (the benchmark: CARP p99 0.1 -> 1.8 ms, CPU x2.7).
            return await process(target)
        if kind == "tcp":
            return await tcp(target, self.cfg.interface)
        if kind == "http":
            return await self._http(target)
        if kind == "ping":
            return await ping(target, self.cfg)
        if kind == "dns":
            return await dns(target, self.cfg)
        if kind in ("bgp", "bfd"):
            return await routing(kind, target, self.cfg)
        return await script(target, self.cfg.timeout)

    async def _http(self, url: str) -> Result:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.cfg.tls_verify),
                timeout=aiohttp.ClientTimeout(total=self.cfg.timeout),
            )
        start = time.monotonic()
        try:
            async with self._session.get(url, allow_redirects=False) as r:
                body = await r.content.read(65536) if self._body else b""
                status = r.status
        except aiohttp.ClientError as e:
            return False, str(e) or type(e).__name__
        ms = (time.monotonic() - start) * 1000
        wanted = self.cfg.status or tuple(range(200, 400))
        if status not in wanted:
            return False, f"HTTP {status}"
        if self._body is not None and not self._body.search(body.decode(errors="replace")):
            return False, f"HTTP {status}, the body does not match"
        return True, f"HTTP {status} in {ms:.0f} ms"


# The libraries each kind's probes use, loaded before the first probe (see preload).
LIBRARIES = {
    "http": ("aiohttp",),
    "ping": ("icmplib", "icmplib.exceptions"),
    "dns": ("dns.asyncresolver", "dns.exception"),
    "script": ("carpd.linux.process",),
    "bgp": ("carpd.linux.process",),
    "bfd": ("carpd.linux.process",),
}


def preload(kinds: set[str]) -> None:
    """Import the probes' libraries now and freeze what they built, as carpd freezes
    what it loaded at start: imported at the first probe, aiohttp's tens of thousands of
    objects would be walked again by every full collection, a pause of milliseconds in
    the loop that sends the adverts."""
    import gc
    import importlib

    before = len(sys.modules)
    for kind in kinds:
        for name in LIBRARIES.get(kind, ()):
            importlib.import_module(name)
    if len(sys.modules) != before:
        gc.collect()  # only what is reachable goes into the permanent generation
        gc.freeze()


def _reason(e: OSError) -> str:
    """The kernel's words for it ("Connection refused"): asyncio puts its own in strerror."""
    return os.strerror(e.errno) if e.errno else (e.strerror or str(e))


def interface(name: str) -> Result:
    """Up: the kernel says the link is up (operstate), or, where the driver does not
    report one (``unknown``), it has a carrier."""
    try:
        state = (SYS_NET / name / "operstate").read_text().strip()
    except FileNotFoundError:
        return False, "no such interface"
    if state == "unknown":
        with contextlib.suppress(OSError):
            if (SYS_NET / name / "carrier").read_text().strip() == "1":
                return True, "link up (carrier)"
    return state == "up", f"link {state}"


def number_file(path: str) -> Result:
    """keepalived's track_file with weight 0: up while the file holds 0."""
    try:
        # Never blocks on a FIFO (O_NONBLOCK) and reads 64 bytes at most (not /dev/zero).
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            text = os.read(fd, 64).decode(errors="replace").strip()
        finally:
            os.close(fd)
    except FileNotFoundError:
        return False, "no such file"
    try:
        value = int(text or "0")
    except ValueError:
        return False, "not a number"
    return value == 0, f"value {value}"


async def process(target: str) -> Result:
    """A pid file's process is alive, or a process of that name (its comm) runs."""
    if target.startswith("/"):
        try:
            pid = int(Path(target).read_text()[:32].split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return False, "no pid in the pid file"
        return (os.path.exists(f"/proc/{pid}"), f"pid {pid}")
    found = (await PROCESSES.names())[target[:15].encode()]
    return found > 0, f"{found} running"


class ProcessScan:
    """The names of the running processes, from one scan of /proc shared by every
    process tracker probing in the same moment (they share a beat), read in slices so
    that an advert due meanwhile is not held up: 20 trackers each scanning /proc with
    open() held the loop for up to 52 ms."""

    FRESH = 0.1  # a scan this recent answers
    SLICE = 32  # processes read between two returns to the loop

    def __init__(self) -> None:
        self._at = -1.0
        self._names: Counter[bytes] = Counter()
        self._scan: asyncio.Future[Counter[bytes]] | None = None

    async def names(self) -> Counter[bytes]:
        if self._scan is not None:
            return await asyncio.shield(self._scan)
        if time.monotonic() - self._at < self.FRESH:
            return self._names
        self._scan = asyncio.ensure_future(self._read())
        try:
            self._names = await asyncio.shield(self._scan)
        finally:
            self._scan, self._at = None, time.monotonic()
        return self._names

    async def _read(self) -> Counter[bytes]:
        names: Counter[bytes] = Counter()
        with os.scandir("/proc") as entries:
            for i, entry in enumerate(entries):
                if i % self.SLICE == self.SLICE - 1:
                    await asyncio.sleep(0)
                if not entry.name.isdigit():
                    continue
                with contextlib.suppress(OSError):
                    fd = os.open(f"/proc/{entry.name}/comm", os.O_RDONLY)
                    try:
                        names[os.read(fd, 64).rstrip(b"\n")] += 1
                    finally:
                        os.close(fd)
        return names


PROCESSES = ProcessScan()


async def tcp(target: str, interface: str | None) -> Result:
    host, _, port = target.rpartition(":")
    host = host.strip("[]")
    start = time.monotonic()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        if interface is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    except OSError as e:
        return False, _reason(e)
    finally:
        sock.close()
    return True, f"connected in {(time.monotonic() - start) * 1000:.0f} ms"


async def ping(address: str, cfg: TrackConfig) -> Result:
    from icmplib import async_ping
    from icmplib.exceptions import ICMPLibError

    try:
        host = await async_ping(
            address, count=1, timeout=cfg.timeout, source=str(cfg.source) if cfg.source else None,
            privileged=True,
        )  # fmt: skip
    except ICMPLibError as e:
        return False, str(e)
    if not host.is_alive:
        return False, "no echo reply"
    if cfg.max_rtt is not None and host.avg_rtt > cfg.max_rtt:
        return False, f"rtt {host.avg_rtt:.1f} ms over {cfg.max_rtt:g}"
    return True, f"rtt {host.avg_rtt:.1f} ms"


async def dns(server: str, cfg: TrackConfig) -> Result:
    import dns.asyncresolver
    import dns.exception

    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [server]
    resolver.lifetime = cfg.timeout
    assert cfg.query is not None
    try:
        answer = await resolver.resolve(cfg.query, cfg.record)
    except dns.exception.DNSException as e:
        return False, type(e).__name__ + (f": {e}" if str(e) else "")
    return True, f"{len(answer)} {cfg.record} record(s)"


async def script(command: str, timeout: float) -> Result:
    from carpd.linux import process as programs

    r = await programs.run(["/bin/sh", "-c", command], timeout=timeout, lines=1, tail_bytes=200)
    if r.status is None:
        return False, r.error or "did not run"
    return r.status == 0, f"exit {r.status}"


# -- routing daemons ------------------------------------------------------------------


async def routing(kind: str, target: str, cfg: TrackConfig) -> Result:
    if cfg.daemon == "frr":
        return await _frr(kind, target, cfg.timeout, cfg.control)
    command = f"show protocols {target}" if kind == "bgp" else "show bfd sessions"
    lines = await bird(cfg.control or BIRD_SOCKET, command)
    if kind == "bgp":
        for line in lines:
            words = line.split()
            if words and words[0] == target:
                return "Established" in line, " ".join(words[3:]) or "no state"
        return False, f"no protocol {target} in BIRD"
    for line in lines:
        words = line.split()
        if words and words[0] == target:
            state = words[2] if len(words) > 2 else "?"
            return state == "Up", f"BFD {state}"
    return False, f"no BFD session with {target} in BIRD"


async def bird(path: str, command: str) -> list[str]:
    """One command on BIRD's control socket: its reply's text lines. BIRD answers each
    line with a four-digit code, then '-' (more follows) or ' ' (the last line); lines
    that continue the previous one start with a space; a code of 8000 or 9000 is an
    error."""
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        await reader.readline()  # "0001 BIRD 2.x ready."
        writer.write(command.encode() + b"\n")
        await writer.drain()
        out = []
        while True:
            raw = (await reader.readline()).decode(errors="replace").rstrip("\n")
            if not raw:
                raise OSError("BIRD closed its control socket")
            if raw.startswith(" "):
                out.append(raw[1:])
                continue
            code, sep, text = raw[:4], raw[4:5], raw[5:]
            if code.startswith(("8", "9")):
                raise OSError(f"BIRD: {text}")
            if code != "0000":
                out.append(text)
            if sep == " ":
                return out
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _frr(kind: str, target: str, timeout: float, control: str | None) -> Result:
    from carpd.linux import process as programs

    command = f"show bgp neighbor {target} json" if kind == "bgp" else "show bfd peers json"
    where = ["--vty_socket", control] if control else []
    r = await programs.run(["vtysh", *where, "-c", command], timeout=timeout, capture="output",
                           lines=None, tail_bytes=1 << 20)  # fmt: skip
    if r.status != 0:
        return False, r.error or f"vtysh exit {r.status}"
    try:
        data: Any = json.loads(r.output)
    except ValueError:
        return False, "vtysh did not answer JSON"
    if kind == "bgp":
        state = (data.get(target) or {}).get("bgpState", "no such neighbor")
        return state == "Established", f"BGP {state}"
    for peer in data if isinstance(data, list) else []:
        if peer.get("peer") == target:
            return peer.get("status") == "up", f"BFD {peer.get('status')}"
    return False, f"no BFD peer {target} in FRR"
