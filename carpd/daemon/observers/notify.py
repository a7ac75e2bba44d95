"""systemd's sd_notify, with the standard library: a datagram to $NOTIFY_SOCKET.

- ``READY=1`` once the sockets are bound and every vhid has its first state (the
  runtime's Lifecycle "ready"), with a ``STATUS=`` line that follows every transition
  and demotion change ("lan MASTER, wan MASTER; demotion 0");
- ``RELOADING=1`` with ``MONOTONIC_USEC`` when a SIGHUP arrives, and ``READY=1`` when the
  reload is over, refused or not (``Type=notify-reload`` waits for both);
- ``STOPPING=1`` when the graceful stop begins;
- ``WATCHDOG=1`` every half ``WATCHDOG_USEC``, from a timer of the protocol's own event
  loop: a loop that stalls (and so would advertise late) stops petting, and systemd
  restarts the daemon (``WatchdogSec=`` in the unit).

Without $NOTIFY_SOCKET (not started by systemd) everything here is a no-op. The variable is
removed from the environment once read, so hooks and conntrackd do not inherit it (a
conntrackd with ``Systemd on`` would otherwise talk to carpd's socket).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import MutableMapping

from carpd.daemon.seam.events import DemotionChanged, Event, Lifecycle, RoleChanged
from carpd.daemon.seam.view import NodeView

log = logging.getLogger("carpd")


def status_line(view: NodeView) -> str:
    """``STATUS=``: what `systemctl status carpd` shows under the unit's name."""
    states = ", ".join(f"{v.name} {v.state.value}" for v in view.vhids)
    demotion = max((v.demotion for v in view.vhids), default=0)
    extra = "; maintenance" if view.maintenance else ""
    return f"{states}; demotion {demotion}{extra}"


class Notifier:
    """A Subscriber of the runtime's events, and the watchdog's timer."""

    def __init__(self, environ: MutableMapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.pop("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # an abstract socket
            address = "\0" + address[1:]
        self.address = address or None
        self.watchdog: float | None = None  # seconds between two pets
        usec, pid = env.pop("WATCHDOG_USEC", ""), env.pop("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog = int(usec) / 1e6 / 2
        self._timer: asyncio.TimerHandle | None = None
        self._ready = False
        self._status: asyncio.Handle | None = None  # a STATUS line about to go out
        self._latest: NodeView | None = None  # the view it will show

    def send(self, *lines: str) -> bool:
        """One datagram of ``KEY=value`` lines; False (logged once) if it did not go."""
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto("\n".join(lines).encode(), self.address)
        except OSError as e:
            log.error("sd_notify to %s failed: %s: not telling systemd any more", self.address, e)
            self.address = None
            return False
        return True

    def notify(self, event: Event, view: NodeView) -> None:
        if isinstance(event, Lifecycle):
            if event.phase == "ready":
                self._ready = True
                self.send("READY=1", f"STATUS={status_line(view)}", f"MAINPID={os.getpid()}")
                self.start_watchdog()
            elif event.phase == "stopping":
                if self._status is not None:
                    self._status.cancel()
                    self._status = None
                self.send("STOPPING=1", "STATUS=stopping: handing over")
        elif isinstance(event, RoleChanged | DemotionChanged) and self._ready and self.address:
            # One STATUS for a burst (255 takeovers at once): the line names every vhid,
            # so one per event would be O(N^2). The view is read when it goes out.
            self._latest = view
            if self._status is None:
                self._status = asyncio.get_running_loop().call_soon(self._send_status)

    def _send_status(self) -> None:
        self._status = None
        if self._latest is not None:
            self.send(f"STATUS={status_line(self._latest)}")
            self._latest = None

    def reloading(self) -> None:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading")

    def reloaded(self, view: NodeView) -> None:
        self.send("READY=1", f"STATUS={status_line(view)}")

    def start_watchdog(self) -> None:
        if self.watchdog is None or self._timer is not None:
            return
        loop = asyncio.get_running_loop()

        def pet() -> None:
            self.send("WATCHDOG=1")
            assert self.watchdog is not None
            self._timer = loop.call_later(self.watchdog, pet)

        pet()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
