"""carpd.linux.probes against real targets on this host's loopback and in tmp_path (no
namespaces): a link's state, a number file, a process, a TCP connect, an HTTP server, a
DNS server, a shell command and BIRD's control socket. Each probe answers (ok, detail),
never raises for the target's own failure, and is over within the tracker's timeout."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import dns.message
import dns.rcode
import dns.rrset
import pytest
from aiohttp import web

from carpd.config.model import TrackConfig
from carpd.linux import probes
from carpd.linux.probes import Prober, ProcessScan

# What a probe may take beyond its timeout: the event loop's turn, a killed shell's exit.
MARGIN = 1.0


def cfg(kind: str, target: str = "x", **keys: Any) -> TrackConfig:
    return TrackConfig.model_validate({"name": "t", "kind": kind, "targets": target, **keys})


def probe(c: TrackConfig, target: str | None = None) -> tuple[bool, str]:
    async def main() -> tuple[bool, str]:
        p = Prober(c)
        try:
            return await p.probe(target if target is not None else c.targets[0])
        finally:
            await p.close()

    return asyncio.run(main())


def timed(c: TrackConfig, target: str | None = None) -> tuple[bool, str, float]:
    start = time.monotonic()
    ok, detail = probe(c, target)
    return ok, detail, time.monotonic() - start


# -- interface -------------------------------------------------------------------------


def test_interface_lo_is_up() -> None:
    # lo's operstate is "unknown" (no driver state): its carrier says up.
    assert probes.interface("lo")[0] is True
    assert probe(cfg("interface", "lo"))[0] is True


def test_interface_that_does_not_exist_is_down() -> None:
    assert probe(cfg("interface", "carpdnosuch0")) == (False, "no such interface")


def test_interface_operstate_down_is_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, state, carrier in (("eth9", "down", "0"), ("eth8", "up", "1"),
                                 ("eth7", "unknown", "0")):  # fmt: skip
        (tmp_path / name).mkdir()
        (tmp_path / name / "operstate").write_text(state + "\n")
        (tmp_path / name / "carrier").write_text(carrier + "\n")
    monkeypatch.setattr(probes, "SYS_NET", tmp_path)
    assert probes.interface("eth9") == (False, "link down")
    assert probes.interface("eth8") == (True, "link up")
    assert probes.interface("eth7") == (False, "link unknown")


# -- file ------------------------------------------------------------------------------


def test_file_holding_zero_is_up(tmp_path: Path) -> None:
    f = tmp_path / "maint"
    f.write_text("0\n")
    assert probe(cfg("file", str(f))) == (True, "value 0")


def test_file_holding_three_is_down_and_says_so(tmp_path: Path) -> None:
    f = tmp_path / "maint"
    f.write_text("3\n")
    assert probe(cfg("file", str(f))) == (False, "value 3")


def test_file_not_holding_a_number_is_down(tmp_path: Path) -> None:
    f = tmp_path / "maint"
    f.write_text("maintenance\n")
    assert probe(cfg("file", str(f))) == (False, "not a number")


def test_missing_file_is_down(tmp_path: Path) -> None:
    assert probe(cfg("file", str(tmp_path / "absent"))) == (False, "no such file")


def test_a_directory_for_a_file_is_down_not_raised(tmp_path: Path) -> None:
    ok, detail = probe(cfg("file", str(tmp_path)))
    assert (ok, detail) == (False, "Is a directory")


# -- process ---------------------------------------------------------------------------


def test_process_of_the_tests_own_name_is_running() -> None:
    comm = Path("/proc/self/comm").read_text().strip()
    ok, detail = probe(cfg("process", comm))
    assert ok is True
    assert int(detail.split()[0]) >= 1 and detail.endswith(" running")


def test_process_of_no_such_name_is_down() -> None:
    assert probe(cfg("process", "carpd-nosuch")) == (False, "0 running")


def test_process_pid_file_of_a_live_process_is_up(tmp_path: Path) -> None:
    pidfile = tmp_path / "x.pid"
    pidfile.write_text(f"{os.getpid()}\n")
    assert probe(cfg("process", str(pidfile))) == (True, f"pid {os.getpid()}")


def test_process_missing_or_empty_pid_file_is_down(tmp_path: Path) -> None:
    assert probe(cfg("process", str(tmp_path / "absent.pid"))) == (
        False,
        "no pid in the pid file",
    )
    (tmp_path / "empty.pid").write_text("")
    assert probe(cfg("process", str(tmp_path / "empty.pid"))) == (False, "no pid in the pid file")


def test_process_trackers_probing_together_share_one_scan_of_proc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """20 process trackers on one beat read /proc once, not 20 times (each scan held
    the loop); a scan a moment later answers from it too, one after FRESH reads again."""
    scans = ProcessScan()
    reads = []
    real = scans._read

    async def counted() -> Counter[bytes]:
        reads.append(1)
        return await real()

    monkeypatch.setattr(scans, "_read", counted)
    comm = Path("/proc/self/comm").read_text().strip().encode()

    async def run() -> list[int]:
        found = await asyncio.gather(*(scans.names() for _ in range(20)))
        again = await scans.names()
        await asyncio.sleep(ProcessScan.FRESH)
        later = await scans.names()
        return [n[comm] for n in (*found, again, later)]

    counts = asyncio.run(run())
    assert all(c >= 1 for c in counts) and len(reads) == 2


def test_process_pid_file_of_a_dead_process_is_down(tmp_path: Path) -> None:
    child = subprocess.Popen(["/bin/true"])
    child.wait()  # reaped: no /proc entry is left
    pidfile = tmp_path / "x.pid"
    pidfile.write_text(f"{child.pid}\n")
    assert probe(cfg("process", str(pidfile))) == (False, f"pid {child.pid}")


# -- tcp -------------------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[int]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]
    finally:
        s.close()


def closed_port() -> int:
    """A port nothing listens on: bound (so no one else takes it now) but not listening."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def test_tcp_to_a_listening_loopback_socket_is_up(listener: int) -> None:
    ok, detail = probe(cfg("tcp", f"127.0.0.1:{listener}"))
    assert ok is True and detail.startswith("connected in ") and detail.endswith(" ms")


