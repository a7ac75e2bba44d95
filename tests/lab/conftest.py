"""Lab tests: real namespaces, veth pairs, raw sockets and peers. They need root.

Outside CI a non-root run skips them with the reason; in CI (CI=true) a skip would hide
that nothing was tested, so it is turned into a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from carpd_lab.netlab import Lab


def _need(condition: bool, why: str) -> None:
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"lab test cannot run in CI: {why}")
    pytest.skip(why)


@pytest.fixture
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    _need(os.geteuid() == 0, "needs root for network namespaces and raw sockets")
    _need(shutil.which("ip") is not None, "needs iproute2 (ip netns exec)")
    with Lab(request.node.name[:6].strip("_").replace("_", "")) as lab:
        yield lab


@pytest.fixture
def ucarp_bin() -> str:
    path = shutil.which("ucarp") or "/usr/sbin/ucarp"
    _need(os.path.exists(path), "needs the Debian package ucarp")
    return path
