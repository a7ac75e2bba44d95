"""carpctl: show and steer a running carpd."""

from __future__ import annotations

import argparse
import json
import socket
import sys
from typing import Any

DEFAULT_SOCKET = "/run/carpd/carpd.sock"
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


class Unreachable(Exception):
    pass


def request(path: str, command: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            s.sendall(json.dumps(command).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
    except OSError as e:
        raise Unreachable(f"{path}: {e.strerror or e}") from e
    try:
        reply = json.loads(buf)
    except json.JSONDecodeError as e:
        raise Unreachable(f"{path}: not a carpd control socket (bad reply)") from e
    if not isinstance(reply, dict):
        raise Unreachable(f"{path}: not a carpd control socket (bad reply)")
    return reply


def format_status(result: dict[str, Any]) -> str:
    """ifconfig-style, as on the BSDs: one line per vhid, then its addresses."""
    lines = []
    for vh in result["vhosts"]:
        lines.append(
            f"{vh['name']}: {vh['state']} carpdev {vh['carpdev']} vhid {vh['vhid']} "
            f"advbase {vh['advbase']} advskew {vh['advskew']}"
        )
        for addr in vh["addresses"]:
            lines.append(f"\t{'inet6' if ':' in addr else 'inet'} {addr}")
    return "\n".join(lines)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="carpctl",
        description="Show and steer a running carpd through its control socket.",
        epilog="Exit codes: 0 success, 1 refused by carpd, 2 usage, 3 carpd not reachable.",
    )
    parser.add_argument(
        "--socket", default=DEFAULT_SOCKET, help=f"control socket (default {DEFAULT_SOCKET})"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    st = sub.add_parser(
        "status",
        help="state of every vhid (--json adds last transition, master seen, counters)",
    )
    st.add_argument("--json", action="store_true", dest="json_sub", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return EXIT_USAGE if e.code else EXIT_OK
    if args.command is None:
        parser.print_usage(sys.stderr)
        return EXIT_USAGE
    as_json = args.json or getattr(args, "json_sub", False)
    try:
        reply = request(args.socket, {"command": args.command})
    except Unreachable as e:
        print(
            f"carpctl: cannot reach carpd at {e}\n"
            "  is carpd running? is this the [global] control_socket? (--socket PATH)",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    if not reply.get("ok"):
        print(f"carpctl: {reply.get('error', 'refused')}", file=sys.stderr)
        return EXIT_REFUSED
    result = reply["result"]
    if as_json:
        print(json.dumps(result, indent=2, sort_keys=True))
    elif args.command == "status":
        print(format_status(result))
    return EXIT_OK
