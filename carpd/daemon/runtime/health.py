"""What feeds the node-wide demotion besides links: maintenance mode and service checks.

Maintenance is persistent: a file in ``state_dir``, written before the demotion is
applied and removed before it is lifted, so a crash in between can only leave the node
*less* demoted than asked, never stuck (the OPNsense bugs #10901 and #3671).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from carpd.config import GlobalConfig
from carpd.core.demotion import MAINTENANCE, SERVICES, STARTUP, Demotion
from carpd.linux.service_checks import (
    SERVICE_DEMOTION,
    ServiceReport,
    disruption_message,
    log_failure,
    recovery_message,
    run_service_checks,
)

log = logging.getLogger("carpd")

__all__ = ["MAINTENANCE", "SERVICES", "STARTUP", "Health"]


class Health:
    def __init__(
        self, settings: GlobalConfig, ledger: Demotion, changed: Callable[[], None]
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self._changed = changed
        self._lock = asyncio.Lock()
        self.last_report: ServiceReport | None = None
        self._failed: tuple[str, ...] = ()
        self._check_ok: dict[str, bool] = {}  # each check's last result, by name
        self._periodic: asyncio.Task[None] | None = None

    @property
    def maintenance_file(self) -> Path:
        return self.settings.state_dir / "maintenance"

    # -- start-up -----------------------------------------------------------------

    def begin(self) -> None:
        """Before any vhid starts: demoted until the first service check has run, and
        in maintenance if it was on when the node went down."""
        self._set(STARTUP, self.settings.startup_demotion_factor)
        if self.maintenance_file.exists():
            log.warning("carp: maintenance mode is on (%s)", self.maintenance_file)
            self._set(MAINTENANCE, self.settings.maintenance_demotion_factor)

    def start_checks(self) -> None:
        loop = asyncio.get_running_loop()
        self._periodic = loop.create_task(self._run_periodically())

    def reconfigure(self, settings: GlobalConfig) -> None:
        """A reloaded ``[global]``: checks run from the new directory with the new timeout,
        a changed interval restarts the periodic runs (with a run now), maintenance keeps
        its state in the new ``state_dir`` and demotes by the new factor."""
        old, self.settings = self.settings, settings
        if self.maintenance:
            if settings.state_dir != old.state_dir:
                self.set_maintenance(True)  # persisted in the new place first
                (old.state_dir / "maintenance").unlink(missing_ok=True)
            self._set(MAINTENANCE, settings.maintenance_demotion_factor)
        if STARTUP in self.ledger.sources:
            self._set(STARTUP, settings.startup_demotion_factor)
        if self._periodic is not None and settings.service_interval != old.service_interval:
            self._periodic.cancel()
            self.start_checks()

    async def close(self) -> None:
        if self._periodic is not None:
            self._periodic.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._periodic

    # -- maintenance ----------------------------------------------------------------

    @property
    def maintenance(self) -> bool:
        return MAINTENANCE in self.ledger.sources

    def set_maintenance(self, on: bool) -> str | None:
        """Turn maintenance on or off; a warning text if it could not be persisted."""
        path = self.maintenance_file
        if on:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            with open(tmp, "w") as f:
                f.write("maintenance mode: carpctl maintenance off to leave it\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            self._set(MAINTENANCE, self.settings.maintenance_demotion_factor)
            log.warning(
                "carp: maintenance mode on: demoted by %d",
                self.settings.maintenance_demotion_factor,
            )
            return None
        # Off always works: lift the demotion even if the file cannot be removed.
        self._set(MAINTENANCE, 0)
        log.warning("carp: maintenance mode off")
        try:
            path.unlink(missing_ok=True)
        except OSError as e:
            msg = (
                f"maintenance is off, but {path} could not be removed ({e.strerror}): "
                "it would come back after a restart"
            )
            log.error("carp: %s", msg)
            return msg
        return None

    # -- service checks -----------------------------------------------------------

    async def check_services(self) -> ServiceReport:
        """Run every check once (runs never overlap) and apply the result."""
        async with self._lock:
            directory = self.settings.service_checks
            try:
                report = await run_service_checks(directory, self.settings.service_timeout)
                failed = report.failed
            except OSError as e:
                # An unreadable check directory is a failure to see, not "all healthy".
                log.error("carp: cannot read service checks in %s: %s", directory, e)
                report = ServiceReport(results=(), directory=directory, directory_exists=True)
                failed = (str(directory),)
            self.last_report = report
            # Each check's failure is logged when it starts failing (a check repeated every
            # service_interval would fill the log), its recovery once.
            for result in report.results:
                was_ok = self._check_ok.get(result.name, True)
                if was_ok and not result.ok:
                    log_failure(result, self.settings.service_timeout)
                elif result.ok and not was_ok:
                    log.info("service check %s passes again", result.name)
            self._check_ok = {r.name: r.ok for r in report.results}
            if failed and failed != self._failed:
                log.warning("%s", disruption_message(failed))
            elif not failed and self._failed:
                log.warning("%s", recovery_message())
            self._failed = failed
            self._set(SERVICES, SERVICE_DEMOTION if failed else 0)
            if STARTUP in self.ledger.sources:
                log.info("carp: first service check done, start-up demotion lifted")
                self._set(STARTUP, 0)
            return report

    async def _run_periodically(self) -> None:
        interval = self.settings.service_interval
        while True:
            try:
                await self.check_services()
            except Exception:  # a broken check directory must not end the checks
                log.exception("carp: service checks failed to run")
            if not interval:  # 0: at start-up and on demand only
                return
            await asyncio.sleep(interval)

    def _set(self, reason: str, amount: int) -> None:
        if self.ledger.set_source(reason, amount):
            self._changed()
