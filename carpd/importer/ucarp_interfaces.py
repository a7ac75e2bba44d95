"""Debian's /etc/network/interfaces with the ucarp package's options, to [[carp]] tables.

Debian's ucarp package starts ucarp from /etc/network/if-up.d/ucarp when an interface
comes up, from the ``ucarp-*`` options of its ``iface`` stanza (ucarp 1.5.2, README.Debian):

    ucarp -i $IFACE -s $IF_ADDRESS -B -z -v $IF_UCARP_VID -p $IF_UCARP_PASSWORD
          -a $IF_UCARP_VIP -u $IF_UCARP_UPSCRIPT -d $IF_UCARP_DOWNSCRIPT
          [-P] [-k ADVSKEW] [-b ADVBASE] [-r DEADRATIO] [-M] [-x XPARAM]

only when ucarp-vid, ucarp-vip and ucarp-password are all set; ``-P`` when ucarp-master
does not start with no, off, false or 0 (``expr``), ``-M`` likewise for ucarp-nomcast.
The default scripts, /usr/share/ucarp/vip-up and vip-down, run ``ifup $IFACE:ucarp`` and
``ifdown $IFACE:ucarp``: the address and its netmask come from that stanza.

That command line is read by carpd's own ucarp options (carpd.config.ucarp_cli), so a
stanza means here what ``carpd`` with the same options would. Then: carpd adds and
removes the address itself, so the default scripts are left out and the prefix is the
``IFACE:ucarp`` stanza's (or, as carpd does for a bare -a, that of the interface's own
subnet when it holds the address; else /32). The password is never written into the
carpd.toml nor the report: each vhid gets ``passfile = "NAME.pass"`` (beside carpd.toml)
and the report names the line whose password to put in it.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from carpd.config.ucarp_cli import make_ucarp_parser, ucarp_document
from carpd.importer.report import Report
from carpd.importer.toml_out import Document, Table, Value

DEFAULT_UP, DEFAULT_DOWN = "/usr/share/ucarp/vip-up", "/usr/share/ucarp/vip-down"
_STANZAS = ("iface", "mapping", "auto", "source", "source-directory", "rename")
_FALSE = re.compile(r"no|off|false|0")  # expr "$X" : "no\|off\|false\|0": at the start
_SOURCE_DIR_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")  # run-parts' names, as ifupdown's
_MAX_FILES = 256


class InterfacesError(Exception):
    """The file, or one it sources, could not be read."""


@dataclass
class _Stanza:
    iface: str
    family: str
    method: str
    file: Path
    line: int
    options: dict[str, tuple[str, int]] = field(default_factory=dict)


def read(path: Path) -> list[_Stanza]:
    """The iface stanzas of ``path`` and of what it sources, in order."""
    out: list[_Stanza] = []
    _read(path, out, [])
    return out


def _read(path: Path, out: list[_Stanza], stack: list[Path]) -> None:
    if len(stack) > 16 or path in stack:
        raise InterfacesError(f"{path}: sourced from itself")
    try:
        text = path.read_text(errors="surrogateescape")
    except OSError as e:
        raise InterfacesError(f"{path}: cannot read: {e.strerror or e}") from None
    current: _Stanza | None = None
    pending, start = "", 0
    for number, raw in enumerate(text.split("\n"), start=1):
        if not pending and raw.lstrip().startswith("#"):
            continue
        if raw.endswith("\\"):
            pending, start = pending + raw[:-1], start or number
            continue
        line, where = (pending + raw).strip(), start or number
        pending, start = "", 0
        words = line.split()
        if not words:
            continue
        head = words[0]
        if head in _STANZAS or head.startswith("allow-") or head.startswith("no-"):
            current = None
            if head == "iface" and len(words) >= 4:
                current = _Stanza(words[1], words[2], words[3], path, where)
                out.append(current)
            elif head in ("source", "source-directory"):
                _source(
                    path,
                    head,
                    line.split(None, 1)[1] if len(words) > 1 else "",
                    out,
                    [*stack, path],
                )
            continue
        if current is not None:
            current.options.setdefault(
                head, (line.split(None, 1)[1] if len(words) > 1 else "", where)
            )


def _source(path: Path, kind: str, pattern: str, out: list[_Stanza], stack: list[Path]) -> None:
    import glob

    full = os.path.join(path.parent, pattern.strip())
    if kind == "source":
        found = sorted(glob.glob(full))
    else:
        found = sorted(
            os.path.join(full, n)
            for n in (os.listdir(full) if os.path.isdir(full) else [])
            if _SOURCE_DIR_NAME.match(n)
        )
    for f in found[:_MAX_FILES]:
        if os.path.isfile(f):
            _read(Path(f), out, stack)


@dataclass
class _Names:
    taken: set[str] = field(default_factory=set)

    def take(self, wanted: str) -> str:
        name, n = re.sub(r"[^A-Za-z0-9_.-]", "-", wanted)[:15], 1
        base = name
        while name in self.taken:
            n += 1
            name = f"{base[: 14 - len(str(n))]}-{n}"
        self.taken.add(name)
        return name


def translate(path: Path) -> tuple[Document, Report]:
    stanzas = read(path)
    report = Report(path.parent)
    names = _Names()
    aliases = {s.iface: s for s in stanzas if s.iface.endswith(":ucarp")}
    doc = Document(
        header=[
            f"carpd.toml from {path.name} (carpd import ucarp-interfaces).",
            "What was not carried over, or changed, is in the report (stderr).",
        ]
    )
    used_aliases: set[str] = set()
    for s in stanzas:
        ucarp = {k: v for k, v in s.options.items() if k.startswith("ucarp-")}
        if not ucarp:
            continue
        table = _stanza(s, ucarp, aliases, used_aliases, names, report)
        if table is not None:
            doc.tables.append(table)
    for name, alias in aliases.items():
        for opt, (val, line) in alias.options.items():
            if name in used_aliases and opt not in ("address", "netmask"):
                report.add(
                    "not translated",
                    alias.file,
                    line,
                    opt,
                    f"{val}: the {name} stanza is "
                    "not brought up by carpd (it adds the address itself): run it from "
                    "an [[action]]",
                )
    if not doc.tables:
        report.add(
            "not translated",
            path,
            0,
            "ucarp",
            "no iface stanza with ucarp-vid, ucarp-vip and ucarp-password",
        )
    return doc, report


def _stanza(
    s: _Stanza,
    ucarp: dict[str, tuple[str, int]],
    aliases: dict[str, _Stanza],
    used_aliases: set[str],
    names: _Names,
    report: Report,
) -> Table | None:
    def say(kind: str, option: str, what: str) -> None:
        line = ucarp[option][1] if option in ucarp else s.line
        report.add(kind, s.file, line, option, what)  # type: ignore[arg-type]

    def get(option: str) -> str | None:
        return ucarp[option][0] if option in ucarp else None

    known = (
        "vid",
        "vip",
        "password",
        "upscript",
        "downscript",
        "master",
        "advskew",
        "advbase",
        "deadratio",
        "nomcast",
        "xparam",
    )
    for option in ucarp:
        if option.removeprefix("ucarp-") not in known:
            say("not translated", option, "not read by Debian's if-up.d/ucarp")
    missing = [o for o in ("ucarp-vid", "ucarp-vip", "ucarp-password") if not get(o)]
    if missing:
        say(
            "not translated",
            next(iter(ucarp)),
            f"no {', '.join(missing)}: Debian's if-up.d/ucarp starts no ucarp for this stanza",
        )
        return None
    address = s.options.get("address", ("", 0))[0]
    own = _own_network(address, s.options.get("netmask", ("", 0))[0])
    argv = ["-i", s.iface, "-v", str(get("ucarp-vid")), "-p", "-", "-a", str(get("ucarp-vip"))]
    if own is not None and own.version == 4:
        argv += ["-s", str(own.ip)]
    else:
        report.add(
            "changed",
            s.file,
            s.line,
            "address",
            "no IPv4 address of the interface's "
            "own (ucarp gets an empty -s): carpd picks the source address itself",
        )
    master = get("ucarp-master")
    if master is not None and not _FALSE.match(master):
        argv.append("-P")
    for option, flag in (
        ("ucarp-advskew", "-k"),
        ("ucarp-advbase", "-b"),
        ("ucarp-deadratio", "-r"),
        ("ucarp-xparam", "-x"),
    ):
        value = get(option)
        if value:
            argv += [flag, value.split()[0]]
    nomcast = get("ucarp-nomcast")
    if nomcast is not None and not _FALSE.match(nomcast):
        say(
            "not translated",
            "ucarp-nomcast",
            "broadcast adverts (-M): carpd sends to the "
            "multicast group; unicast peers (peers = [...]) are its way without multicast",
        )
    ns = make_ucarp_parser().parse_args(argv)
    carp: dict[str, Value] = {}
    for k, v in ucarp_document(ns)["carp"][0].items():  # type: ignore[index]
        if k not in ("pass", "name") and isinstance(v, str | int | bool | list):
            carp[k] = v
    vid = str(get("ucarp-vid"))
    name = names.take(f"ucarp{vid}" if f"ucarp{vid}" not in names.taken else f"{s.iface}-{vid}")
    vip = str(get("ucarp-vip"))
    prefix = _prefix(vip, s, aliases, used_aliases, own, report, ucarp)
    if prefix is None:
        return None
    up, down = get("ucarp-upscript"), get("ucarp-downscript")
    for key, script, default in (("up", up, DEFAULT_UP), ("down", down, DEFAULT_DOWN)):
        if script in (None, "", default):
            carp.pop(key, None)
        else:
            carp[key] = script
            say(
                "changed",
                f"ucarp-{key}script",
                f"{script}: carpd adds and removes the "
                "address itself (before up, after down): a script that does it too finds "
                "it there already",
            )
    if up in (None, "", DEFAULT_UP) or down in (None, "", DEFAULT_DOWN):
        report.add(
            "note",
            s.file,
            s.line,
            "iface",
            f"{s.iface}: Debian's vip-up/vip-down "
            f"(ifup/ifdown {s.iface}:ucarp) are left out: carpd adds and removes "
            "the address itself",
        )
    carp["addresses"] = [prefix]
    carp["passfile"] = f"{name}.pass"
    where = f"{report.shown(s.file)}:{ucarp['ucarp-password'][1]}"
    say(
        "note",
        "ucarp-password",
        f"passfile {name}.pass (beside carpd.toml): put the "
        f"password of {where} in it (the carpd.toml holds no password)",
    )
    if "preempt" not in carp:
        carp["preempt"] = False
    items: dict[str, Value] = {"name": name, "protocol": "carp"}
    items.update(carp)
    comment = f"{report.shown(s.file)}:{s.line} iface {s.iface} {s.family} {s.method}"
    return Table("carp", True, [comment], items)


def _own_network(
    address: str, netmask: str
) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    if not address:
        return None
    try:
        if "/" in address or not netmask:
            return ipaddress.ip_interface(address)
        return ipaddress.ip_interface(f"{address}/{netmask}")
    except ValueError:
        return None


def _prefix(
    vip: str,
    s: _Stanza,
    aliases: dict[str, _Stanza],
    used: set[str],
    own: ipaddress.IPv4Interface | ipaddress.IPv6Interface | None,
    report: Report,
    ucarp: dict[str, tuple[str, int]],
) -> str | None:
    line = ucarp["ucarp-vip"][1]
    try:
        ip = ipaddress.ip_address(vip)
    except ValueError:
        report.add("not translated", s.file, line, "ucarp-vip", f"{vip}: not an address")
        return None
    alias = aliases.get(f"{s.iface}:ucarp")
    if alias is not None:
        used.add(alias.iface)
        net = _own_network(
            alias.options.get("address", ("", 0))[0], alias.options.get("netmask", ("", 0))[0]
        )
        if net is not None and net.ip == ip:
            report.add(
                "note",
                alias.file,
                alias.line,
                "iface",
                f"{alias.iface}: the prefix /{net.network.prefixlen} of {vip}, as vip-up adds it",
            )
            return str(net)
        report.add(
            "changed",
            alias.file,
            alias.line,
            "iface",
            f"{alias.iface}: its address "
            f"is not ucarp-vip {vip}: carpd adds {vip} (vip-up added this one)",
        )
    if own is not None and ip in own.network:
        report.add(
            "note",
            s.file,
            line,
            "ucarp-vip",
            f"{vip}/{own.network.prefixlen}: the "
            f"prefix of {s.iface}'s own subnet, as carpd gives a bare -a",
        )
        return f"{vip}/{own.network.prefixlen}"
    report.add(
        "changed",
        s.file,
        line,
        "ucarp-vip",
        f"{vip}/{ip.max_prefixlen}: no "
        f"{s.iface}:ucarp stanza or subnet of {s.iface} gives its prefix",
    )
    return f"{vip}/{ip.max_prefixlen}"
