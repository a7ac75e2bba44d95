"""The README gets to the point, and no link in the documentation leads nowhere.

The README opens with the two commands (the demo and the test suite), stays short, and
links every page of docs/; every relative link in README.md and docs/*.md names a file
that exists, and a heading that exists where it has a #anchor (GitHub's anchors).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 300

THE_TWO_COMMANDS = [
    "```sh",
    "sudo ./scripts/demo    # set up and run the demo: two carpd nodes elect a master"
    " and fail over",
    "sudo ./scripts/test    # set up and run the whole test suite (lint, types, unit, lab,"
    " ucarp interop)",
    "```",
]

# [text](target) and ![alt](target); the target ends at whitespace or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"`+[^`]*`+")


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    out = []
    fence = None
    for n, line in enumerate(text.splitlines(), 1):
        marker = re.match(r"\s*(```+|~~~+)", line)
        if marker:
            if fence is None:
                fence = marker.group(1)[0]
            elif marker.group(1)[0] == fence:
                fence = None
            continue
        if fence is None:
            out.append((n, line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation gone, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())  # a link's text only
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, line in prose_lines(path.read_text()):
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def relative_links(path: Path) -> list[tuple[int, str]]:
    links = []
    for n, line in prose_lines(path.read_text()):
        for target in LINK.findall(CODE_SPAN.sub("", line)):
            if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:, ...
                continue
            links.append((n, target))
    return links


def test_the_readme_opens_with_the_demo_and_the_test_suite() -> None:
    lines = README.read_text().splitlines()
    assert lines[0].startswith("# "), "the README starts with its title"
    body = [line for line in lines[1:] if line.strip()]
    assert body[: len(THE_TWO_COMMANDS)] == THE_TWO_COMMANDS


def test_the_readme_is_short() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) < MAX_README_LINES, (
        f"README.md has {len(lines)} lines: the reference belongs in docs/"
    )


def test_the_readme_links_every_page_of_the_docs() -> None:
    linked = {
        (README.parent / target.split("#")[0]).resolve() for _, target in relative_links(README)
    }
    missing = [p.name for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked]
    assert not missing, f"docs pages the README does not link: {missing}"


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_somewhere(page: Path) -> None:
    broken = []
    for n, target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        where = f"{page.relative_to(ROOT)}:{n}: {target}"
        if not dest.exists():
            broken.append(f"{where}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{where}: no heading #{anchor} in {dest.name}")
    assert not broken, "\n".join(broken)


def test_github_anchors() -> None:
    assert slug("Demotion: why a node is (not) MASTER") == "demotion-why-a-node-is-not-master"
    assert (
        slug("Balancing: one address, several nodes (`[[pool]]`)")
        == "balancing-one-address-several-nodes-pool"
    )
    assert slug("Under a flood: the known peers' adverts come first") == (
        "under-a-flood-the-known-peers-adverts-come-first"
    )
    assert slug("10 ms adverts") == "10-ms-adverts"
