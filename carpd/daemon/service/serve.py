"""Running the daemon: logging, the capability check, the runtime on an asyncio loop,
the control socket and the signals. Imported by carpd.daemon.service.main only to run the
daemon, so ``--version``, ``--help`` and ``--check`` never load asyncio or pyroute2."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carpd import __version__
from carpd.config import Config, ConfigError
from carpd.config.advice import advisories
from carpd.daemon.observers.eventstream import EventStream
from carpd.daemon.observers.notify import Notifier
from carpd.daemon.runtime.runtime import Daemon, StartupError
from carpd.daemon.service import commands
from carpd.daemon.service.control import ControlServer, Refused
from carpd.daemon.service.exits import EXIT_CONFIG, EXIT_ENVIRONMENT
from carpd.daemon.service.logsetup import setup_logging
from carpd.linux.privileges import missing_capabilities

if TYPE_CHECKING:
    from carpd.config.model import GlobalConfig
    from carpd.web.server import WebServer

log = logging.getLogger("carpd")


def advised(config: Config) -> Config:
    """Log what is valid but questionable in ``config``, and pass it on."""
    for note in advisories(config):
        log.warning("%s", note)
    return config


def run(config: Config, reload_config: Callable[[], Config] | None) -> int:
    """Run the daemon until SIGTERM or SIGINT; ``reload_config`` (None: nothing to
    reload) reads the configuration again on SIGHUP."""
    g = config.global_
    setup_logging(g.log_level, g.syslog, g.syslog_facility)
    advised(config)
    missing = missing_capabilities(control_group=g.control_group is not None)
    if missing:
        print(
            f"carpd: missing {' and '.join(missing)}: run as root or grant them "
            "(e.g. AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN in the systemd unit; "
            "CAP_CHOWN for [global] control_group, the control socket's group)",
            file=sys.stderr,
        )
        return EXIT_ENVIRONMENT
    daemon = Daemon(config)
    reload = (lambda: advised(reload_config())) if reload_config is not None else None
    return asyncio.run(serve(daemon, reload))


# What a reload cannot apply: the control socket, opened once, is carpctl's way in.
RESTART_ONLY = ("control_socket", "control_group")


def restart_needed(running: GlobalConfig, new: GlobalConfig) -> list[str]:
    """The settings of ``new`` that only a restart of carpd applies, as ``key = value``."""
    return [
        f"global.{key} = {getattr(new, key)} (running: {getattr(running, key)})"
        for key in RESTART_ONLY
        if getattr(new, key) != getattr(running, key)
    ]


def _logging(g: GlobalConfig) -> tuple[str, bool, str]:
    return g.log_level, g.syslog, g.syslog_facility


async def _new_web(daemon: Daemon, config: Config, old: WebServer | None) -> WebServer | None:
    """The [web] of ``config`` started beside ``old`` (sharing the sockets both listen
    on), or ``old`` itself when [web] did not change; one that cannot start leaves ``old``
    as it is (StartupError). The caller closes whichever of the two is not kept."""
    if old is not None and old.cfg == config.web and old.same_users():
        return old
    if not config.web.enabled:
        return None
    from carpd.web.server import WebError, WebServer  # aiohttp: only with [web]

    try:
        new = WebServer(config.web, daemon.view, commands.handlers(daemon))
        await new.start(inherit=old)
    except WebError as e:
        raise StartupError(f"{config.source}: {e}") from None
    return new


async def serve(daemon: Daemon, reload_config: Callable[[], Config] | None) -> int:
    loop = asyncio.get_running_loop()
    notifier = Notifier()  # systemd: READY, RELOADING, STOPPING, STATUS, WATCHDOG
    stream = EventStream()  # carpctl events
    daemon.publisher.subscribers += [notifier, stream]
    try:
        await daemon.preflight(daemon.config)
    except StartupError as e:
        print(f"carpd: {e}", file=sys.stderr)
        await daemon.netlink.close()
        return EXIT_CONFIG
    try:
        web = await _new_web(daemon, daemon.config, None)
    except StartupError as e:
        print(f"carpd: {e}", file=sys.stderr)
        await daemon.netlink.close()
        return EXIT_CONFIG
    started = daemon.config.global_  # what the control socket was opened with
    logged = _logging(started)  # and the log set up with (a reload applies a change)
    # One reload at a time: SIGHUPs that arrive during one are merged into one more.
    reload_wanted = asyncio.Event()
    # `carpctl reload`s waiting for the next reload's outcome: (why it was refused, what
    # only a restart applies).
    waiting: list[asyncio.Future[tuple[str | None, list[str]]]] = []

    async def reload_request(_req: dict[str, Any]) -> dict[str, Any]:
        if reload_config is None:
            raise Refused("started from the command line: there is no file to reload")
        done: asyncio.Future[tuple[str | None, list[str]]] = loop.create_future()
        waiting.append(done)
        reload_wanted.set()
        error, pending = await done
        if error is not None:
            raise Refused(f"reload refused, the running configuration is kept: {error}")
        return {"reloaded": daemon.config.source, "restart_needed": pending}

    async def reloader(load: Callable[[], Config]) -> None:
        nonlocal web, logged
        while True:
            await reload_wanted.wait()
            reload_wanted.clear()
            log.info("SIGHUP: reloading %s", daemon.config.source)
            notifier.reloading()
            answer, waiting[:] = list(waiting), []
            error: str | None = None
            pending: list[str] = []
            try:
                config = await asyncio.to_thread(load)  # checks an ifstated file too
                # The new page first: one that cannot start refuses the whole reload.
                new_web = await _new_web(daemon, config, web)
                try:
                    await daemon.reload(config)  # every integration's part, ifstated's too
                except BaseException:
                    if new_web is not None and new_web is not web:
                        await new_web.close()
                    raise
                if new_web is not web:
                    if web is not None:
                        await web.close()
                    web = new_web
                g = daemon.config.global_
                if _logging(g) != logged:
                    logged = _logging(g)
                    setup_logging(*logged)
                pending = restart_needed(started, g)
                for what in pending:
                    log.warning("reload: %s: restart carpd to apply it", what)
            except (ConfigError, StartupError) as e:
                log.error("reload refused, keeping the running configuration:\n%s", e)
                error = str(e)
            except Exception as e:  # never lose a reload's failure silently
                log.exception("reload failed")
                error = f"reload failed: {e}"
            finally:
                notifier.reloaded(daemon.view())
                for done in answer:
                    if not done.done():
                        done.set_result((error, pending))

    # After preflight, which names an unknown control_group instead of a traceback.
    control = ControlServer(
        Path(daemon.config.global_.control_socket),
        {**commands.handlers(daemon), "events": stream.follow, "reload": reload_request},
        group=daemon.config.global_.control_group,
    )
    reloading = loop.create_task(reloader(reload_config)) if reload_config else None

    def reload() -> None:
        if reload_config is None:
            log.warning("SIGHUP: started from the command line, nothing to reload")
            return
        reload_wanted.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.request_stop)
    loop.add_signal_handler(signal.SIGHUP, reload)

    async def ready() -> None:
        await control.start()
        log.info(
            "carpd %s started: %d vhid(s), control socket %s",
            __version__,
            len(daemon.vhosts),
            control.path,
        )

    try:
        return await daemon.run(ready)
    finally:
        if reloading is not None:
            reloading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reloading
        await control.close()
        if web is not None:
            await web.close()
        notifier.close()
        log.info("carpd stopped")
