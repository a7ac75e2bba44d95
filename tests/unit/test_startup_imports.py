"""Start-up imports only what the mode needs (each case runs in a fresh interpreter and
checks its sys.modules afterwards, never the time it took), and main leaves garbage
collection as it found it."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from carpd.daemon.service.main import main

RUNTIME = {"asyncio", "pyroute2"}  # what only running the daemon may load
CONFIG = {"pydantic", "carpd.config.model"}
GOOD = '[[carp]]\nvhid = 1\ncarpdev = "eth0"\npass = "secret"\naddresses = ["192.0.2.100/24"]\n'


def modules_after(code: str) -> set[str]:
    """Run ``code`` in a fresh interpreter; the names in its sys.modules afterwards."""
    script = textwrap.dedent(code) + "\nimport sys\nprint('MODULES', *sorted(sys.modules))\n"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return set(out.rsplit("MODULES ", 1)[1].split())


def after_main(*argv: str) -> set[str]:
    return modules_after(f"from carpd.daemon.service.main import main\nrc = main({list(argv)!r})\n")


def test_version_loads_neither_the_runtime_nor_the_config() -> None:
    assert not (RUNTIME | CONFIG) & after_main("--version")


def test_help_does_not_load_the_runtime() -> None:
    assert not RUNTIME & after_main("--help")


def test_check_loads_the_config_but_not_the_runtime(tmp_path: Path) -> None:
    path = tmp_path / "carpd.toml"
    path.write_text(GOOD)
    loaded = after_main("--config", str(path), "--check")
    assert loaded >= CONFIG
    assert not RUNTIME & loaded


def test_the_daemon_loads_pyroute2_rtnetlink_without_ndb_and_ipdb() -> None:
    loaded = modules_after("import carpd.daemon.service.serve")
    assert {"asyncio", "pyroute2.iproute.linux", "pyroute2.netlink.rtnl"} <= loaded
    assert not {"pyroute2.ndb", "pyroute2.ipdb", "pyroute2.ethtool"} & loaded


def test_the_daemon_loads_no_extra_unless_its_config_asks() -> None:
    """The status page's and ifstated's libraries are extras (carpd[web], carpd[ifstated]):
    a daemon without [web] or an [ifstated] file runs without them."""
    loaded = modules_after("import carpd.daemon.service.serve")
    assert not {"aiohttp", "prometheus_client", "lark"} & loaded


@pytest.mark.parametrize("pyroute2_first", [False, True])
def test_pyroute2_stays_whole_for_the_rest_of_the_process(pyroute2_first: bool) -> None:
    """After carpd.linux.rtnl, ``from pyroute2 import ...`` still gives everything, the
    same classes carpd uses; and a pyroute2 imported before it is left alone."""
    code = f"""
        if {pyroute2_first}:
            import pyroute2
        from carpd.linux import rtnl
        from pyroute2 import NDB, AsyncIPRoute, NetlinkError, NetNS, netns
        import pyroute2
        assert AsyncIPRoute is rtnl.AsyncIPRoute and NetlinkError is rtnl.NetlinkError
        assert NetNS in pyroute2.__all__ and NDB in pyroute2.__all__ and callable(netns.create)
        assert "__getattr__" not in vars(pyroute2)
    """
    assert "pyroute2.ndb" in modules_after(code)


def test_main_leaves_garbage_collection_as_it_found_it(tmp_path: Path) -> None:
    """Start-up runs without cyclic collection; whatever main returns, it is back on."""
    path = tmp_path / "carpd.toml"
    path.write_text(GOOD)
    assert gc.isenabled()
    assert main(["--config", str(path), "--check"]) == 0
    assert gc.isenabled()
    assert main(["--config", str(tmp_path / "missing.toml")]) == 2
    assert gc.isenabled()


def after_carpctl(*argv: str) -> set[str]:
    return modules_after(f"from carpd.ctl.main import main\nrc = main({list(argv)!r})\n")


def test_carpctl_loads_the_config_only_when_one_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """carpctl with --socket (or the default) starts without pydantic; --config or
    $CARPD_CONFIG reads [global] with carpd's loader, never the daemon's runtime."""
    monkeypatch.delenv("CARPD_CONFIG", raising=False)
    path = tmp_path / "carpd.toml"
    path.write_text(f'[global]\ncontrol_socket = "{tmp_path / "carpd.sock"}"\n{GOOD}')
    assert not (RUNTIME | CONFIG) & after_carpctl("--socket", str(tmp_path / "no.sock"), "status")
    loaded = after_carpctl("--config", str(path), "status")
    assert "carpd.config.load" in loaded and not RUNTIME & loaded
    monkeypatch.setenv("CARPD_CONFIG", str(path))
    loaded = after_carpctl("status")
    assert "carpd.config.load" in loaded and not RUNTIME & loaded
