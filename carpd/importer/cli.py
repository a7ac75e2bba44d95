"""``carpd import``: another daemon's configuration in, a carpd.toml on stdout and the
report on stderr.

Exit status: 0 everything was carried over (the report has notes at most); 1 something
was not translated or behaves differently (the carpd.toml is still written: read the
report first); 2 the file could not be read or parsed, or the command line is wrong
(nothing on stdout).
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from carpd.importer.report import EXIT_UNREADABLE, Report
from carpd.importer.toml_out import Document

DESCRIPTION = """\
Translate another failover daemon's configuration into a carpd.toml, written to
stdout; the report on stderr names, with its file and line, everything that was not
translated or that carpd does differently. Exit status: 0 everything was carried over,
1 something was not translated or changed meaning (the carpd.toml is still written),
2 the file could not be read or parsed (nothing on stdout).
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: {message}", file=sys.stderr)
        raise SystemExit(EXIT_UNREADABLE)


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="carpd import",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")
    ka = sub.add_parser(
        "keepalived",
        help="keepalived.conf (vrrp_instance, vrrp_sync_group, vrrp_script, track_*, "
        "notify*, global_defs): VRRPv3 by default, so the node goes on electing with "
        "keepalived nodes (they need vrrp_version 3)",
    )
    ka.add_argument("file", metavar="FILE", help="keepalived.conf, with what it includes")
    ka.add_argument(
        "--to",
        choices=("vrrp3", "carp"),
        default="vrrp3",
        help="vrrp3 (default): VRRPv3, priority kept; carp: the whole cluster moves to "
        "CARP: advskew = 254 - priority (the order of the priorities is kept), advbase "
        "the advert interval in whole seconds, a passfile per vhid",
    )
    ka.add_argument(
        "--host",
        metavar="ID",
        help="read @ID lines as keepalived -i ID (its config-id) would, for the node the "
        "file is meant for; default: as keepalived on this host, whose config-id is the "
        "host name up to its first dot",
    )
    uc = sub.add_parser(
        "ucarp-interfaces",
        help="Debian's /etc/network/interfaces with the ucarp package's ucarp-* options",
    )
    uc.add_argument("file", metavar="FILE", help="the interfaces file (source lines followed)")
    return parser


def main(argv: list[str]) -> int:
    args = make_parser().parse_args(argv)
    path = Path(args.file)
    if args.source == "keepalived":
        from carpd.importer.keepalived import translate
        from carpd.importer.parse import ParseError, ParseWarning, parse

        warnings: list[ParseWarning] = []
        try:
            host = args.host if args.host is not None else socket.gethostname().split(".")[0]
            nodes = parse(path, host, warnings=warnings)
        except ParseError as e:
            print(f"carpd import: {e}", file=sys.stderr)
            return EXIT_UNREADABLE
        result = translate(nodes, path, to=args.to)
        for w in warnings:
            result.report.add("not translated", w.file, w.line, "include", w.message)
        return _emit(result.document, result.report)
    from carpd.importer.ucarp_interfaces import InterfacesError
    from carpd.importer.ucarp_interfaces import translate as from_interfaces

    try:
        doc, report = from_interfaces(path)
    except InterfacesError as e:
        print(f"carpd import: {e}", file=sys.stderr)
        return EXIT_UNREADABLE
    return _emit(doc, report)


def _emit(doc: Document, report: Report) -> int:
    sys.stdout.write(doc.text())
    sys.stdout.flush()
    for line in report.lines():
        print(line, file=sys.stderr)
    print(f"carpd import: {report.summary()}", file=sys.stderr)
    return report.status
