"""`carpctl web-user NAME --append FILE`: a users_file line appended to a file that only
its owner may read. A shell's `>> FILE` creates the file under the caller's umask (0644
under 022) before carpctl runs, so carpctl could not fix the mode afterwards: it opens
the file itself."""

from __future__ import annotations

import os
import stat
import sys


def append_user(path: str, line: str) -> int:
    """Append ``line`` to ``path``, created 0600 if missing: 0, or 1 if it cannot be
    written. An existing file open to group or others is still appended to (the user
    asked), with a warning."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
            f.write(line)
    except OSError as e:
        print(f"carpctl: {path}: {e.strerror or e}", file=sys.stderr)
        return 1
    if mode & 0o077:
        print(
            f"carpctl: warning: {path} has mode {mode:04o}: others can read the hashes; "
            f"chmod 600 {path}",
            file=sys.stderr,
        )
    return 0