def test_tcp_to_a_closed_port_is_down() -> None:
    port = closed_port()
    ok, detail = probe(cfg("tcp", f"127.0.0.1:{port}"))
    # The kernel's words, not asyncio's "Connect call failed ('127.0.0.1', PORT)".
    assert (ok, detail) == (False, "Connection refused")


def test_tcp_ipv6_in_brackets(tmp_path: Path) -> None:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        s.bind(("::1", 0))
        s.listen(1)
        assert probe(cfg("tcp", f"[::1]:{s.getsockname()[1]}"))[0] is True
    finally:
        s.close()


def test_tcp_bound_to_interface_lo_connects_and_a_missing_interface_fails(
    listener: int,
) -> None:
    ok, _ = probe(cfg("tcp", f"127.0.0.1:{listener}", interface="lo"))
    assert ok is True
    # The interface is really used: SO_BINDTODEVICE to a missing one is the kernel's error.
    assert probe(cfg("tcp", f"127.0.0.1:{listener}", interface="carpdnosuch0")) == (
        False,
        "No such device",
    )


# -- http ------------------------------------------------------------------------------


@asynccontextmanager
async def http_server() -> AsyncIterator[str]:
    release = asyncio.Event()

    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="hello from the backend")

    async def unavailable(_: web.Request) -> web.Response:
        return web.Response(status=503, text="down")

    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound("/unavailable")

    async def slow(_: web.Request) -> web.Response:
        await release.wait()  # until the server goes
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/unavailable", unavailable)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}"
    finally:
        release.set()
        await runner.cleanup()


def http(path: str, **keys: Any) -> tuple[bool, str, float]:
    async def main() -> tuple[bool, str, float]:
        async with http_server() as base:
            c = cfg("http", base + path, **keys)
            p = Prober(c)
            try:
                start = time.monotonic()
                ok, detail = await p.probe(c.targets[0])
                return ok, detail, time.monotonic() - start
            finally:
                await p.close()

    return asyncio.run(main())


