"""The libraries carpd admits exclude releases with known holes in the surfaces it uses."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"

# library -> (a vulnerable release the floor must exclude, why). Add one per advisory.
KNOWN_BAD = {
    # Request smuggling in the pure-Python HTTP parser, which the status page can use.
    "aiohttp": ("3.12.13", "CVE-2025-53643"),
}


def declared() -> dict[str, Requirement]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines += [line for line in extra if not line.startswith("carpd[")]
    return {(r := Requirement(line)).name: r for line in lines}


@pytest.mark.parametrize("library", sorted(KNOWN_BAD))
def test_the_declared_range_excludes_known_vulnerable_releases(library: str) -> None:
    bad, advisory = KNOWN_BAD[library]
    requirement = declared()[library]
    assert not requirement.specifier.contains(bad), f"{requirement} admits {bad} ({advisory})"


@pytest.mark.parametrize("library", sorted(KNOWN_BAD))
def test_the_installed_release_is_past_the_advisory(library: str) -> None:
    bad, advisory = KNOWN_BAD[library]
    assert Version(version(library)) > Version(bad), advisory
