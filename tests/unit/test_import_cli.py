"""`carpd import` as a program: the exit status (0 all carried over, 1 something not
translated or changed, 2 unreadable or a usage error, nothing on stdout), the carpd.toml
on stdout and the report on stderr, and that `carpd import keepalived` loads neither the
daemon nor carpd's config models."""

from __future__ import annotations

import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

CLEAN = """\
global_defs {
    vrrp_version 3
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    priority 150
    virtual_ipaddress {
        192.0.2.100/24
    }
}
"""


def carpd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carpd", *args], capture_output=True, text=True, timeout=60
    )


def test_everything_carried_over_is_status_0(tmp_path: Path) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text(CLEAN)
    done = carpd("import", "keepalived", str(conf))
    assert done.returncode == 0, done.stderr
    assert tomllib.loads(done.stdout)["carp"][0]["priority"] == 150
    assert done.stderr == "carpd import: nothing to report: everything was carried over\n"


def test_something_left_out_is_status_1_and_the_toml_is_still_written(tmp_path: Path) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text(CLEAN + "virtual_server 192.0.2.100 80 {\n    lb_algo rr\n}\n")
    done = carpd("import", "keepalived", str(conf))
    assert done.returncode == 1
    assert tomllib.loads(done.stdout)["carp"][0]["name"] == "VI_1"
    assert "keepalived.conf:12: virtual_server 192.0.2.100: LVS load balancing" in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("import", "keepalived", "/nonexistent/keepalived.conf"),
        ("import", "ucarp-interfaces", "/nonexistent/interfaces"),
        ("import", "keepalived"),
        ("import", "heartbeat", "ha.cf"),
        ("import", "keepalived", "--to", "vrrp2", "x"),
    ],
)
def test_unreadable_or_a_usage_error_is_status_2_with_nothing_on_stdout(
    args: tuple[str, ...],
) -> None:
    done = carpd(*args)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr


def test_the_parse_error_names_the_file_and_line(tmp_path: Path) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text('vrrp_instance VI_1 {\n    notify_master "/bin/true\n}\n')
    done = carpd("import", "keepalived", str(conf))
    assert (done.returncode, done.stdout) == (2, "")
    assert f"{conf}:2: unterminated quote" in done.stderr


def test_import_keepalived_loads_neither_the_daemon_nor_the_config_models(tmp_path: Path) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text(CLEAN)
    code = (
        "import sys, io, contextlib\n"
        "from carpd.daemon.service.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['import', 'keepalived', {str(conf)!r}]) == 0\n"
        "print(sorted(m for m in sys.modules if m.startswith(('carpd.config', 'pydantic', "
        "'carpd.daemon.service.serve', 'asyncio', 'pyroute2'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout == "[]\n"


def test_help_lists_both_sources() -> None:
    done = carpd("import", "--help")
    assert done.returncode == 0
    assert "keepalived" in done.stdout and "ucarp-interfaces" in done.stdout


def test_host_lines_are_read_for_the_node_named(tmp_path: Path) -> None:
    """@ID lines as keepalived -i ID reads them; by default as on this host."""
    conf = tmp_path / "keepalived.conf"
    conf.write_text(CLEAN.replace("    priority 150\n", "@lb1 priority 150\n@lb2 priority 100\n"))
    for host, priority in (("lb1", 150), ("lb2", 100)):
        done = carpd("import", "keepalived", "--host", host, str(conf))
        assert tomllib.loads(done.stdout)["carp"][0]["priority"] == priority, done.stderr
    here = socket.gethostname().split(".")[0]
    conf.write_text(CLEAN.replace("    priority 150\n", f"@{here} priority 120\n"))
    assert (
        tomllib.loads(carpd("import", "keepalived", str(conf)).stdout)["carp"][0]["priority"] == 120
    )
