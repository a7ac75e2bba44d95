"""Lab tests: real namespaces, veth pairs, raw sockets, real-time scheduling and peers.
Every one of them is marked ``lab`` and needs root, even one that takes no lab (it may
need a capability: SCHED_FIFO's CAP_SYS_NICE).

A run that cannot do them skips them with the reason; in CI any skip fails the run
(tests/conftest.py).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from carpd_lab.netlab import Lab

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.lab)


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces, raw sockets and SCHED_FIFO")


@pytest.fixture
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2 (ip netns exec)")
    with Lab(request.node.name[:6].strip("_").replace("_", "")) as lab:
        yield lab


@pytest.fixture
def ucarp_bin() -> str:
    path = shutil.which("ucarp") or "/usr/sbin/ucarp"
    if not os.path.exists(path):
        pytest.skip("needs the Debian package ucarp")
    return path
