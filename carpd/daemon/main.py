"""carpd: the daemon's command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from carpd import __version__
from carpd.config import Config, ConfigError, config_from_ucarp_args, load_config
from carpd.config.advice import advisories
from carpd.config.ucarp_cli import make_ucarp_parser
from carpd.daemon import commands
from carpd.daemon.control import ControlServer
from carpd.daemon.logsetup import setup_logging
from carpd.daemon.runtime import Daemon, StartupError
from carpd.linux.privileges import missing_capabilities

log = logging.getLogger("carpd")

DEFAULT_CONFIG = "/etc/carpd/carpd.toml"
EXIT_CONFIG = 2
EXIT_ENVIRONMENT = 1

DESCRIPTION = f"""\
CARP (Common Address Redundancy Protocol) failover daemon.

Reads its vhids from a TOML file (default {DEFAULT_CONFIG}), or takes a ucarp command line:
a ucarp user can switch by changing one word, e.g.
  carpd -i eth0 -s 192.0.2.1 -v 7 -p secret -a 192.0.2.100 -u up.sh -d down.sh -P

Signals: SIGTERM/SIGINT hand over at once (a MASTER sends the infinite advert),
remove the addresses, run the down hooks and exit 0. SIGHUP reloads the file; vhids
whose settings did not change keep their state.
"""


def make_parser() -> argparse.ArgumentParser:
    ucarp = make_ucarp_parser(add_help=False)
    parser = argparse.ArgumentParser(
        prog="carpd",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[ucarp],
        conflict_handler="resolve",
    )
    parser.add_argument(
        "-c", "--config", metavar="FILE", help=f"TOML configuration (default {DEFAULT_CONFIG})"
    )
    parser.add_argument(
        "--check", action="store_true", help="validate the configuration and exit (0 if good)"
    )
    parser.add_argument(
        "--socket", metavar="PATH", help="control socket, overrides [global] control_socket"
    )
    parser.add_argument("--version", action="version", version=f"carpd {__version__}")
    return parser


def split_argv(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """carpd's own options, and whatever is left for the ucarp-compatible parser."""
    own = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    own.add_argument("-c", "--config")
    own.add_argument("--check", action="store_true")
    own.add_argument("--socket")
    return own.parse_known_args(argv)


def read_config(argv: list[str]) -> Config:
    opts, rest = split_argv(argv)
    if rest:
        if opts.config:
            raise ConfigError("use either --config FILE or ucarp-style options, not both")
        config = config_from_ucarp_args(rest)
    else:
        config = load_config(opts.config or DEFAULT_CONFIG)
    if opts.socket:
        g = config.global_.model_copy(update={"control_socket": Path(opts.socket).absolute()})
        config = config.model_copy(update={"global_": g})
    return config


def advised(config: Config) -> Config:
    """Log what is valid but questionable in ``config``, and pass it on."""
    for note in advisories(config):
        log.warning("%s", note)
    return config


async def serve(daemon: Daemon, reload_config: Callable[[], Config] | None) -> int:
    loop = asyncio.get_running_loop()
    control = ControlServer(
        Path(daemon.config.global_.control_socket),
        commands.handlers(daemon),
        group=daemon.config.global_.control_group,
    )

    try:
        await daemon.preflight(daemon.config)
    except StartupError as e:
        print(f"carpd: {e}", file=sys.stderr)
        await daemon.netlink.close()
        return EXIT_CONFIG
    # One reload at a time: SIGHUPs that arrive during one are merged into one more.
    reload_wanted = asyncio.Event()

    async def reloader(load: Callable[[], Config]) -> None:
        while True:
            await reload_wanted.wait()
            reload_wanted.clear()
            log.info("SIGHUP: reloading %s", daemon.config.source)
            try:
                await daemon.reload(load())
            except (ConfigError, StartupError) as e:
                log.error("reload refused, keeping the running configuration:\n%s", e)
            except Exception:  # never lose a reload's failure silently
                log.exception("reload failed")

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
        log.info("carpd stopped")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        make_parser().print_help()
        return 0
    if "--version" in argv:
        print(f"carpd {__version__}")
        return 0
    try:
        config = read_config(argv)
    except ConfigError as e:
        print(f"carpd: {e}", file=sys.stderr)
        return EXIT_CONFIG
    opts, _ = split_argv(argv)
    if opts.check:
        for note in advisories(config):
            print(f"carpd: warning: {note}", file=sys.stderr)
        print(f"carpd: {config.source}: configuration OK ({len(config.carp)} vhid(s))")
        return 0
    g = config.global_
    setup_logging(g.log_level, g.syslog, g.syslog_facility)
    advised(config)
    missing = missing_capabilities()
    if missing:
        print(
            f"carpd: missing {' and '.join(missing)}: run as root or grant them "
            "(e.g. AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN in the systemd unit)",
            file=sys.stderr,
        )
        return EXIT_ENVIRONMENT
    daemon = Daemon(config)
    from_file = not split_argv(argv)[1]
    reload = (lambda: advised(read_config(argv))) if from_file else None
    return asyncio.run(serve(daemon, reload))