def test_http_200_is_up() -> None:
    ok, detail, _ = http("/ok")
    assert ok is True and detail.startswith("HTTP 200 in ")


def test_http_a_status_out_of_the_default_range_is_down() -> None:
    assert http("/unavailable")[:2] == (False, "HTTP 503")


def test_http_a_status_in_the_configured_list_is_up_and_out_of_it_down() -> None:
    assert http("/unavailable", status=[503])[0] is True
    assert http("/ok", status=[204])[:2] == (False, "HTTP 200")


def test_http_body_regex() -> None:
    assert http("/ok", body=r"^hello\b")[0] is True
    assert http("/ok", body=r"^goodbye")[:2] == (False, "HTTP 200, the body does not match")


def test_http_a_redirect_is_not_followed() -> None:
    # Followed, it would end at /unavailable's 503; a 302 is in the default 200-399.
    ok, detail, _ = http("/redirect")
    assert ok is True and detail.startswith("HTTP 302 in ")
    assert http("/redirect", status=[200])[:2] == (False, "HTTP 302")


def test_http_a_server_that_does_not_answer_in_time_is_down_within_the_timeout() -> None:
    ok, detail, took = http("/slow", timeout=0.3, interval=1.0)
    assert ok is False, detail
    assert took < 0.3 + MARGIN


def test_http_a_closed_port_is_down() -> None:
    ok, detail = probe(cfg("http", f"http://127.0.0.1:{closed_port()}/"))
    assert ok is False and "Connect" in detail


# -- dns -------------------------------------------------------------------------------


class DnsServer(asyncio.DatagramProtocol):
    """Answers A queries for example.test. with 192.0.2.10; NXDOMAIN for anything else;
    ``mute``: never answers."""

    def __init__(self, mute: bool = False) -> None:
        self.mute = mute
        self.asked: list[str] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        self.asked.append(query.question[0].to_text())
        if self.mute:
            return
        response = dns.message.make_response(query)
        q = query.question[0]
        if q.name.to_text() == "example.test." and q.rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text(q.name, 60, "IN", "A", "192.0.2.10"))
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


def loopback_53() -> socket.socket:
    """A UDP socket bound to port 53 of an address of 127/8 (all of it is lo's) that no
    one else holds (parallel workers take the next): the resolver asks port 53."""
    for last in range(77, 120):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((f"127.0.53.{last}", 53))
        except OSError:
            s.close()
            continue
        return s
    raise AssertionError("no free 127.0.53.x:53 for the test's DNS server")


def dns_probe(
    query: str, mute: bool = False, timeout: float = 1.0
) -> tuple[bool, str, float, list[str]]:
    async def main() -> tuple[bool, str, float, list[str]]:
        sock = loopback_53()
        address = sock.getsockname()[0]
        loop = asyncio.get_running_loop()
        transport, server = await loop.create_datagram_endpoint(lambda: DnsServer(mute), sock=sock)
        try:
            c = cfg("dns", address, query=query, timeout=timeout, interval=max(timeout, 1.0))
            start = time.monotonic()
            ok, detail = await Prober(c).probe(address)
            return ok, detail, time.monotonic() - start, server.asked
        finally:
            transport.close()

    return asyncio.run(main())


def test_dns_an_answer_is_up() -> None:
    ok, detail, _, asked = dns_probe("example.test")
    assert (ok, detail) == (True, "1 A record(s)")
    assert asked[0] == "example.test. IN A"


def test_dns_nxdomain_is_down() -> None:
    ok, detail, _, _ = dns_probe("other.test")
    assert ok is False and detail.startswith("NXDOMAIN")


def test_dns_a_server_that_never_answers_is_down_within_the_timeout() -> None:
    ok, detail, took, asked = dns_probe("example.test", mute=True, timeout=0.5)
    assert ok is False, detail
    assert asked, "the query never reached the server"
    assert took < 0.5 + MARGIN


