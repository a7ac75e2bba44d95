"""A real keepalived (Debian package) as a VRRPv3 peer in a lab namespace."""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
from pathlib import Path

from carpd_lab.netlab import Host, Lab, LogWatch

KEEPALIVED = shutil.which("keepalived") or "/usr/sbin/keepalived"

_ENTERING = re.compile(r"\((\S+)\) Entering (\S+) STATE")


def instance(
    name: str,
    vrid: int,
    priority: int,
    address: str,
    advert_int: float,
    interface: str = "eth0",
) -> str:
    return textwrap.dedent(f"""\
        vrrp_instance {name} {{
            state BACKUP
            interface {interface}
            virtual_router_id {vrid}
            priority {priority}
            advert_int {advert_int}
            virtual_ipaddress {{
                {address}
            }}
        }}
        """)


class Keepalived:
    """keepalived -n -l -P with its own config and pid files inside the lab."""

    def __init__(
        self, lab: Lab, host: Host, instances: list[str], extra: str = "", defs: str = ""
    ) -> None:
        base: Path = lab.tmp / f"keepalived-{host.name}"
        base.mkdir(exist_ok=True)
        conf = base / "keepalived.conf"
        conf.write_text(
            "global_defs {\n    router_id lab\n    vrrp_version 3\n"
            + defs
            + "}\n"
            + extra  # e.g. a vrrp_sync_group, which must come before its instances
            + "\n".join(instances)
        )
        self._spawn(lab, host, conf)

    @classmethod
    def from_file(cls, lab: Lab, host: Host, conf: Path) -> Keepalived:
        """keepalived with a keepalived.conf written by the caller, as it stands (its pid
        files in the lab, beside those of the constructor)."""
        self = cls.__new__(cls)
        (lab.tmp / f"keepalived-{host.name}").mkdir(exist_ok=True)
        self._spawn(lab, host, conf)
        return self

    def _spawn(self, lab: Lab, host: Host, conf: Path) -> None:
        base: Path = lab.tmp / f"keepalived-{host.name}"
        argv = [
            KEEPALIVED,
            "-n",
            "-l",
            "-D",
            "-P",
            "-f",
            str(conf),
            "-p",
            str(base / "keepalived.pid"),
            "-r",
            str(base / "vrrp.pid"),
        ]
        self.lab = lab
        self.proc = host.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.proc.stdout is not None
        self.log = LogWatch(self.proc.stdout)

    def wait_state(self, name: str, state: str, timeout: float = 10.0, start: int = 0) -> str:
        _, line = self.log.wait_for(rf"\({name}\) Entering {state} STATE", timeout, start)
        return line

    def kill(self) -> None:
        import signal

        self.lab.kill(self.proc, signal.SIGKILL)

    def states(self) -> dict[str, str]:
        """Each vrrp_instance's (and vrrp_sync_group's members') last state, from the log."""
        found: dict[str, str] = {}
        for line in self.log.lines[:]:
            m = _ENTERING.search(line)
            if m:
                found[m.group(1)] = m.group(2)
        return found
