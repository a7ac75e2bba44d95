"""`carpctl drill`'s arguments and its run: the config (for [cluster], [sync] and
state_dir), this node's carpd over the control socket, the report where it goes."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

# typing.TYPE_CHECKING without loading typing: carpctl's commands never need it at run
# time, and loading it is 4 ms of `carpctl status`'s start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_REFUSED = 0, 1, 2, 3, 4


def add_parser(sub: Any) -> None:
    d = sub.add_parser(
        "drill",
        help="a rehearsed failover: check the peer, hand the vhids over, verify, hold, "
        "hand back, verify; roll back on a failure; report every step",
        description="A rehearsed failover with the [[cluster.peer]]. Exit codes: 0 passed, "
        "1 failed (rolled back), 2 usage, 3 carpd not reachable, 4 refused (a check "
        "before the drill failed: nothing changed).",
    )
    d.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE",
                   help="carpd's config file (as carpctl --config)")  # fmt: skip
    d.add_argument("--json", action="store_true", dest="json_sub", help="the report as JSON")
    d.add_argument("--last", action="store_true", help="show the last drill's report")
    d.add_argument("--vhid", action="append", default=[], metavar="NAME",
                   help="only this vhid (taken down and up); repeatable")  # fmt: skip
    d.add_argument("--group", metavar="NAME", help="only the vhids of this group")
    d.add_argument("--peer", metavar="NAME", help="the [[cluster.peer]] (with several)")
    d.add_argument("--hold", type=float, default=10.0, metavar="SECONDS",
                   help="how long the peer holds the role (default 10)")  # fmt: skip
    d.add_argument("--stay", action="store_true", help="leave the peer MASTER")
    d.add_argument("--check", action="append", default=[], metavar="CMD",
                   help="a command run here while the peer is MASTER (sh -c); exit 0 "
                   "passes, else roll back; repeatable")  # fmt: skip
    d.add_argument("--peer-check", action="append", default=[], metavar="CMD",
                   help="the same, run on the peer over [sync]'s ssh")  # fmt: skip
    d.add_argument("--probe", metavar="CMD",
                   help="run every 0.2 s for the whole drill, and after it until it "
                   "passes once (at most 3 s; sh -c); the longest time it failed in a row "
                   "is reported as the client-visible outage")  # fmt: skip
    d.add_argument("-m", "--message", help="why: for both nodes' journals")


def main(
    args: argparse.Namespace,
    config_path: str,
    control: Callable[[dict[str, Any]], dict[str, Any]],
) -> int:
    from carpd.config import ConfigError, load_config
    from carpd.ctl import drill
    from carpd.sync.printable import printable

    try:
        config = load_config(config_path)
    except ConfigError as e:
        print(f"carpctl: {printable(e)}", file=sys.stderr)
        return EXIT_USAGE
    state_dir = config.global_.state_dir
    as_json = args.json or args.json_sub
    if args.last:
        last = drill.load(state_dir)
        if last is None:
            print("carpctl: drill: no drill has run on this node", file=sys.stderr)
            return EXIT_FAILED
        print(json.dumps(last, indent=2, sort_keys=True) if as_json
              else printable(drill.text(last), "\n\t"))  # fmt: skip
        return EXIT_OK if last["result"] == "passed" else EXIT_FAILED
    opts = drill.Options(
        vhids=tuple(args.vhid), group=args.group, peer=args.peer, hold=args.hold,
        stay=args.stay, checks=tuple(args.check), peer_checks=tuple(args.peer_check),
        probe=args.probe, message=args.message,
    )  # fmt: skip

    def status() -> dict[str, Any]:
        return control({"command": "status", "fresh": True})

    try:
        with drill.exclusive(state_dir):
            report = drill.Drill(config, status, control, opts).run()
    except drill.Refusal as e:  # another drill
        print(f"carpctl: drill refused: {printable(e)}", file=sys.stderr)
        return EXIT_REFUSED
    record(config, report, control)
    print(json.dumps(report, indent=2, sort_keys=True) if as_json
          else printable(drill.text(report), "\n\t"))  # fmt: skip
    return {"passed": EXIT_OK, "refused": EXIT_REFUSED}.get(report["result"], EXIT_FAILED)


def record(config: Any, report: dict[str, Any], control: Callable[[dict[str, Any]], Any]) -> None:
    """The report to state_dir (for --last and the metrics), to this node's and the
    peer's sync journals, and to carpd (the event stream). A place that cannot take it
    is said on stderr; the others still get it."""
    from carpd.ctl import drill
    from carpd.sync.journal import Journal, now, user
    from carpd.sync.printable import printable

    state_dir = config.global_.state_dir
    entry = {
        "user": user(),
        "from": report["node"],
        "to": report["peer"],
        "explanation": report["message"] or "carpctl drill",
        "drill": {k: report[k] for k in ("result", "why", "scope", "steps", "probe")},
    }
    problems = []
    try:
        drill.save(state_dir, report)
        Journal(state_dir).append({**entry, "at": now(), "result": f"drill {report['result']}"})
    except OSError as e:
        problems.append(f"this node's state_dir: {e}")
    if config.sync.peer is not None:
        from carpd.sync.cli import Sync
        from carpd.sync.peer import PeerError

        try:
            with Sync(config).peer() as peer:
                peer.call({"op": "record", "record": entry})
        except PeerError as e:
            problems.append(f"the peer's journal: {e}")
    else:
        problems.append("the peer's journal: not written ([sync] peer is not set)")
    try:
        control({"command": "drill-done", "result": report["result"],
                 "summary": drill.summary(report)})  # fmt: skip
    except Exception as e:  # carpd gone meanwhile: the report is saved all the same
        problems.append(f"carpd's event stream: {e}")
    for p in problems:
        print(f"carpctl: drill: {printable(p)}", file=sys.stderr)
