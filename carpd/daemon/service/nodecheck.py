"""``carpd --check`` on the node that will run the file: what the file names must be here.

The carpdevs and every other interface it names, an address of the carpdev's own to send
adverts from, the programs it runs (hooks, [[action]]s, ifstated's commands, conntrackd,
the DHCP client, nft, the service checks) and the files it reads later (TLS, users,
conntrackd.conf): each missing one is a problem named like a config error, as carpd
would find it at start, or at the first transition weeks later. Synchronous and light
(no asyncio, no pyroute2): the addresses come from one netlink dump (carpd.linux.ifaddrs).
``--other-node`` skips all of this, for a file meant for another node.
"""

from __future__ import annotations

import grp
import os
import shlex
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from carpd.config import CarpConfig, Config, ConfigError
from carpd.config.errors import TOML, Naming, show
from carpd.config.load import file_naming
from carpd.config.model import Loc
from carpd.daemon.runtime.sources import advert_sources, own_sources, refuses_traffic
from carpd.linux import ifaddrs

if TYPE_CHECKING:
    from carpd.ifstated.parse import Action, Run

NFT = "nft"  # carpd.linux.nft runs it from PATH, else /usr/sbin/nft
SHELL = Path("/bin/sh")
_MAX_NAMES = 12  # interfaces listed in "this node has: ..."

# The first word of an ifstated command that the shell itself runs: not a program.
_SHELL_WORDS = frozenset(
    ["!", "{", "}", "(", ")", "case", "do", "done", "elif", "else", "esac", "fi", "for",
     "if", "in", "then", "until", "while", ".", ":", "[", "alias", "bg", "break", "cd",
     "command", "continue", "echo", "eval", "exec", "exit", "export", "false", "fg",
     "getopts", "hash", "jobs", "kill", "local", "printf", "pwd", "read", "readonly",
     "return", "set", "shift", "test", "times", "trap", "true", "type", "ulimit", "umask",
     "unalias", "unset", "wait"]
)  # fmt: skip


@dataclass(frozen=True)
class Finding:
    loc: Loc
    value: object  # None: no value to show
    text: str


@dataclass(frozen=True)
class NodeReport:
    problems: list[str]  # refuse the file: exit 2
    warnings: list[str]  # carpd runs, but not as the file seems to say


def check_node(config: Config) -> NodeReport:
    """What this node lacks to run ``config``, one line each, named like config errors."""
    line = _liner(config)
    problems = dict.fromkeys(line(f) for f in _problems(config))
    found = [*_service_check_warnings(config), *_prefix_warnings(config)]
    warnings = dict.fromkeys(line(f) for f in found)
    return NodeReport(list(problems), list(warnings))


def own_addresses(config: Config) -> dict[str, list[ifaddrs.IPAddress]]:
    """For ``--conntrackd-conf``: this node's own addresses now, on each carpdev and the
    sync link, by interface; never a virtual address of the config (a vhid MASTER here
    holds it now) or a link-local. ConfigError naming each interface missing here and
    its key, or a ``conntrackd.address`` that is not on the sync link (another node's)."""
    line, names = _liner(config), ifaddrs.interfaces()
    ct = config.conntrackd
    found = [f for c in config.carp for f in _carpdev(config, c, names)]
    if ct.interface is not None and ct.interface not in names:
        found.append(Finding(("conntrackd", "interface"), ct.interface, _no_interface(names)))
    if found:
        raise ConfigError("\n".join(dict.fromkeys(line(f) for f in found)))
    vips = {a.ip for c in config.carp for a in c.addresses}
    addresses = ifaddrs.addresses()
    wanted = {c.carpdev for c in config.carp}
    if ct.interface is not None:
        wanted.add(ct.interface)
    own = {
        n: [a for a in addresses.get(names[n], []) if a not in vips and not a.is_link_local]
        for n in sorted(wanted)
    }
    if ct.interface is not None and ct.address is not None and ct.address not in own[ct.interface]:
        has = ", ".join(map(str, own[ct.interface])) or "none"
        text = (
            f"not an address of {ct.interface} on this node (it has: {has}): write each "
            "node's conntrackd.conf on that node, with its interfaces configured"
        )
        raise ConfigError(line(Finding(("conntrackd", "address"), str(ct.address), text)))
    return own


