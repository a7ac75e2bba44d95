"""carpd nodes in a lab: write their config, start, signal and query them."""

from __future__ import annotations

import signal as _signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carpd.ctl.main import Unreachable, request
from carpd_lab import bounds
from carpd_lab.netlab import Host, Lab, LogWatch, carpd_argv

LOG_TAIL = 40  # lines of a node's log shown when a wait for one of them times out


@dataclass
class VhidSpec:
    vhid: int = 1
    addresses: tuple[str, ...] = ("192.0.2.100/24",)
    advskew: int = 0
    advbase: int = 1
    password: str = "lab-secret"
    name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    carpdev: str = "eth0"

    @property
    def ifname(self) -> str:
        return self.name or f"carp{self.vhid}"

    @property
    def advert_interval(self) -> float:
        """How often this node advertises the vhid while MASTER."""
        if self.extra.get("protocol") == "vrrp3":
            return float(self.extra.get("advbase", self.advbase))
        return self.advbase + self.advskew / 256

    @property
    def master_down(self) -> float:
        """This node's master-down interval for the vhid, as its protocol computes it."""
        if self.extra.get("protocol") == "vrrp3":
            interval = float(self.extra.get("advbase", self.advbase))
            return bounds.vrrp_master_down(interval, int(self.extra.get("priority", 100)))
        return bounds.carp_master_down(self.advbase, self.advskew)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_config(
    socket: Path,
    vhids: list[VhidSpec],
    tables: dict[str, dict[str, Any]] | None = None,
    arrays: dict[str, list[dict[str, Any]]] | None = None,
    **global_: Any,
) -> str:
    lines = ["[global]", f"control_socket = {_toml_value(str(socket))}"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in global_.items()]
    for name, keys in (tables or {}).items():  # e.g. [conntrackd]
        lines += ["", f"[{name}]", *(f"{k} = {_toml_value(v)}" for k, v in keys.items())]
    for name, items in (arrays or {}).items():  # e.g. [[follow]], [[action]]
        for keys in items:
            lines += ["", f"[[{name}]]", *(f"{k} = {_toml_value(v)}" for k, v in keys.items())]
    for spec in vhids:
        table: dict[str, Any] = {"name": spec.ifname, "vhid": spec.vhid, "carpdev": spec.carpdev}
        if spec.extra.get("protocol") != "vrrp3":  # VRRPv3 has no password and no advskew
            table.update(password=spec.password, advbase=spec.advbase, advskew=spec.advskew)
        table["addresses"] = list(spec.addresses)
        table.update(spec.extra)
        lines += ["", "[[carp]]"]
        lines += [
            f"{'pass' if k == 'password' else k} = {_toml_value(v)}" for k, v in table.items()
        ]
    return "\n".join(lines) + "\n"


