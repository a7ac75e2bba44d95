"""The wheel and sdist `python -m build` makes: the product only, with its metadata, and a
wheel that installs into an empty virtual environment and checks the example config."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "carpd.toml"
# Building needs setuptools in an isolated environment, installing needs pydantic and
# pyroute2: both from the package index. Only a wait's limit.
PIP_LIMIT = 300


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=PIP_LIMIT,
    )
    return out


def wheel_of(dist: Path) -> Path:
    (wheel,) = dist.glob("carpd-*.whl")
    return wheel


def test_the_wheel_holds_only_the_product(dist: Path) -> None:
    names = zipfile.ZipFile(wheel_of(dist)).namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert tops == {"carpd", f"{wheel_of(dist).name.split('-')[0]}-{version()}.dist-info"}
    # The status page's template ships with the code that serves it.
    assert "carpd/web/page.html" in names
    assert not [n for n in names if "lab" in n.split("/")[:-1] or "test" in n.split("/")[0]]


def version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def test_the_metadata_requires_only_what_the_daemon_always_imports(dist: Path) -> None:
    wheel = wheel_of(dist)
    meta_name = f"carpd-{version()}.dist-info/METADATA"
    meta = Parser().parsestr(zipfile.ZipFile(wheel).read(meta_name).decode())
    assert meta["Name"] == "carpd" and meta["Version"] == version()
    assert meta["License-Expression"] == "ISC"
    assert meta["Requires-Python"] == ">=3.11"
    requires = [Requirement(r) for r in meta.get_all("Requires-Dist")]
    required = {r.name for r in requires if r.marker is None}
    assert required == {"pyroute2", "pydantic"}
    assert {"web", "ifstated"} <= set(meta.get_all("Provides-Extra"))
    # The sdist is built from the same tree (python -m build makes the wheel from it).
    assert list(dist.glob(f"carpd-{version()}.tar.gz"))


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An empty virtual environment with the wheel installed, no extra."""
    where = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=PIP_LIMIT)
    subprocess.run(
        [str(where / "bin" / "pip"), "install", "-q", str(wheel_of(dist))],
        check=True,
        capture_output=True,
        timeout=PIP_LIMIT,
    )
    yield where


def carpd(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Run from / so that nothing of the checkout can be imported instead of the wheel.
    return subprocess.run(
        [str(venv / "bin" / "carpd"), *args], capture_output=True, text=True, cwd="/", timeout=60
    )


def test_the_wheel_installs_into_an_empty_venv_and_checks_the_example(venv: Path) -> None:
    # The example's carpdevs and hooks are no machine's: checked as a file for another node.
    result = carpd(venv, "--config", str(EXAMPLE), "--check", "--other-node")
    assert result.returncode == 0, result.stderr
    assert (
        "configuration OK (3 vhid(s)), as a file for another node (this node not checked)"
        in result.stdout
    )
    assert carpd(venv, "--version").stdout.strip() == f"carpd {version()}"
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import carpd; print(carpd.__file__)"],
        capture_output=True,
        text=True,
        cwd="/",
        check=True,
    ).stdout
    assert where.startswith(str(venv))


@pytest.mark.parametrize(
    ("table", "extra"),
    [("[web]\nenabled = true\n", "web"), ('[ifstated]\nfile = "ifstated.conf"\n', "ifstated")],
)
def test_a_feature_without_its_extra_is_refused_naming_the_extra(
    venv: Path, tmp_path: Path, table: str, extra: str
) -> None:
    (tmp_path / "ifstated.conf").write_text("init-state one\nstate one {\n}\n")
    config = tmp_path / "carpd.toml"
    config.write_text(EXAMPLE.read_text() + "\n" + table)
    result = carpd(venv, "--config", str(config), "--check")
    assert result.returncode == 2, result.stderr
    assert f"pip install 'carpd[{extra}]'" in result.stderr
    assert "Traceback" not in result.stderr
