"""`carpctl sync`'s arguments (the commands themselves are carpd.sync, imported only
when they run: carpctl's other commands never load the config's models)."""

from __future__ import annotations

import argparse

# typing.TYPE_CHECKING without loading typing: carpctl's commands never need it at run
# time, and loading it is 4 ms of `carpctl status`'s start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_CONFIG = "/etc/carpd/carpd.toml"


def add_parser(sub: Any) -> None:
    sync = sub.add_parser(
        "sync",
        help="keep files the same on the peer over ssh: status, diff, push, log, rollback",
        description="Keep the files of [sync] the same on the peer (the system's OpenSSH). "
        "Exit codes: 0 in sync or done, 1 files differ or the push was refused, 2 usage, "
        "3 the peer is unreachable.",
    )
    # Not defaulted here: carpctl's own --config (before sync) must not be overwritten.
    sync.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help=f"carpd's config file (as carpctl --config; default $CARPD_CONFIG, else "
        f"{DEFAULT_CONFIG})",
    )
    cmds = sync.add_subparsers(dest="sync_command", metavar="SYNC_COMMAND", required=True)
    cmds.add_parser("status", help="which files differ from the peer (exit 1 if any)")
    d = cmds.add_parser("diff", help="a unified diff, the peer's version against this node's")
    d.add_argument("files", nargs="*", metavar="FILE")
    p = cmds.add_parser("push", help="show the diff, ask why, replace the peer's files")
    p.add_argument("files", nargs="*", metavar="FILE")
    p.add_argument("-m", "--message", help="the explanation for the journal")
    cmds.add_parser("log", help="this node's sync journal")
    r = cmds.add_parser("rollback", help="put back the version a push replaced on the peer")
    r.add_argument("file", metavar="FILE")
    r.add_argument("-m", "--message", help="the explanation for the journal")
    cmds.add_parser("serve", help="the peer's end of a sync (run by ssh)")
