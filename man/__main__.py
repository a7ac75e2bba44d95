"""python -m man OUTDIR: write carpd.8, carpctl.8 and carpd.toml.5 into OUTDIR."""

from __future__ import annotations

import sys
from pathlib import Path

from man.pages import PAGES


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: scripts/manpages OUTDIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for name, build in PAGES.items():
        (out / name).write_text(build())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