# -- script ----------------------------------------------------------------------------


def test_script_exit_0_is_up_and_exit_1_down() -> None:
    assert probe(cfg("script", "exit 0")) == (True, "exit 0")
    assert probe(cfg("script", "exit 1")) == (False, "exit 1")


def test_script_that_outlives_the_timeout_is_down_and_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    ok, detail, took = timed(cfg("script", f"echo $$ > {pidfile}; exec sleep 30",
                                 timeout=0.5, interval=1.0))  # fmt: skip
    assert ok is False, detail
    assert took < 0.5 + MARGIN
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + MARGIN
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not Path(f"/proc/{pid}").exists(), "the command was left running"


# -- BIRD's control socket -------------------------------------------------------------

PROTOCOLS = [
    "2002-Name       Proto      Table      State  Since         Info",
    "1002-device1    Device     ---        up     12:00:00.000  ",
    " upstream1  BGP        ---        up     12:00:01.000  Established   ",
    " upstream2  BGP        ---        start  12:00:01.000  Active        "
    "Socket: Connection refused",
    "0000 ",
]
BFD = [
    "1020-bfd1:",
    " IP address                Interface  State      Since         Interval  Timeout",
    " 198.51.100.1              veth0      Up         12:00:00.000    0.100    0.500",
    " 198.51.100.2              veth0      Down       12:00:00.000    1.000    0.000",
    "0000 ",
]


@asynccontextmanager
async def bird_server(
    reply: list[str] | Callable[[str], list[str]], answer: bool = True
) -> AsyncIterator[tuple[str, list[str]]]:
    """A unix socket that speaks as BIRD does: a greeting, then the reply to each
    command. ``answer`` False: it greets, reads, and says nothing more."""
    commands: list[str] = []
    hold = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"0001 BIRD 2.0.12 ready.\n")
        await writer.drain()
        command = (await reader.readline()).decode().rstrip("\n")
        commands.append(command)
        if not answer:
            await hold.wait()
        else:
            lines = reply(command) if callable(reply) else reply
            writer.write("".join(line + "\n" for line in lines).encode())
            await writer.drain()
        writer.close()

    with tempfile.TemporaryDirectory(dir="/tmp") as where:  # a unix path's 108 bytes
        path = os.path.join(where, "bird.ctl")
        server = await asyncio.start_unix_server(serve, path)
        try:
            yield path, commands
        finally:
            hold.set()
            server.close()
            await server.wait_closed()


