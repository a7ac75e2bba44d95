"""A real-time policy for carpd ([global] realtime_priority), as keepalived's
``vrrp_rt_priority``: for 10 ms adverts, whose backups give up after 36 ms.

Under the normal policy a wakeup waits behind whatever else runs on its core, a
scheduler slice of 3 ms and more; under SCHED_FIFO it preempts it. Two guards:

- SCHED_RESET_ON_FORK: what carpd starts (hooks, service checks, conntrackd, nft) runs
  under the normal policy, so a runaway hook cannot hold a core.
- RLIMIT_RTTIME: a carpd that runs ``BUDGET`` seconds of CPU without sleeping (a bug, or
  a burst of takeovers on a slow machine) gets SIGXCPU, goes back to the normal policy,
  says so, and tries SCHED_FIFO again ``RETRY`` seconds later. The hard limit (SIGKILL;
  systemd then restarts it) is for a carpd that cannot even run that signal's handler.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from carpd.config.model import Config

log = logging.getLogger("carpd")

BUDGET = 1.0  # seconds of CPU without sleeping before SIGXCPU (carpd sleeps every advert)
HARD = BUDGET + 2.0  # then SIGKILL: SIGXCPU comes once a second in between
RETRY = 10.0  # seconds under the normal policy after SIGXCPU
SETTLE = 0.0001  # one short sleep after switching (see _fifo)


@dataclass(frozen=True, slots=True)
class RealtimeReport:
    """For status: the policy carpd runs under, and why not SCHED_FIFO if it was asked."""

    priority: int | None  # configured
    policy: str  # "fifo" or "normal"
    refused: str | None
    budget_exceeded: int  # SIGXCPUs taken
    budget_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "realtime_priority": self.priority,
            "policy": self.policy,
            "refused": self.refused,
            "budget_exceeded": self.budget_exceeded,
            "budget_s": self.budget_s,
        }

    def lines(self) -> list[str]:
        """``realtime: SCHED_FIFO priority 50`` or why carpd runs under the normal policy
        (nothing without realtime_priority)."""
        prio = self.priority
        if prio is None:
            return []
        if self.policy == "fifo":
            text = f"realtime: SCHED_FIFO priority {prio}"
        elif self.refused:
            text = f"realtime: realtime_priority {prio} refused ({self.refused}): normal policy"
        else:
            text = f"realtime: realtime_priority {prio}: normal policy for now"
        if self.budget_exceeded:
            text += (
                f"; back to the normal policy {self.budget_exceeded} time(s) after "
                f"{self.budget_s:g} s of CPU without sleeping"
            )
        return [text]


class Realtime:
    """The process's scheduling policy, set from the configuration."""

    name = "realtime"  # its key in status

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.priority: int | None = None  # configured
        self.policy = "normal"  # what runs now: "fifo" or "normal"
        self.refused: str | None = None  # why SCHED_FIFO could not be set
        self.fallbacks = 0  # SIGXCPUs taken
        self._retry: asyncio.TimerHandle | None = None
        self._handler_set = False

    def apply(self, priority: int | None) -> None:
        """Set SCHED_FIFO at ``priority`` (None: the normal policy, if we had set
        another; a policy set from outside, chrt or systemd, is left alone)."""
        if priority == self.priority:
            return
        was, self.priority = self.priority, priority
        self._cancel_retry()
        if priority is None:
            if was is not None:
                self._normal()
                log.info("realtime: realtime_priority removed, back to the normal policy")
            return
        self._fifo()

    async def reconfigure(self, config: Config) -> None:
        self.apply(config.global_.realtime_priority)

    def report(self) -> RealtimeReport:
        return RealtimeReport(self.priority, self.policy, self.refused, self.fallbacks, BUDGET)

    def close(self) -> None:
        """Stopping: the last adverts are out; what remains is no hurry."""
        self._cancel_retry()
        if self.policy == "fifo":
            self._normal()

    def _fifo(self) -> None:
        assert self.priority is not None
        try:
            soft, hard = int(BUDGET * 1e6), int(HARD * 1e6)  # microseconds
            resource.setrlimit(resource.RLIMIT_RTTIME, (soft, hard))
            if not self._handler_set:
                signal.signal(signal.SIGXCPU, self._on_sigxcpu)
                self._handler_set = True
            policy = os.SCHED_FIFO | os.SCHED_RESET_ON_FORK
            os.sched_setscheduler(0, policy, os.sched_param(self.priority))
            # The kernel counts RLIMIT_RTTIME from the last wakeup as a real-time task:
            # sleep once as one, so that time spent under the normal policy since the
            # last fallback does not count.
            time.sleep(SETTLE)
        except OSError as e:
            self.policy, self.refused = "normal", os.strerror(e.errno or 0)
            log.warning(
                "realtime: realtime_priority = %d refused (%s): it needs CAP_SYS_NICE, and "
                "under systemd RestrictRealtime=no; running under the normal policy, so "
                "short adverts may be late on a busy machine",
                self.priority,
                self.refused,
            )
            return
        self.policy, self.refused = "fifo", None
        log.info(
            "realtime: SCHED_FIFO priority %d (not inherited by what carpd starts; "
            "back to the normal policy after %.0f s of CPU without sleeping)",
            self.priority,
            BUDGET,
        )

    def _normal(self) -> None:
        os.sched_setscheduler(0, os.SCHED_OTHER | os.SCHED_RESET_ON_FORK, os.sched_param(0))
        self.policy = "normal"

    def _on_sigxcpu(self, _signum: int, _frame: Any) -> None:
        # A Python-level handler runs between bytecodes even while a callback spins, where
        # the loop's own signal handling would wait for the callback to return.
        if self.policy != "fifo":
            return
        self._normal()
        self.fallbacks += 1
        self.loop.call_soon_threadsafe(self._fell_back)

    def _fell_back(self) -> None:
        log.error(
            "realtime: %.0f s of CPU without sleeping (RLIMIT_RTTIME): back to the normal "
            "policy for %.0f s",
            BUDGET,
            RETRY,
        )
        self._cancel_retry()
        self._retry = self.loop.call_later(RETRY, self._again)

    def _again(self) -> None:
        self._retry = None
        if self.priority is not None and self.policy != "fifo":
            self._fifo()

    def _cancel_retry(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