def _liner(config: Config) -> Callable[[Finding], str]:
    naming = _naming(config)

    def line(f: Finding) -> str:
        file, key = naming.origin(f.loc) or (config.source, naming.name(f.loc))
        where = " = ".join(s for s in (key, None if f.value is None else show(f.value)) if s)
        return f"{file}: {where}: {f.text}" if where else f"{file}: {f.text}"

    return line


def _naming(config: Config) -> Naming:
    """Keys as the file's own errors name them (carp "lan".carpdev, an overlay's value
    by the overlay's file and key), or ucarp's options."""
    from carpd.config.ucarp_cli import SOURCE, UCARP

    if config.source == SOURCE:
        return UCARP
    try:
        return file_naming(config.source)
    except ConfigError:  # changed since it was loaded: name tables by index
        return TOML


def _problems(config: Config) -> Iterator[Finding]:
    g = config.global_
    if g.control_group is not None:
        try:
            grp.getgrnam(g.control_group)
        except KeyError:
            yield Finding(("global", "control_group"), g.control_group, "no such group")
    names = ifaddrs.interfaces()
    yield from _carp(config, names)
    for i, a in enumerate(config.action):
        if a.run is not None:
            yield from _found(("action", i, "run", 0), a.run[0], _command(a.run[0]))
        else:
            yield from _found(("action", i, "shell"), a.shell, _program(SHELL))
    yield from _ifstated(config)
    yield from _service_checks(config)
    web = config.web
    if web.enabled:
        for key in ("tls_cert", "tls_key", "users_file"):
            path = getattr(web, key)
            if path is not None:
                yield from _found(("web", key), str(path), _readable(path))
    ct = config.conntrackd
    if ct.enabled:
        yield from _found(("conntrackd", "binary"), str(ct.binary), _program(ct.binary))
        yield from _found(("conntrackd", "config"), str(ct.config), _readable(ct.config))
        if ct.interface is not None and ct.interface not in names:
            yield Finding(("conntrackd", "interface"), ct.interface, _no_interface(names))
    for i, f in enumerate(config.follow):
        if f.interface not in names:
            yield Finding(("follow", i, "interface"), f.interface, _no_interface(names))
        if f.dhcp != "none":
            yield from _found(("follow", i, "dhcp"), f.dhcp, _command(f.dhcp))


def _carp(config: Config, names: dict[str, int]) -> Iterator[Finding]:
    vips = {a.ip for c in config.carp for a in c.addresses}
    addresses: dict[int, list[ifaddrs.IPAddress]] | None = None
    for c in config.carp:
        loc = _table(config, c)
        if c.carpdev not in names:
            yield from _carpdev(config, c, names)
        else:
            if addresses is None:
                addresses = ifaddrs.addresses()
            own = addresses.get(names[c.carpdev], [])
            _, missing = advert_sources(c, *own_sources(own, vips))
            yield from (Finding(loc, None, m) for m in missing)
        if refuses_traffic(c) and shutil.which(NFT) is None and not Path("/usr/sbin/nft").exists():
            text = "needs the nft command (Debian package nftables), or accept = true"
            yield Finding((*loc, "accept"), False, text)
        for key in ("up", "down", "pre_release"):
            path = getattr(c, key)
            if path is not None:
                yield from _found((*loc, key), str(path), _program(path))


def _prefix_warnings(config: Config) -> Iterator[Finding]:
    """The ucarp command line's -a without a prefix that no subnet of the carpdev holds
    here: carpd would add it as /32 (carpd.daemon.runtime.subnets)."""
    from carpd.daemon.runtime.subnets import advice, carpdev_prefixes

    vips = {a.ip for c in config.carp for a in c.addresses}
    names = ifaddrs.interfaces()
    for c in config.carp:
        if c.prefix_from_carpdev and c.carpdev in names:
            own = ifaddrs.prefixed().get(names[c.carpdev], [])
            for a, source in carpdev_prefixes(c, own, vips).values():
                if source is None:
                    text = f"no subnet of {c.carpdev} holds it: carpd adds it as {a}; {advice(a)}"
                    yield Finding((*_table(config, c), "addresses"), str(a.ip), text)


def _carpdev(config: Config, c: CarpConfig, names: dict[str, int]) -> Iterator[Finding]:
    if c.carpdev not in names:
        yield Finding((*_table(config, c), "carpdev"), c.carpdev, _no_interface(names))