def run(coro: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(coro())


def test_bird_reads_codes_continuations_and_the_last_line() -> None:
    async def main() -> tuple[list[str], list[str]]:
        async with bird_server(PROTOCOLS) as (path, commands):
            return await probes.bird(path, "show protocols"), commands

    lines, commands = run(main)
    assert commands == ["show protocols"]
    assert lines == [
        "Name       Proto      Table      State  Since         Info",
        "device1    Device     ---        up     12:00:00.000  ",
        "upstream1  BGP        ---        up     12:00:01.000  Established   ",
        "upstream2  BGP        ---        start  12:00:01.000  Active        "
        "Socket: Connection refused",
    ]


def test_bird_stops_at_a_space_after_the_code_even_before_0000() -> None:
    async def main() -> list[str]:
        async with bird_server(["1000 BIRD 2.0.12", "1000 never read"]) as (path, _):
            return await probes.bird(path, "show status")

    assert run(main) == ["BIRD 2.0.12"]


@pytest.mark.parametrize("error", ["8003 No protocols match", "9001 Parse error"])
def test_bird_an_8xxx_or_9xxx_reply_is_an_error(error: str) -> None:
    async def main() -> None:
        async with bird_server([error]) as (path, _):
            await probes.bird(path, "show protocols nosuch")

    with pytest.raises(OSError, match=f"^BIRD: {error[5:]}$"):
        run(main)


def test_bird_closing_mid_reply_is_an_error() -> None:
    async def main() -> None:
        async with bird_server(["2002-Name       Proto"]) as (path, _):
            await probes.bird(path, "show protocols")

    with pytest.raises(OSError, match="BIRD closed its control socket"):
        run(main)


def routing(
    kind: str,
    target: str,
    reply: list[str] | Callable[[str], list[str]],
    answer: bool = True,
    timeout: float = 1.0,
) -> tuple[bool, str, float, list[str]]:
    async def main() -> tuple[bool, str, float, list[str]]:
        async with bird_server(reply, answer) as (path, commands):
            c = cfg(kind, target, control=path, timeout=timeout, interval=max(timeout, 1.0))
            start = time.monotonic()
            ok, detail = await Prober(c).probe(target)
            return ok, detail, time.monotonic() - start, commands

    result: tuple[bool, str, float, list[str]] = asyncio.run(main())
    return result


def test_bgp_established_is_up_and_asks_for_that_protocol() -> None:
    ok, detail, _, commands = routing("bgp", "upstream1", PROTOCOLS)
    assert (ok, detail) == (True, "up 12:00:01.000 Established")
    assert commands == ["show protocols upstream1"]


def test_bgp_active_is_down() -> None:
    ok, detail, _, _ = routing("bgp", "upstream2", PROTOCOLS)
    assert (ok, detail) == (False, "start 12:00:01.000 Active Socket: Connection refused")


def test_bgp_a_protocol_bird_does_not_list_is_down() -> None:
    assert routing("bgp", "upstream9", PROTOCOLS)[:2] == (False, "no protocol upstream9 in BIRD")


def test_bgp_a_protocol_bird_refuses_is_down_with_birds_words() -> None:
    assert routing("bgp", "upstream9", ["8003 No protocols match"])[:2] == (
        False,
        "BIRD: No protocols match",
    )


def test_bfd_up_and_down_sessions_and_a_missing_one() -> None:
    ok, detail, _, commands = routing("bfd", "198.51.100.1", BFD)
    assert (ok, detail) == (True, "BFD Up")
    assert commands == ["show bfd sessions"]
    assert routing("bfd", "198.51.100.2", BFD)[:2] == (False, "BFD Down")
    assert routing("bfd", "198.51.100.3", BFD)[:2] == (
        False,
        "no BFD session with 198.51.100.3 in BIRD",
    )


def test_routing_without_birds_socket_is_down_not_raised(tmp_path: Path) -> None:
    c = cfg("bgp", "upstream1", control=str(tmp_path / "absent.ctl"))
    assert probe(c) == (False, "No such file or directory")


def test_a_bird_that_never_answers_is_down_within_the_timeout() -> None:
    ok, detail, took, commands = routing("bgp", "upstream1", [], answer=False, timeout=0.3)
    assert (ok, detail) == (False, "no answer within 0.3 s")
    assert commands == ["show protocols upstream1"]
    assert took < 0.3 + MARGIN


def test_a_file_tracker_never_blocks_on_a_fifo_nor_reads_undecodable_bytes(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    start = time.monotonic()
    ok, _ = probe(cfg("file", str(fifo)))
    assert ok is True and time.monotonic() - start < 1.0  # nothing written yet: empty, 0
    odd = tmp_path / "odd"
    odd.write_bytes(b"\xff\xfe1")
    assert probe(cfg("file", str(odd)))[0] is False


def test_preload_imports_a_kinds_library_and_freezes_it() -> None:
    """Loaded at the first probe, aiohttp's objects would be walked by every full
    collection after carpd froze what it loaded at start: preload freezes them too."""
    code = (
        "import gc, sys\n"
        "from carpd.linux.probes import preload\n"
        "gc.freeze(); frozen = gc.get_freeze_count()\n"
        "assert 'aiohttp' not in sys.modules\n"
        "preload({'http', 'file'})\n"
        "assert 'aiohttp' in sys.modules\n"
        "assert gc.get_freeze_count() > frozen + 10000, (frozen, gc.get_freeze_count())\n"
        "again = gc.get_freeze_count(); preload({'http'})\n"
        "assert gc.get_freeze_count() == again  # nothing new imported: no second freeze\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