def line_time(line: str) -> float:
    """The wall-clock time carpd stamped on one of its log lines (millisecond resolution)."""
    stamp = line.split(" ", 1)[0]
    whole, _, millis = stamp.partition(".")
    return time.mktime(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + int(millis) / 1000


@dataclass
class Node:
    lab: Lab
    host: Host
    vhids: list[VhidSpec]
    global_: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    arrays: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # [[action]]s
    proc: subprocess.Popen[bytes] | None = None
    log: LogWatch | None = None

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def socket(self) -> Path:
        return self.lab.tmp / f"{self.name}.sock"

    @property
    def config(self) -> Path:
        return self.lab.tmp / f"{self.name}.toml"

    @property
    def state_dir(self) -> Path:
        return self.lab.tmp / f"{self.name}-state"

    @property
    def checks(self) -> Path:
        """The node's service-check directory (inside the lab, never /etc)."""
        return self.lab.tmp / f"{self.name}-checks"

    def write_config(self) -> None:
        settings = {"state_dir": str(self.state_dir), "service_checks": str(self.checks)}
        settings.update(self.global_)
        self.config.write_text(
            render_config(self.socket, self.vhids, self.tables, self.arrays, **settings)
        )

    def add_check(self, name: str, script: str) -> Path:
        """Install an executable service check (a shell script body)."""
        self.checks.mkdir(exist_ok=True)
        path = self.checks / name
        path.write_text("#!/bin/sh\n" + script + "\n")
        path.chmod(0o755)
        return path

    def ctl(self, *args: str) -> tuple[int, str, str]:
        """Run carpctl against this node: (exit status, stdout, stderr)."""
        r = subprocess.run(
            [sys.executable, "-m", "carpd.ctl", "--socket", str(self.socket), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return r.returncode, r.stdout, r.stderr

    def start(
        self,
        echo: bool = False,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        wrap: Sequence[str] = (),
    ) -> None:
        """``wrap``: a command that execs carpd (setpriv), so the pid stays carpd's."""
        self.write_config()
        argv = [
            *wrap,
            *carpd_argv(*(args if args is not None else ["--config", str(self.config)])),
        ]
        self.proc = self.host.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        assert self.proc.stdout is not None
        self.log = LogWatch(self.proc.stdout, sys.stdout if echo else None, f"  [{self.name}] ")

    def wait_log(self, pattern: str, timeout: float = 10.0, start: int = 0) -> tuple[int, str]:
        assert self.log is not None
        try:
            return self.log.wait_for(pattern, timeout, start)
        except TimeoutError as e:  # what carpd said meanwhile: the failure's own evidence
            raise TimeoutError(f"{self.name}: {e}; {self.log_tail(start)}") from None

    def log_tail(self, start: int = 0) -> str:
        """The last LOG_TAIL lines of its log from ``start``, for a failure's message."""
        lines = self.log.lines[start:][-LOG_TAIL:] if self.log is not None else []
        return "its log from the mark:\n" + ("\n".join(lines) or "(nothing)")

    def wait_ready(self, timeout: float = bounds.START_UP) -> None:
        """Block until the control socket answers (carpctl works from then on).

        A vhid's first state transition comes before the socket is bound, so a state
        seen in the log does not mean that carpctl gets an answer."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                request(str(self.socket), {"command": "status"}, timeout=timeout)
                return
            except Unreachable:
                rc = None if self.proc is None else self.proc.poll()
                if rc is not None:
                    raise RuntimeError(f"{self.name}: carpd exited {rc}") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.name}: control socket silent") from None
                time.sleep(0.05)

    @property
    def master_down(self) -> float:
        """The longest master-down interval among the node's vhids."""
        return max(spec.master_down for spec in self.vhids)

    def wait_state(
        self, state: str, vhid: str = r"\S+", timeout: float = 10.0, start: int = 0
    ) -> tuple[int, str]:
        return self.wait_log(rf"{vhid}: state transition: \S+ -> {state}\b", timeout, start)

    def mark(self) -> int:
        return self.log.mark() if self.log is not None else 0

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.lab.kill(self.proc, sig)

    def stop(self, sig: int = _signal.SIGTERM, timeout: float = 10.0) -> int:
        assert self.proc is not None
        self.signal(sig)
        rc = self.proc.wait(timeout=timeout)
        if self.log is not None:
            self.log.join()
        return rc

    def status(self) -> dict[str, Any]:
        reply = request(str(self.socket), {"command": "status"})
        assert reply["ok"], reply
        result: dict[str, Any] = reply["result"]
        return result

    def counter(self, key: str, index: int = 0) -> int:
        return int(self.status()["vhosts"][index]["counters"][key])

    def wait_counter(self, key: str, more: int, timeout: float = 15.0) -> None:
        """Block until a status counter (e.g. adverts_received) has grown by ``more``."""
        target = self.counter(key) + more
        deadline = time.monotonic() + timeout
        while self.counter(key) < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: {key} did not reach {target}")
            time.sleep(0.05)

    def states(self) -> dict[str, str]:
        return {v["name"]: v["state"] for v in self.status()["vhosts"]}

    def wait_states(self, expected: dict[str, str], timeout: float) -> None:
        """Block until ``states()`` is ``expected``."""
        deadline = time.monotonic() + timeout
        while (states := self.states()) != expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: {states}, not {expected}")
            time.sleep(0.05)


def start_master_first(master: Node, *backups: Node) -> None:
    """Start ``master`` and wait until every vhid of it is MASTER, then each of
    ``backups`` until every vhid of it is BACKUP.

    Two daemons started together race their start-up against each other's master-down
    timers: whichever speaks first may rightly become MASTER, and a slower machine picks
    another winner. Starting the one that must win first makes the outcome the protocol's.
    """
    master.start()
    for spec in master.vhids:
        master.wait_state("MASTER", vhid=spec.ifname, timeout=bounds.first_master(spec.master_down))
    master.wait_ready()
    for node in backups:
        node.start()
        for spec in node.vhids:
            node.wait_state("BACKUP", vhid=spec.ifname, timeout=bounds.START_UP)
        node.wait_ready()  # its control socket answers from now on
        # BACKUP because it hears the master: every vhid has had an advert.
        interval = max(spec.advert_interval for spec in master.vhids)
        deadline = time.monotonic() + interval + bounds.REACTION
        while any(v["counters"]["adverts_received"] == 0 for v in node.status()["vhosts"]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{node.name}: no advert heard from {master.name}")
            time.sleep(0.05)
