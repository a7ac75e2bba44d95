"""carpd: the daemon's command line.

Each mode imports only what it needs, for a quick start: ``--version`` nothing of carpd's
own, ``--help`` the ucarp options, ``--check`` the configuration (pydantic); asyncio,
netlink (pyroute2) and the runtime only when the daemon runs (carpd.daemon.service.serve).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from carpd import __version__
from carpd.daemon.service.exits import EXIT_CONFIG

if TYPE_CHECKING:
    from carpd.config import Config

DEFAULT_CONFIG = "/etc/carpd/carpd.toml"

DESCRIPTION = f"""\
CARP (Common Address Redundancy Protocol) failover daemon.

Reads its vhids from a TOML file (default {DEFAULT_CONFIG}), or takes a ucarp command line:
a ucarp user can switch by changing one word, e.g.
  carpd -i eth0 -s 192.0.2.1 -v 7 -p secret -a 192.0.2.100 -u up.sh -d down.sh -P

Coming from keepalived or Debian's ucarp stanzas: `carpd import keepalived FILE` and
`carpd import ucarp-interfaces FILE` print a carpd.toml and report on stderr what did not
translate (`carpd import --help`).

Signals: SIGTERM/SIGINT hand over at once (a MASTER sends the infinite advert),
remove the addresses, run the down hooks and exit 0. SIGHUP reloads the file; vhids
whose settings did not change keep their state.
"""


def make_parser() -> argparse.ArgumentParser:
    from carpd.config.ucarp_cli import make_ucarp_parser

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
        "--check",
        action="store_true",
        help="validate the configuration and what it needs on this node (the interfaces, "
        "an address of each carpdev's own, the programs it runs, the files it reads), "
        "then exit: 0 if good, 2 and one line per problem if not",
    )
    parser.add_argument(
        "--other-node",
        action="store_true",
        help="with --check: check a file meant for another node, without looking at this "
        "node's interfaces, programs and files",
    )
    parser.add_argument(
        "--conntrackd-conf",
        action="store_true",
        help="print a conntrackd.conf for this node (from the [conntrackd] table, the "
        "virtual addresses and this node's own addresses, read from its carpdevs and sync "
        "link: run it on each node, with its interfaces configured; stderr says which it "
        "took; exit 2 if an interface is missing) and exit",
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
    own.add_argument("--other-node", action="store_true")
    own.add_argument("--conntrackd-conf", action="store_true")
    own.add_argument("--socket")
    return own.parse_known_args(argv)


def read_config(argv: list[str]) -> Config:
    from pathlib import Path

    from carpd.config import ConfigError, config_from_ucarp_args, load_config

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


@contextlib.contextmanager
def no_collection() -> Iterator[None]:
    """No cyclic garbage collection inside: loading the modules and the configuration
    allocates a lot and frees little (collection made some 90 passes there, 20 ms)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def check(config: Config, *, this_node: bool) -> int:
    """--check: the file, then (unless --other-node) what it needs on this node."""
    from carpd.config.advice import advisories

    notes, problems = advisories(config), []
    if this_node:
        from carpd.daemon.service.nodecheck import check_node

        report = check_node(config)
        notes, problems = notes + report.warnings, report.problems
    if problems:
        print("carpd: " + "\n".join(problems), file=sys.stderr)
    for note in notes:
        print(f"carpd: warning: {note}", file=sys.stderr)
    if problems:
        return EXIT_CONFIG
    # "configuration OK" either way: scripts look for it; the mode comes after.
    mode = "" if this_node else ", as a file for another node (this node not checked)"
    print(f"carpd: {config.source}: configuration OK ({len(config.carp)} vhid(s)){mode}")
    return 0


def print_conntrackd_conf(config: Config) -> int:
    """The conntrackd.conf for this node on stdout; on stderr, which addresses were taken
    as this node's own and from which interface."""
    from carpd.config import ConfigError
    from carpd.config.conntrackd_conf import render
    from carpd.daemon.service.nodecheck import own_addresses

    try:
        own = own_addresses(config)
        text = render(config, own)
    except ConfigError as e:
        print(f"carpd: {e}", file=sys.stderr)
        return EXIT_CONFIG
    print(text, end="")
    took = "; ".join(f"{n} {', '.join(map(str, a)) or 'none'}" for n, a in own.items())
    print(f"carpd: this node's own addresses, from its interfaces now: {took}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["import"]:  # an offline translator (carpd.importer): nothing else
        from carpd.importer.cli import main as import_main

        return import_main(argv[1:])
    if any(a in ("-h", "--help") for a in argv):
        make_parser().print_help()
        return 0
    if "--version" in argv:
        print(f"carpd {__version__}")
        return 0
    with no_collection():
        from carpd.config import ConfigError

        try:
            config = read_config(argv)
        except ConfigError as e:
            print(f"carpd: {e}", file=sys.stderr)
            return EXIT_CONFIG
        opts, rest = split_argv(argv)
        if opts.other_node and not opts.check:
            print("carpd: --other-node goes with --check", file=sys.stderr)
            return EXIT_CONFIG
        if opts.check:
            return check(config, this_node=not opts.other_node)
        if opts.conntrackd_conf:
            return print_conntrackd_conf(config)
        from carpd.daemon.service.serve import run

        # What loading built stays for good: frozen, no later collection walks it.
        gc.freeze()
    # SIGHUP re-reads the file; a ucarp command line has nothing to re-read.
    return run(config, (lambda: read_config(argv)) if not rest else None)
