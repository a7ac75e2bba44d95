"""BIRD 2 (Debian package bird2) in lab namespaces: a router that peers by BGP with carpd
nodes, each of which runs its own BIRD announcing what carpd puts on its dummy device.

    node BIRD: protocol direct on carpd0 (the [route] device) -> BGP to the router
    router BIRD: BGP from every node -> its kernel table (``ip route`` shows the winner)

Each BIRD has its own config, control socket and pid file in the lab's directory, and is
one of the lab's processes (killed by its pid when the lab closes).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import textwrap
import time
from collections.abc import Callable
from typing import Any

from carpd_lab.netlab import Host, Lab, LabError, LogWatch

BIRD = shutil.which("bird") or "/usr/sbin/bird"
FRR_DAEMONS = "/usr/lib/frr"  # Debian's frr: bgpd, bfdd (vtysh is on the PATH)
ROUTER_AS, NODES_AS = 65000, 65001
HOLD = 3  # seconds: a crashed node's routes go when its session does
KEEPALIVE = 1


def node_config(address: str, router: str, device: str) -> str:
    return textwrap.dedent(f"""\
        router id {address};
        protocol device {{ scan time 1; }}
        # carpd's [route] device: the virtual addresses while this node is MASTER.
        protocol direct carp {{ ipv4; interface "{device}"; }}
        protocol bgp fabric {{
            local {address} as {NODES_AS};
            neighbor {router} as {ROUTER_AS};
            hold time {HOLD}; keepalive time {KEEPALIVE}; connect retry time 1;
            # Host routes only: on lo, not 127.0.0.0/8.
            ipv4 {{ import none; export where source = RTS_DEVICE && net.len = 32; }};
        }}
        """)


def router_config(address: str, peers: list[str]) -> str:
    sessions = "".join(
        textwrap.dedent(f"""\
            protocol bgp peer{i} {{
                local {address} as {ROUTER_AS};
                neighbor {peer} as {NODES_AS};
                hold time {HOLD}; keepalive time {KEEPALIVE}; connect retry time 1;
                ipv4 {{ import all; export none; }};
            }}
            """)
        for i, peer in enumerate(peers, start=1)
    )
    return (
        f"router id {address};\nprotocol device {{ scan time 1; }}\n"
        "protocol kernel { ipv4 { export all; }; }\n" + sessions
    )


class Bird:
    def __init__(self, lab: Lab, host: Host, config: str) -> None:
        base = lab.tmp / f"bird-{host.name}"
        base.mkdir(exist_ok=True)
        self.conf = base / "bird.conf"
        self.conf.write_text(config)
        self.socket = base / "bird.ctl"
        self.host = host
        argv = [BIRD, "-f", "-c", str(self.conf), "-s", str(self.socket), "-P", str(base / "pid")]
        self.proc = host.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.proc.stdout is not None
        self.log = LogWatch(self.proc.stdout)

    def birdc(self, *args: str) -> str:
        r = self.host.run(["birdc", "-s", str(self.socket), *args])
        if r.returncode != 0:
            raise LabError(f"{self.host.name}: birdc {' '.join(args)}: {r.stderr or r.stdout}")
        return r.stdout

    def wait_established(self, protocol: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while "Established" not in self._state(protocol):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.host.name}: BGP {protocol} not established")
            time.sleep(0.1)

    def _state(self, protocol: str) -> str:
        try:
            return self.birdc("show", "protocols", protocol)
        except LabError:
            return ""  # not up yet


def nexthop(host: Host, prefix: str) -> str | None:
    """The gateway of the router's kernel route to ``prefix``, or None."""
    out = host.run(["ip", "-4", "route", "show", prefix]).stdout.split()
    return out[out.index("via") + 1] if "via" in out else None


class Frr:
    """FRR's bgpd (without zebra: -Z) and bfdd in a lab namespace, with their own
    config files, pid files and vty sockets in one directory of the lab's (``vty``, what
    ``vtysh --vty_socket`` and a tracker's ``control`` name). bfdd drops to Debian's frr
    user, so the directory is frr's and the lab's own may be traversed."""

    def __init__(self, lab: Lab, host: Host, bgpd: str, bfdd: str | None = None) -> None:
        self.host = host
        self.vty = lab.tmp / f"frr-{host.name}"
        self.vty.mkdir()
        lab.tmp.chmod(0o711)
        shutil.chown(self.vty, "frr", "frr")
        common = ["--vty_socket", str(self.vty), "--log", "stdout"]
        self.procs = [self._start("bgpd", bgpd, ["-Z", "-S", "-n", *common])]
        if bfdd is not None:
            control = ["--bfdctl", str(self.vty / "bfdd.sock"), "-u", "frr", "-g", "frr"]
            self.procs.append(self._start("bfdd", bfdd, [*control, *common]))
        self.logs = [LogWatch(p.stdout) for p in self.procs if p.stdout is not None]

    def _start(self, daemon: str, config: str, options: list[str]) -> subprocess.Popen[bytes]:
        conf = self.vty / f"{daemon}.conf"
        conf.write_text(config)
        shutil.chown(conf, "frr", "frr")
        argv = [f"{FRR_DAEMONS}/{daemon}", "-f", str(conf), "-i", str(self.vty / f"{daemon}.pid"),
                *options]  # fmt: skip
        return self.host.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def vtysh(self, command: str) -> str:
        r = self.host.run(["vtysh", "--vty_socket", str(self.vty), "-c", command])
        if r.returncode != 0:
            raise LabError(f"{self.host.name}: vtysh -c {command!r}: {r.stderr or r.stdout}")
        return r.stdout

    def wait(self, command: str, found: Callable[[Any], bool], timeout: float) -> None:
        """Until ``command``'s JSON answer satisfies ``found`` (the daemon may not be
        listening yet: vtysh fails until it is)."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(LabError, ValueError):
                if found(json.loads(self.vtysh(command))):
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.host.name}: FRR: {command}: not as expected")
            time.sleep(0.1)
