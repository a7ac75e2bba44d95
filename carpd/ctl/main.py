"""carpctl: show and steer a running carpd."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import socket
import sys
import time
from collections.abc import Callable

from carpd.ctl import drill_cli, sync_args
from carpd.ctl.hosts import host_name
from carpd.ctl.socketpath import CONFIG_ENV, DEFAULT_SOCKET, NoConfig, config_file, control_socket
from carpd.sync.printable import printable

# typing.TYPE_CHECKING without loading typing: carpctl's commands never need it at run
# time, and loading it is 4 ms of `carpctl status`'s start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
EXIT_CHECK_FAILED = 4  # service-status: a check failed, for cron and monitoring
EXIT_RESTART_NEEDED = 5  # reload: taken, but part of it applies only at carpd's next start


class Unreachable(Exception):
    pass


def request(path: str, command: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            # Refused (its peer credentials), the daemon replies and hangs up without
            # reading: the send may fail, and the reply waits to be read all the same.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
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


def follow(path: str, out: Any = None) -> int:
    """`carpctl events`: print the daemon's events, one JSON object per line, until it
    goes away (exit 3) or Ctrl-C (exit 0)."""
    out = out or sys.stdout
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(path)
            s.sendall(b'{"command": "events"}\n')
            lines = s.makefile("rb")
            first = json.loads(lines.readline() or b"null")
            if not isinstance(first, dict) or not first.get("ok"):
                error = first.get("error", "refused") if isinstance(first, dict) else "no reply"
                print(f"carpctl: {error}", file=sys.stderr)
                return EXIT_REFUSED
            for raw in lines:
                out.write(raw.decode().rstrip("\n") + "\n")
                out.flush()
    except KeyboardInterrupt:
        return EXIT_OK
    except (OSError, json.JSONDecodeError) as e:
        print(f"carpctl: cannot reach carpd at {path}: {e}", file=sys.stderr)
        return EXIT_UNREACHABLE
    print(f"carpctl: carpd at {path} went away", file=sys.stderr)
    return EXIT_UNREACHABLE


def format_diagnosis(d: dict[str, Any]) -> str:
    """A warning says "diagnosis", a fact worth knowing "note"; both say since when (and
    until when, for one whose cause recurs)."""
    what = "diagnosis" if d["level"] == "warning" else "note"
    seen = f"since {d['since']}" + (f", last {d['last']}" if d["last"] != d["since"] else "")
    return f"{what}: {d['text']} ({seen})"


def format_master(vh: dict[str, Any], now: float | None = None) -> str:
    """The MASTER a BACKUP hears: ``master 192.0.2.1 (fw1), heard 0.40 s ago``, its name
    from /etc/hosts where it has one (the BSDs' ifconfig does not show it)."""
    master = vh.get("master")
    if master is None:
        return "master: none heard yet"
    name = host_name(master)
    text = f"master {master}" + (f" ({name})" if name else "")
    heard = vh.get("last_advert_heard")
    if heard:
        age = max(0.0, (time.time() if now is None else now) - parse_when(heard))
        text += f", heard {age:.2f} s ago"
    return text


def parse_when(stamp: str) -> float:
    """A time of the daemon's status (``2026-12-06T05:31:40.123+0000``): seconds."""
    return datetime.datetime.fromisoformat(stamp).timestamp()


def format_status(result: dict[str, Any], now: float | None = None) -> str:
    """ifconfig-style, as on the BSDs: one line per vhid, then its addresses, the master a
    BACKUP hears, then why it is demoted, if it is."""
    lines = []
    for vh in result["vhosts"]:
        head = f"{vh['name']}: {vh['state']} carpdev {vh['carpdev']} "
        if vh.get("protocol") == "vrrp3":
            head += (
                f"vrid {vh['vhid']} advbase {vh['advbase']:.2f} priority {vh['priority']} "
                "(VRRPv3, no authentication)"
            )
        else:
            head += f"vhid {vh['vhid']} advbase {vh['advbase']} advskew {vh['advskew']}"
        lines.append(head)
        # A VRRPv3 MASTER with accept = false holds the addresses but drops what comes to them.
        refused = " (not accepting: accept = false)" if vh.get("accepting") is False else ""
        for addr in vh["addresses"]:
            lines.append(f"\t{'inet6' if ':' in addr else 'inet'} {addr}{refused}")
        if vh["state"] == "BACKUP":
            lines.append(f"\t{format_master(vh, now)}")
        if vh.get("last_transition") and vh.get("last_reason"):
            lines.append(f"\tsince {vh['last_transition']}: {vh['last_reason']}")
        if vh.get("flapping"):
            lines.append("\tFLAPPING: see the transitions below and the log")
        for record in (vh.get("history") or [])[-HISTORY_SHOWN:]:
            lines.append(f"\t{format_transition(record)}")
        for d in vh.get("diagnostics") or []:
            lines.append(f"\t{format_diagnosis(d)}")
        for step in vh.get("host_steps") or []:
            if step["late"] or step["last_error"]:
                what = f"last error: {step['last_error']}" if step["last_error"] else "ok"
                lines.append(
                    f"\t{step['name']}: {step['failed']} failed, {step['late']} late of "
                    f"{step['runs']}; {what}"
                )
        reasons = vh.get("demotion_reasons") or []
        if reasons:
            parts = ", ".join(f"{r['reason']} {r['amount']}" for r in reasons)
            lines.append(f"\tdemoted {vh['demotion']}: {parts}")
    # Each integration's own lines (conntrackd, pools, ifstated, config sync, ...),
    # rendered by its report in the daemon: carpctl knows none of them. Some hold a
    # peer's or a file's words: escaped one by one, so none can forge a line.
    lines.extend(printable(line, "\t") for line in result.get("report_lines") or [])
    if result.get("maintenance"):
        lines.append("maintenance mode is on (carpctl maintenance off)")
    return "\n".join(lines)


HISTORY_SHOWN = 3  # transitions per vhid in text status (--json has them all)


def format_transition(r: dict[str, Any]) -> str:
    """``12:00:03.391 BACKUP -> MASTER (master timed out; last advert 3.39 s before,
    3 missed)``."""
    clock = r["at"][11:23] if r["at"] else "?"
    text = f"{clock} {r['from']} -> {r['to']} ({r['reason']}"
    if r["gap"] is None:
        return text + "; no advert heard before)"
    missed = f", {r['adverts_missed']} missed" if r["adverts_missed"] else ""
    return text + f"; last advert {r['gap']:.2f} s before{missed})"


def format_services(result: dict[str, Any]) -> str:
    lines = []
    for check in result.get("results", []):
        verdict = "ok" if check["ok"] else ("timed out" if check.get("timed_out") else "FAILED")
        lines.append(f"{check['name']}: {verdict}")
    failed = [c["name"] for c in result.get("results", []) if not c["ok"]]
    if failed:
        lines.append(f"services failed: {', '.join(failed)}: demoted by 1048576")
    else:
        lines.append(f"all {len(result.get('results', []))} service checks healthy")
    return "\n".join(lines)


def format_vhost(vh: dict[str, Any]) -> str:
    return format_status({"vhosts": [vh]})


class Usage(Exception):
    pass


def group_request(name: str, words: list[str]) -> dict[str, Any]:
    """`group NAME`, `group NAME carpdemote [N]`, `group NAME -carpdemote [N]`."""
    req: dict[str, Any] = {"command": "group", "group": name}
    if not words:
        return req
    if words[0] not in ("carpdemote", "-carpdemote") or len(words) > 2:
        raise Usage("usage: carpctl group NAME [[-]carpdemote [N]]")
    try:
        amount = int(words[1]) if len(words) == 2 else 1
    except ValueError:
        raise Usage(f"carpdemote {words[1]!r}: not a number") from None
    req["carpdemote"] = -amount if words[0].startswith("-") else amount
    return req


# carpctl's commands, each with the arguments it takes. Building a parser costs (argparse
# looks up its translations and the terminal's width for each), so a command line that
# names one builds that one alone: all of them took 15 ms, as long as `carpctl status`'s
# answer from the daemon, and an operator runs it in loops.
def _status(command: Command) -> None:
    command(
        "status",
        "state of every vhid, the master a BACKUP hears and why it is demoted "
        "(--json adds counters, drops and the last 20 transitions)",
    )


def _group(command: Command) -> None:
    g = command(
        "group",
        "show or change an interface group's demote count (OpenBSD "
        "ifconfig -g): group carp carpdemote 128, group carp -carpdemote 128",
    )
    g.add_argument("group", metavar="NAME")
    g.add_argument("change", nargs=argparse.REMAINDER, metavar="[-]carpdemote [N]")


def _service_status(command: Command) -> None:
    command(
        "service-status",
        "run the service checks now and apply the result; exit 4 if one failed or timed out",
    )


def _maintenance(command: Command) -> None:
    m = command("maintenance", "persistent maintenance mode: demote so every vhid goes BACKUP")
    m.add_argument("mode", choices=["on", "off"])


def _down(command: Command) -> None:
    text = "take a vhid out: it bows out like ifconfig carp0 down"
    command("down", text).add_argument("name", metavar="VHID_NAME")


def _up(command: Command) -> None:
    command("up", "bring a vhid taken down back").add_argument("name", metavar="VHID_NAME")


def _state(command: Command) -> None:
    st = command("state", "force a vhid's state, as carp(4)'s state option")
    st.add_argument("name", metavar="VHID_NAME")
    st.add_argument("state", choices=["master", "backup"])


def _reload(command: Command) -> None:
    command(
        "reload",
        "read the configuration file again, as SIGHUP does, and say whether it was taken "
        "and what only a restart applies (exit 5)",
    )


def _events(command: Command) -> None:
    command.sub.add_parser(
        "events",
        help="follow the daemon: one JSON object per line for every transition, demotion, "
        "address and link change and hook or action result, until Ctrl-C",
    )


def _cluster(command: Command) -> None:
    cl = command(
        "cluster",
        "the pair side by side (carpd reads its [[cluster.peer]]s again first): every "
        "node's state of each vhid, the verdict (one MASTER, split brain, none) and what "
        "would happen if this node failed now; exit 4 unless every vhid has one MASTER "
        "and every peer answers",
    )
    cl.add_argument("view", choices=["status"], help="status: the cluster view")


def _doctor(command: Command) -> None:
    command(
        "doctor",
        "look at this node for what breaks a CARP or firewall pair (nftables, sysctls, "
        "bridges, conntrackd, and what the running carpd hears): each finding with what "
        "was seen and the fix; exit 4 if something is wrong. Reads --config's file",
    )


def _web_user(command: Command) -> None:
    wu = command.sub.add_parser(
        "web-user",
        help="print a users_file line for the status page (asks for the password; "
        "no daemon needed)",
        description="Print NAME:scrypt$... for [web] users_file; the password is read "
        "from the terminal (twice), or from stdin's first line when it is not a terminal.",
    )
    wu.add_argument("user", metavar="NAME")
    wu.add_argument(
        "--append",
        metavar="FILE",
        help="append the line to FILE (created mode 0600) instead of printing it",
    )


class Command:
    """Adds a command's parser to carpctl's, with its own --json."""

    def __init__(self, sub: Any) -> None:
        self.sub = sub

    def __call__(self, name: str, help: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = self.sub.add_parser(name, help=help, description=help)
        p.add_argument("--json", action="store_true", dest="json_sub", help="JSON output")
        return p


# In the order `carpctl --help` lists them.
COMMANDS: dict[str, Callable[[Command], None]] = {
    "status": _status,
    "group": _group,
    "service-status": _service_status,
    "maintenance": _maintenance,
    "down": _down,
    "up": _up,
    "state": _state,
    "reload": _reload,
    "events": _events,
    "cluster": _cluster,
    "doctor": _doctor,
    "sync": lambda command: sync_args.add_parser(command.sub),
    "drill": lambda command: drill_cli.add_parser(command.sub),
    "web-user": _web_user,
}
# carpctl's own options that take a value (a command line's command is the word after).
_VALUED = ("--socket", "--config")


def command_word(argv: list[str]) -> str | None:
    """The command a carpctl command line runs, when its parser alone parses it the same
    as the whole parser does: None for ``-h``/``--help`` before it, or none at all."""
    words = iter(argv)
    for word in words:
        if word in ("-h", "--help", "--"):
            return None
        if word.startswith("--") and "=" not in word and any(o.startswith(word) for o in _VALUED):
            next(words, None)  # its value (--socket PATH, or an abbreviation: --sock PATH)
        elif not word.startswith("-"):
            return word
    return None


def make_parser(only: str | None = None) -> argparse.ArgumentParser:
    """carpctl's parser: every command's, or ``only``'s alone when it is one (the one a
    command line runs, ``command_word``: its usage, help and errors are the same)."""
    parser = argparse.ArgumentParser(
        prog="carpctl",
        description="Show and steer a running carpd through its control socket.",
        epilog="Exit codes: 0 success, 1 refused by carpd, 2 usage, 3 carpd not reachable, "
        "4 (service-status) a service check failed, (doctor) a problem found, 5 (reload) "
        "reloaded but part of the "
        "change needs a restart of carpd.",
    )
    parser.add_argument(
        "--socket",
        metavar="PATH",
        help=f"control socket (default: [global] control_socket of --config or ${CONFIG_ENV}, "
        f"else {DEFAULT_SOCKET})",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"find the control socket in this carpd.toml ([global] control_socket, with its "
        f"overlay; no passfile is read); default ${CONFIG_ENV} if set; --socket wins. "
        "carpctl sync reads it too",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    command = Command(parser.add_subparsers(dest="command", metavar="COMMAND"))
    for name, add in COMMANDS.items():
        if only not in COMMANDS or name == only:
            add(command)
    return parser


def web_user(name: str, append: str | None = None) -> int:
    """`carpctl web-user NAME --append /etc/carpd/web-users`: only the hash is written."""
    import getpass

    from carpd.web.auth import hash_password

    if not name or ":" in name or any(c.isspace() for c in name):
        print("carpctl: a user name has no ':' and no spaces", file=sys.stderr)
        return EXIT_USAGE
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {name}: ")
        if getpass.getpass("again: ") != password:
            print("carpctl: the passwords differ", file=sys.stderr)
            return EXIT_USAGE
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        print("carpctl: a password of at least 8 characters, please", file=sys.stderr)
        return EXIT_USAGE
    if append is None:
        print(f"{name}:{hash_password(password)}")
        return EXIT_OK
    from carpd.ctl.users_file import append_user

    return append_user(append, f"{name}:{hash_password(password)}\n")


def doctor(socket_path: str | None, config: str | None, as_json: bool) -> int:
    """`carpctl doctor`: the node's checks, and the running carpd's status if it answers
    (a config that does not load is the doctor's first finding, not a usage error)."""
    from carpd.doctor.run import examine

    named = config_file(config, os.environ)
    path = named[0] if named else sync_args.DEFAULT_CONFIG
    try:
        sock, _ = control_socket(socket_path, path, os.environ)
    except NoConfig:
        sock = socket_path or DEFAULT_SOCKET
    status, why = None, None
    try:
        reply = request(sock, {"command": "status"}, timeout=10.0)
        if reply.get("ok"):
            status = reply["result"]
        else:
            why = f"{sock}: {reply.get('error', 'refused')}"
    except Unreachable as e:
        why = str(e)
    report = examine(path, status, why)
    if as_json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        print(printable(report.text(), "\n\t"))
    return EXIT_CHECK_FAILED if report.problems else EXIT_OK


def drill(args: argparse.Namespace) -> int:
    """`carpctl drill`: the config for the peers and the record, carpd for the rest."""
    named = config_file(args.config, os.environ)
    config = named[0] if named else sync_args.DEFAULT_CONFIG
    try:
        sock, _ = control_socket(args.socket, config, os.environ)
    except NoConfig as e:
        print(f"carpctl: {e}", file=sys.stderr)
        return EXIT_USAGE

    def control(req: dict[str, Any]) -> dict[str, Any]:
        reply = request(sock, req, timeout=60.0)
        if not reply.get("ok"):
            raise RuntimeError(str(reply.get("error", "refused")))
        result: dict[str, Any] = reply["result"]
        return result

    try:
        return drill_cli.main(args, config, control)
    except Unreachable as e:
        print(f"carpctl: drill: cannot reach carpd at {e}", file=sys.stderr)
        return EXIT_UNREACHABLE


def cluster_status(status: dict[str, Any], as_json: bool) -> int:
    """`carpctl cluster status`, from the node's status (its peers just read again)."""
    from carpd.cluster.verdict import build
    from carpd.ctl import cluster

    view = build(status)
    if as_json:
        print(json.dumps(view, indent=2, sort_keys=True))
    else:
        print(printable(cluster.text(view), "\n\t"))
    return cluster.exit_status(view)


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    if args.command == "group":
        return group_request(args.group, args.change)
    if args.command == "maintenance":
        return {"command": "maintenance", "on": args.mode == "on"}
    if args.command in ("up", "down"):
        return {"command": args.command, "name": args.name}
    if args.command == "state":
        return {"command": "state", "name": args.name, "state": args.state}
    return {"command": args.command}


def render(command: str, result: dict[str, Any]) -> str:
    if command == "status":
        return format_status(result)
    if command == "group":
        return f"{result['group']}: carp demote count {result['demote']}"
    if command == "service-status":
        return format_services(result)
    if command == "reload":
        pending = result.get("restart_needed") or []
        return "\n".join(
            [f"reloaded {result['reloaded']}"]
            + [f"not applied until carpd restarts: {what}" for what in pending]
        )
    if command == "maintenance":
        text = f"maintenance mode {'on' if result['maintenance'] else 'off'}"
        return text + (f"\nwarning: {result['warning']}" if result.get("warning") else "")
    return format_vhost(result)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # A reader that stopped early (`carpctl status --json | head`): not our error.
        # Point stdout at /dev/null so the interpreter's final flush does not fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = make_parser(only=command_word(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return EXIT_USAGE if e.code else EXIT_OK
    if args.command is None:
        parser.print_usage(sys.stderr)
        return EXIT_USAGE
    if args.command == "web-user":
        return web_user(args.user, args.append)
    if args.command == "sync":  # pydantic and the config only for this one
        from carpd.sync.cli import main as sync_main

        named = config_file(args.config, os.environ)
        args.config = named[0] if named else sync_args.DEFAULT_CONFIG
        return sync_main(args)
    if args.command == "doctor":
        return doctor(args.socket, args.config, args.json or args.json_sub)
    if args.command == "drill":
        return drill(args)
    try:
        path, source = control_socket(args.socket, args.config, os.environ)
    except NoConfig as e:
        print(f"carpctl: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "events":
        return follow(path)
    as_json = args.json or getattr(args, "json_sub", False)
    try:
        req = build_request(args)
    except Usage as e:
        print(f"carpctl: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "status" and not as_json:
        req["text"] = True  # brief vhids, and the integrations' lines (the JSON keeps all)
    if args.command == "cluster":
        req = {"command": "status", "fresh": True}
    try:
        reply = request(path, req, timeout=120.0)
    except Unreachable as e:
        where = f"[global] control_socket of {source}" if source else "the socket"
        print(
            f"carpctl: cannot reach carpd at {e}\n"
            f"  is carpd running? is {where} carpd's? (--socket PATH, --config FILE)",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    if not reply.get("ok"):
        if as_json:
            print(json.dumps({"ok": False, "error": reply.get("error", "refused")}))
        print(f"carpctl: {printable(reply.get('error', 'refused'))}", file=sys.stderr)
        return EXIT_REFUSED
    result = reply["result"]
    if args.command == "cluster":
        return cluster_status(result, as_json)
    # Names, reasons and hook output in the text come from the config, hooks and peers:
    # no raw terminal escapes (JSON escapes them itself).
    if as_json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(printable(render(args.command, result), "\n\t"))
    if args.command == "service-status" and result.get("failed"):
        return EXIT_CHECK_FAILED
    if args.command == "reload" and result.get("restart_needed"):
        return EXIT_RESTART_NEEDED
    return EXIT_OK
