"""A ucarp 1.5.2 compatible command line (spec section 8), turned into the TOML document.

The options build the same dict a carpd.toml would give, validated by the same models;
messages name the option instead of the key (``command line: --vhid = 300: ...``).
"""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path
from typing import NoReturn

from carpd.config.document import Config
from carpd.config.errors import ConfigError, Naming, show
from carpd.config.load import validate_config
from carpd.config.values import Loc
from carpd.core.packet import CARP_GROUP_V4

SOURCE = "command line"
NAME = "carp0"
_NEITHER = "exactly one of --pass or --passfile is required (found neither)"

_OPTION = {
    "carpdev": "--interface",
    "srcip": "--srcip",
    "vhid": "--vhid",
    "pass": "--pass",
    "passfile": "--passfile",
    "addresses": "--addr",
    "up": "--upscript",
    "down": "--downscript",
    "preempt": "--preempt",
    "advbase": "--advbase",
    "advskew": "--advskew",
    "neutral": "--neutral",
    "xparam": "--xparam",
    "deadratio": "--deadratio",
    "syslog_facility": "--facility",
    "syslog": "--facility",
    "log_level": "--debug",
}


def _option(loc: Loc) -> str:
    keys = [s for s in loc if isinstance(s, str)]
    return "" if keys[-1] in ("carp", "global") else _OPTION.get(keys[-1], keys[-1])


UCARP = Naming(name=_option, mention=_option, missing="missing required option")


class UcarpArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error raises ConfigError instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{SOURCE}: {message}")


def make_ucarp_parser(prog: str = "carpd", *, add_help: bool = True) -> argparse.ArgumentParser:
    """The ucarp options, with ucarp's meanings; also usable as a parent parser."""
    p = UcarpArgumentParser(prog=prog, add_help=add_help, description="ucarp-compatible options")
    opt = p.add_argument
    opt("-i", "--interface", metavar="IF", help="carpdev: the interface to run on (required)")
    opt("-s", "--srcip", metavar="IP", help="our own IPv4 address, adverts come from it (required)")
    opt("-v", "--vhid", metavar="VHID", help="virtual host id, 1-255 (required)")
    opt("-p", "--pass", dest="password", metavar="PASS", help="password, at most 19 characters")
    opt("-o", "--passfile", metavar="FILE", help="read the password from the file's first line")
    opt(
        "-a",
        "--addr",
        action="append",
        metavar="ADDR",
        help="virtual address[/prefix] (required; carpd takes several); without a prefix, "
        "the prefix of the carpdev's subnet that holds it (/32 if none does)",
    )
    opt("-u", "--upscript", metavar="UP", help="run as UP IF ADDR [XPARAM] on becoming MASTER")
    opt("-d", "--downscript", metavar="DOWN", help="run as DOWN IF ADDR [XPARAM] on leaving it")
    opt("-P", "--preempt", action="store_true", help="take over from a slower master")
    opt("-b", "--advbase", metavar="N", help="advert interval in seconds, 1-255 (default 1)")
    opt("-k", "--advskew", metavar="N", help="advert skew, 0-254 (default 0): higher loses")
    opt("-n", "--neutral", action="store_true", help="no down script on the first BACKUP")
    opt(
        "-z",
        "--shutdown",
        action="store_true",
        help="accepted: carpd always bows out and runs the down script on SIGTERM",
    )
    opt("-x", "--xparam", metavar="X", help="extra third argument for the scripts")
    opt("-r", "--deadratio", metavar="N", help="master-down multiplier, 1-255 (default 3)")
    opt("-f", "--facility", metavar="NAME", help="syslog facility (default daemon), none: off")
    opt("-D", "--debug", action="store_true", help="log at debug level")
    opt("-B", "--daemonize", action="store_true", help="not supported: use systemd")
    opt("-S", "--ignoreifstate", action="store_true", help="not supported yet")
    opt("-M", "--nomcast", action="store_true", help="not supported yet")
    opt("--mcastip", metavar="IP", help=f"only the default {CARP_GROUP_V4} is supported")
    return p


def config_from_ucarp_args(argv: list[str]) -> Config:
    """A Config from a ucarp command line; raises ConfigError ("command line: ...").

    One vhid named "carp0". As with ucarp, syslog is on (facility daemon) unless
    ``-f none``. Relative paths are taken from the current directory.
    """
    ns = make_ucarp_parser().parse_args(argv)
    problems = _unsupported(ns)
    if ns.srcip is None:
        problems.append(f"{SOURCE}: --srcip: missing required option (as with ucarp)")
    if ns.password is None and ns.passfile is None:
        # The models say so too, but only once the other options are valid.
        problems.append(f"{SOURCE}: {_NEITHER}")
    try:
        config = validate_config(
            ucarp_document(ns), source=SOURCE, base_dir=Path.cwd(), naming=UCARP
        )
    except ConfigError as e:
        problems += e.problems
    if problems:
        raise ConfigError("\n".join(dict.fromkeys(problems)))
    bare = without_prefix(ns.addr or [])
    if bare:
        carp = config.carp[0].model_copy(update={"prefix_from_carpdev": bare})
        config = config.model_copy(update={"carp": (carp,)})
    return config


def without_prefix(addrs: list[str]) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    """The -a addresses given without a prefix. ucarp adds none itself (its up-script
    does, mostly as ``$2/24``), so such an address takes the prefix of the carpdev's
    subnet that holds it, looked up when the vhid starts (carpd.daemon.runtime.subnets)."""
    return tuple(ip for text in addrs if "/" not in text and (ip := _ip(text)) is not None)


def ucarp_document(ns: argparse.Namespace) -> dict[str, object]:
    """The carpd.toml document the parsed ucarp options stand for."""
    carp: dict[str, object] = {"name": NAME}
    given = {
        "carpdev": ns.interface,
        "srcip": ns.srcip,
        "vhid": _int(ns.vhid),
        "pass": ns.password,
        "passfile": ns.passfile,
        "addresses": ns.addr,
        "up": ns.upscript,
        "down": ns.downscript,
        "advbase": _int(ns.advbase),
        "advskew": _int(ns.advskew),
        "xparam": ns.xparam,
        "deadratio": _int(ns.deadratio),
        "preempt": ns.preempt or None,
        "neutral": ns.neutral or None,
    }
    carp.update((k, v) for k, v in given.items() if v is not None)
    glob: dict[str, object] = {"syslog": ns.facility != "none"}
    if ns.facility not in (None, "none"):
        glob["syslog_facility"] = ns.facility
    if ns.debug:
        glob["log_level"] = "debug"
    return {"global": glob, "carp": [carp]}


def _int(value: str | None) -> int | str | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return value  # validation says "must be an integer", naming the option


def _unsupported(ns: argparse.Namespace) -> list[str]:
    out = []
    if ns.daemonize:
        out.append(
            f"{SOURCE}: -B/--daemonize: carpd does not daemonize; "
            "run carpd in the foreground under systemd"
        )
    for flag, name in ((ns.ignoreifstate, "-S/--ignoreifstate"), (ns.nomcast, "-M/--nomcast")):
        if flag:
            out.append(f"{SOURCE}: {name}: carpd does not support this yet")
    if ns.mcastip is not None and _ip(ns.mcastip) != CARP_GROUP_V4:
        out.append(
            f"{SOURCE}: --mcastip = {show(ns.mcastip)}: carpd does not support a "
            f"multicast group other than {CARP_GROUP_V4} yet"
        )
    return out


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