def _table(config: Config, c: CarpConfig) -> Loc:
    """Where a vhid is in the file: its [[carp]] table, or the [[pool]] that made it."""
    if c.pool is not None:
        return ("pool", next(i for i, p in enumerate(config.pool) if p.name == c.pool.name))
    return ("carp", config.carp.index(c))


def _ifstated(config: Config) -> Iterator[Finding]:
    cfg = config.ifstated
    if cfg.file is None:
        return
    from carpd.ifstated.parse import ExternalTest, parse, tests_of

    try:  # read and parsed once already, at load: a change since is carpd's to find
        program = parse(cfg.file.read_text(), str(cfg.file), cfg.defines)
    except Exception:
        return
    actions = [*program.body, *(a for s in program.states for a in (*s.init, *s.body))]
    commands = [a.command for a in _runs(actions)]
    commands += [t.command for t in tests_of(actions) if isinstance(t, ExternalTest)]
    for command in dict.fromkeys(commands):
        word = _first_word(command)
        text = _command(word) if word is not None else None
        if text is not None:
            yield Finding(("ifstated", "file"), str(cfg.file), f"{show(command)}: {text}")


def _runs(actions: Iterable[Action]) -> Iterator[Run]:
    from carpd.ifstated.parse import If, Run

    for a in actions:
        if isinstance(a, Run):
            yield a
        elif isinstance(a, If):
            yield from _runs(a.body)


def _first_word(command: str) -> str | None:
    """The program a shell command line starts, if that is plain to see: not a shell
    word, a variable or anything the shell would expand first."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return None
    while words and "=" in words[0] and not words[0].startswith("="):
        words.pop(0)  # VAR=value before the command
    if not words or words[0] in _SHELL_WORDS:
        return None
    if any(ch in words[0] for ch in "$`*?[]{}()<>|;&~\\"):
        return None
    return words[0]


def _service_checks(config: Config) -> Iterator[Finding]:
    g = config.global_
    loc, path = ("global", "service_checks"), g.service_checks
    try:
        with os.scandir(path):
            pass
    except FileNotFoundError:
        return  # no checks, as carpd finds it: a warning if the key was set
    except NotADirectoryError:
        yield Finding(loc, str(path), "not a directory")
    except OSError as e:
        yield Finding(loc, str(path), f"cannot read it: {e.strerror or e}")


def _service_check_warnings(config: Config) -> Iterator[Finding]:
    g = config.global_
    path = g.service_checks
    try:
        entries = sorted(path.iterdir(), key=lambda p: p.name)
    except FileNotFoundError:
        if "service_checks" in g.model_fields_set:  # the default may well be missing
            text = "no such directory, so no service checks run"
            yield Finding(("global", "service_checks"), str(path), text)
        return
    except OSError:
        return
    for p in entries:
        # As carpd.linux.service_checks finds them: a dot file is left out on purpose.
        if not p.name.startswith(".") and p.is_file() and not os.access(p, os.X_OK):
            text = f"{p.name} is not executable, so it is not run (chmod +x to run it)"
            yield Finding(("global", "service_checks"), str(path), text)


def _found(loc: Loc, value: object, text: str | None) -> Iterator[Finding]:
    if text is not None:
        yield Finding(loc, value, text)


def _program(path: Path) -> str | None:
    """Why ``path`` cannot be run, or None."""
    if not path.exists():
        return "no such file" if not path.is_symlink() else "a broken symbolic link"
    if path.is_dir():
        return "a directory, not a program"
    if not os.access(path, os.X_OK):
        return "not executable (chmod +x)"
    return None


def _command(word: str) -> str | None:
    """Why a command word (a path, or a name looked up in PATH) cannot be run, or None."""
    if "/" in word:
        return _program(Path(word))
    if shutil.which(word) is None:
        return f"{word}: no such program in PATH ({os.environ.get('PATH', os.defpath)})"
    return None


def _readable(path: Path) -> str | None:
    try:
        with path.open("rb"):
            return None
    except IsADirectoryError:
        return "a directory, not a file"
    except OSError as e:
        return f"cannot read it: {e.strerror or e}"


def _no_interface(names: dict[str, int]) -> str:
    shown = sorted(n for n in names if n != "lo")
    listed = ", ".join(shown[:_MAX_NAMES]) + (", ..." if len(shown) > _MAX_NAMES else "")
    return f"no such interface on this node (it has: {listed or 'lo only'})"
