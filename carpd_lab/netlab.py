"""Throwaway labs of network namespaces joined by a bridge, for the demo and the tests.

Everything a lab creates (namespaces, processes) is recorded and removed by its own name
or pid when the lab is closed, on every exit path. Labs only use documentation addresses.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pyroute2 import NetNS, netns
from pyroute2.netlink.rtnl.ifinfmsg import IFF_UP

from carpd_lab import bounds

LAB_ADDRESS = re.compile(r"^(192\.0\.2\.|198\.51\.100\.|203\.0\.113\.|2001:db8:)")


class LabError(Exception):
    pass


def _check_address(addr: str) -> None:
    if not LAB_ADDRESS.match(addr.lower()):
        raise LabError(f"{addr}: labs only use documentation addresses")


class LogWatch:
    """Collects a process's output lines and lets a caller wait for one to appear."""

    def __init__(self, stream: IO[bytes], echo: IO[str] | None = None, prefix: str = "") -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._echo = echo
        self._prefix = prefix
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
            if self._echo is not None:
                print(f"{self._prefix}{line}", file=self._echo, flush=True)
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float, start: int = 0) -> tuple[int, str]:
        """Block until a line from index ``start`` on matches; (index, line)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            i = start
            while True:
                while i < len(self.lines):
                    if rx.search(self.lines[i]):
                        return i, self.lines[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no line matching {pattern!r} within {timeout} s")
                self._cond.wait(left)

    def join(self, timeout: float = 5.0) -> None:
        """Wait until the stream has been read to its end."""
        self._thread.join(timeout)

    def count(self, pattern: str) -> int:
        rx = re.compile(pattern)
        with self._cond:
            return sum(1 for line in self.lines if rx.search(line))

    def mark(self) -> int:
        with self._cond:
            return len(self.lines)


@dataclass
class Host:
    lab: Lab
    name: str
    ns: str
    ipv4: str | None
    ipv6: str | None
    port: str = ""  # its veth end on the bridge, in the switch namespace
    ifname: str = "eth0"
    ports: dict[str, str] = field(default_factory=dict)  # each interface's bridge port

    def run(self, argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.ns, *argv], text=True, capture_output=True, **kw
        )

    def check(self, *argv: str, stdin: str | None = None) -> str:
        """Run a command in the host; its output, or LabError with its stderr."""
        r = self.run(argv, input=stdin)
        if r.returncode != 0:
            raise LabError(f"{self.name}: {' '.join(argv)}: {r.stderr.strip()}")
        return r.stdout

    def spawn(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen[bytes]:
        return self.lab.spawn(self, argv, **kw)

    def addresses(self) -> list[str]:
        with NetNS(self.ns) as ipr:
            idx = ipr.link_lookup(ifname=self.ifname)[0]
            return [f"{m.get('IFA_ADDRESS')}/{m['prefixlen']}" for m in ipr.get_addr(index=idx)]

    def has_address(self, addr: str) -> bool:
        return any(a.split("/")[0] == addr for a in self.addresses())

    def wait_address(
        self, addr: str, present: bool = True, timeout: float = bounds.COMMAND
    ) -> None:
        """Poll netlink until the address is there (or gone)."""
        still = "absent" if present else "present"
        self._poll(lambda: self.has_address(addr) == present, f"{addr} still {still}", timeout)

    def link_up(self, ifname: str) -> bool:
        """Whether the interface is administratively up (IFF_UP)."""
        with NetNS(self.ns) as ipr:
            (link,) = ipr.get_links(ifname=ifname)
            return bool(link["flags"] & IFF_UP)

    def wait_link(self, ifname: str, up: bool, timeout: float = bounds.COMMAND) -> None:
        """Poll netlink until the interface is up (or down): a host step that carpd takes
        after the transition it logs."""
        state = "down" if up else "up"
        self._poll(lambda: self.link_up(ifname) == up, f"{ifname} still {state}", timeout)

    def _poll(self, done: Callable[[], bool], still: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: {still} after {timeout:g} s")
            time.sleep(0.01)


@dataclass
class Lab:
    """A bridge in its own namespace and any number of hosts, each with one eth0."""

    tag: str = "lab"
    namespaces: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    hosts: dict[str, Host] = field(default_factory=dict)
    tmp: Path = field(init=False)

    def __post_init__(self) -> None:
        self._id = f"{os.getpid() % 100000}{secrets.token_hex(2)}"
        self.tmp = Path(tempfile.mkdtemp(prefix=f"carpd-{self.tag}-"))
        try:
            self.switch = self._netns("sw")
            self._make_bridge()
        except BaseException:
            self.close()
            raise

    def _make_bridge(self) -> None:
        with NetNS(self.switch) as ipr:
            ipr.link("add", ifname="br0", kind="bridge")
            # No multicast snooping: CARP is link-local multicast and must reach everyone.
            ipr.link("set", index=ipr.link_lookup(ifname="br0")[0], state="up")
            lo = ipr.link_lookup(ifname="lo")[0]
            ipr.link("set", index=lo, state="up")

    def _netns(self, suffix: str) -> str:
        name = f"carpd-{self.tag}-{self._id}-{suffix}"
        netns.create(name)
        self.namespaces.append(name)
        return name

    def _bridge(self, sw: NetNS, bridge: str) -> int:
        """The bridge's index in the switch namespace, made on first use."""
        if not sw.link_lookup(ifname=bridge):
            sw.link("add", ifname=bridge, kind="bridge")
            sw.link("set", index=sw.link_lookup(ifname=bridge)[0], state="up")
        return int(sw.link_lookup(ifname=bridge)[0])

    def add_host(
        self, name: str, ipv4: str | None = None, ipv6: str | None = None, bridge: str = "br0"
    ) -> Host:
        for addr in (ipv4, ipv6):
            if addr:
                _check_address(addr)
        ns = self._netns(name)
        port = f"v{len(self.hosts)}{self._id}"[:15]
        # DAD off inside the lab: the link-local source must be usable at once.
        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.default.accept_dad=0",
                "net.ipv6.conf.all.accept_dad=0",
            ],
            check=True,
        )
        with NetNS(self.switch) as sw:
            sw.link("add", ifname=port, kind="veth", peer={"ifname": "eth0", "net_ns_fd": ns})
            idx = sw.link_lookup(ifname=port)[0]
            sw.link("set", index=idx, master=self._bridge(sw, bridge), state="up")
        with NetNS(ns) as ipr:
            eth0 = ipr.link_lookup(ifname="eth0")[0]
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
            if ipv4:
                a, p = ipv4.split("/")
                ipr.addr("add", index=eth0, address=a, prefixlen=int(p))
            if ipv6:
                a, p = ipv6.split("/")
                ipr.addr("add", index=eth0, address=a, prefixlen=int(p), flags=0x02)
            ipr.link("set", index=eth0, state="up")
        host = Host(self, name, ns, ipv4, ipv6, port, ports={"eth0": port})
        self.hosts[name] = host
        return host

    def add_interface(self, host: Host, ifname: str, bridge: str, ipv4: str | None) -> None:
        """Another interface for a host, on another bridge of the switch namespace (with
        no address of its own if ``ipv4`` is None)."""
        if ipv4 is not None:
            _check_address(ipv4)
        port = f"{len(host.ports)}{host.port}"[:15]
        host.ports[ifname] = port
        with NetNS(self.switch) as sw:
            sw.link("add", ifname=port, kind="veth", peer={"ifname": ifname, "net_ns_fd": host.ns})
            idx = sw.link_lookup(ifname=port)[0]
            sw.link("set", index=idx, master=self._bridge(sw, bridge), state="up")
        with NetNS(host.ns) as ipr:
            idx = ipr.link_lookup(ifname=ifname)[0]
            if ipv4 is not None:
                addr, prefix = ipv4.split("/")
                ipr.addr("add", index=idx, address=addr, prefixlen=int(prefix))
            ipr.link("set", index=idx, state="up")

    def set_link(self, host: Host, up: bool, ifname: str | None = None) -> None:
        with NetNS(host.ns) as ipr:
            idx = ipr.link_lookup(ifname=ifname or host.ifname)[0]
            ipr.link("set", index=idx, state="up" if up else "down")

    def set_port(self, host: Host, ifname: str, up: bool) -> None:
        """One of the host's cables, at the switch: its interface loses its carrier."""
        with NetNS(self.switch) as sw:
            idx = sw.link_lookup(ifname=host.ports[ifname])[0]
            sw.link("set", index=idx, state="up" if up else "down")

    def cut(self, host: Host, on: bool = True) -> None:
        """Take every link of the host down at the switch, as if its cables were pulled:
        nothing it sends gets out any more (on=False plugs them back)."""
        with NetNS(self.switch) as sw:
            for port in host.ports.values():
                idx = sw.link_lookup(ifname=port)[0]
                sw.link("set", index=idx, state="down" if on else "up")

    @contextlib.contextmanager
    def cables(self, host: Host) -> Iterator[Callable[[], None]]:
        """The host's cables, ready to pull at a given moment: the switch's namespace is
        entered beforehand (pyroute2's NetNS forks a process to enter it: ``cut`` takes
        8-15 ms, during which the host still answers), so pulling them is one netlink
        request per port (about 0.3 ms). For a crash timed to the millisecond."""
        with NetNS(self.switch) as sw:
            ports = [sw.link_lookup(ifname=port)[0] for port in host.ports.values()]

            def pull() -> None:
                for idx in ports:
                    sw.link("set", index=idx, state="down")

            yield pull

    def set_loss(self, host: Host, percent: int) -> None:
        """Lose ``percent`` % of the frames the host sends, each one independently at
        random, on their way through the bridge; 0 stops it.

        Like ``tc qdisc add dev eth0 root netem loss P%`` on the host, and unlike a drop
        in the host's own firewall: the sender is not told (an nftables drop in the
        output hook fails the send with EPERM, which carpd rightly counts as a send
        error). nftables in the switch namespace, as netem (sch_netem) is not in every
        kernel.
        """
        if not 0 <= percent <= 100:
            raise LabError(f"loss {percent} %: allowed range is 0-100")
        table = f"loss_{host.port}"

        def nft(*args: str, rules: str | None = None) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["ip", "netns", "exec", self.switch, "nft", *args],
                input=rules,
                text=True,
                capture_output=True,
            )

        nft("delete", "table", "bridge", table)  # none yet: fine
        if percent == 0:
            return
        rules = (
            f"table bridge {table} {{\n"
            "  chain pre {\n"
            "    type filter hook prerouting priority 0;\n"
            f'    iifname "{host.port}" numgen random mod 100 < {percent} drop\n'
            "  }\n"
            "}\n"
        )
        r = nft("-f", "-", rules=rules)
        if r.returncode != 0:
            raise LabError(f"{host.name}: cannot set {percent} % loss: {r.stderr.strip()}")

    def isolate(self, host: Host, on: bool = True) -> None:
        """Isolated bridge ports cannot reach each other (but keep their carrier):
        isolating two hosts partitions them without a link-down event."""
        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                self.switch,
                "bridge",
                "link",
                "set",
                "dev",
                host.port,
                "isolated",
                "on" if on else "off",
            ],
            check=True,
        )

    def spawn(self, host: Host, argv: Sequence[str], **kw: Any) -> subprocess.Popen[bytes]:
        kw.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen(
            ["ip", "netns", "exec", host.ns, *argv], start_new_session=True, **kw
        )
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        """Signal a process we started (and its process group), by its own pid."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)

    def kill_all(self, host: Host) -> None:
        """SIGKILL every process in the host's namespace, ours or daemons they started
        (conntrackd -d forks away from us), by pid, from the namespace's own list."""
        for pid in pids(host):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def crash(self, host: Host) -> float:
        """A crash, not a shutdown: every process of the box stopped (no priority-0
        advert, no DHCP release, no last conntrackd message), its cables pulled, then
        killed. Returns the moment the links were cut (CLOCK_MONOTONIC)."""
        stopped = pids(host)
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        t = time.monotonic()
        self.cut(host)
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return t

    def close(self) -> None:
        for proc in self.procs:
            self.kill(proc)
        for host in self.hosts.values():  # what our processes left running in them
            self.kill_all(host)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.procs.clear()
        for name in reversed(self.namespaces):
            with contextlib.suppress(Exception):
                netns.remove(name)
        self.namespaces.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pids(host: Host) -> list[int]:
    """Every process in the host's namespace, by the namespace's own list."""
    r = subprocess.run(["ip", "netns", "pids", host.ns], capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()]


def carpd_argv(*args: str) -> list[str]:
    """Run carpd with the interpreter (and so the virtual environment) of the caller."""
    return [sys.executable, "-m", "carpd", *args]


def terminate_on_sigterm() -> Callable[[], None]:
    """Make SIGTERM unwind like Ctrl-C so ``with Lab()`` cleans up; returns a restorer.

    pyroute2's NetNS forks helpers and stops them with SIGTERM: a forked copy must just
    exit, never unwind the parent's stack (that would tear the lab down under it).
    """
    owner = os.getpid()

    def handler(signum: int, frame: object) -> None:
        if os.getpid() != owner:
            os._exit(128 + signum)
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)

    def restore() -> None:
        signal.signal(signal.SIGTERM, old)

    return restore
