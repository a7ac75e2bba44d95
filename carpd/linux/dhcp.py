"""A DHCP client on a [[follow]] interface (the DHCP problem): Debian's udhcpc or
dhclient, run in the foreground and stopped by carpd, with carpd's own lease script.

The script only sets the leased address and the default route with ip(8); it never
writes resolv.conf or the hostname (the distributions' scripts do, and a second node's
DHCP client must not fight the first over them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

from carpd.linux import process

log = logging.getLogger("carpd")

SCRIPT = r"""#!/bin/sh
# Written by carpd: applies a DHCP lease on a [[follow]] interface (udhcpc or dhclient).
# Only the address and the default route: never resolv.conf or the hostname.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
if [ -n "${reason:-}" ]; then  # dhclient
  case "$reason" in
    BOUND|RENEW|REBIND|REBOOT)
      if [ -n "${old_ip_address:-}" ] && [ "$old_ip_address" != "$new_ip_address" ]; then
        ip -4 addr flush dev "$interface"
      fi
      ip -4 addr replace "$new_ip_address/$new_subnet_mask" dev "$interface"
      for r in ${new_routers:-}; do
        ip -4 route replace default via "$r" dev "$interface"; break
      done ;;
    EXPIRE|FAIL|RELEASE|STOP|TIMEOUT)
      ip -4 addr flush dev "$interface" ;;
  esac
else  # udhcpc: the event is $1
  case "${1:-}" in
    deconfig) ip -4 addr flush dev "$interface" ;;
    bound|renew)
      ip -4 addr replace "$ip/${mask:-32}" dev "$interface"
      for r in ${router:-}; do
        ip -4 route replace default via "$r" dev "$interface"; break
      done ;;
  esac
fi
exit 0
"""

# A DHCP client asked to stop has this long before it is killed.
STOP_GRACE = 3.0


def write_script(directory: Path) -> Path:
    path = directory / "dhcp-lease-script"
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(SCRIPT)
    tmp.chmod(0o755)
    tmp.replace(path)
    return path


class DhcpClient:
    def __init__(self, kind: str, interface: str, state_dir: Path) -> None:
        self.kind = kind  # "udhcpc" or "dhclient"
        self.interface = interface
        self.dir = state_dir
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    def _files(self) -> tuple[str, str]:
        return (
            str(self.dir / f"dhclient.{self.interface}.leases"),
            str(self.dir / f"{self.kind}.{self.interface}.pid"),
        )

    def stop_stale(self) -> bool:
        """Kill a client of ours left running by a carpd that was killed (its pid file
        names it, and it still runs for this interface); True if there was one."""
        pidfile = Path(self._files()[1])
        try:
            pid = int(pidfile.read_text().split()[0])
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return False
        if (
            Path(argv[0].decode(errors="replace")).name != self.kind
            or self.interface.encode() not in argv
        ):
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        log.warning(
            "%s: stopped a %s left running by an earlier carpd (pid %d)",
            self.interface,
            self.kind,
            pid,
        )
        pidfile.unlink(missing_ok=True)
        return True

    def argv(self, script: Path, release: bool) -> list[str]:
        if self.kind == "udhcpc":
            # Foreground; discover every second, five tries, then again after 3 s, for
            # as long as it runs; -R: release the lease when stopped.
            args = ["udhcpc", "-f", "-i", self.interface, "-s", str(script), "-p", self._files()[1]]
            args += ["-t", "5", "-T", "1", "-A", "3"]
            return [*args, "-R"] if release else args
        leases, pid = self._files()
        return [
            "dhclient",
            "-d",
            "-4",
            "-sf",
            str(script),
            "-lf",
            leases,
            "-pf",
            pid,
            self.interface,
        ]

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self, release: bool) -> None:
        if self.running:
            return
        self.stop_stale()
        script = write_script(self.dir)
        argv = self.argv(script, release)
        log.info("%s: starting %s", self.interface, " ".join(argv))
        self.proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = asyncio.get_running_loop().create_task(self._log(self.proc))

    async def _log(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            log.info(
                "%s: %s: %s", self.interface, self.kind, line.decode(errors="replace").rstrip()
            )

    async def stop(self, release: bool) -> None:
        """Stop the client: udhcpc -R releases as it exits; for dhclient, ``dhclient -r``
        releases and stops the running one."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            if self.kind == "dhclient" and release:
                leases, pid = self._files()
                script = write_script(self.dir)
                release_argv = [
                    "dhclient", "-r", "-4", "-sf", str(script), "-lf", leases, "-pf", pid,
                    self.interface,
                ]  # fmt: skip
                await process.run(release_argv, timeout=STOP_GRACE, capture="none")
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._reader, 1.0)
            self._reader = None
