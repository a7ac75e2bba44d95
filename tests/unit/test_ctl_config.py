"""carpctl finds the control socket from carpd.toml: --socket, then --config, then
$CARPD_CONFIG, then the default; a config that does not load exits 2 naming it."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from carpd.ctl import socketpath
from carpd.ctl.main import EXIT_UNREACHABLE, EXIT_USAGE
from carpd.ctl.main import main as carpctl

CARP = '[[carp]]\nvhid = 1\ncarpdev = "eth0"\npass = "s3cret-pw"\naddresses = ["192.0.2.100/24"]\n'


class FakeCarpd:
    """A control socket that answers every request with an empty status and keeps what
    it was asked."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.asked: list[dict[str, object]] = []
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(path))
        self.server.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                self.asked.append(json.loads(conn.makefile("rb").readline()))
                conn.sendall(b'{"ok": true, "result": {"vhosts": []}}\n')

    def close(self) -> None:
        self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        self.thread.join(timeout=5)


@pytest.fixture
def carpds(tmp_path: Path) -> Iterator[dict[str, FakeCarpd]]:
    made = {name: FakeCarpd(tmp_path / f"{name}.sock") for name in ("a", "b", "c")}
    yield made
    for fake in made.values():
        fake.close()


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(socketpath.CONFIG_ENV, raising=False)


def config(tmp_path: Path, name: str, global_: str) -> Path:
    path = tmp_path / name
    path.write_text(f"[global]\n{global_}\n{CARP}")
    return path


def asked(carpds: dict[str, FakeCarpd]) -> list[str]:
    return [name for name, fake in carpds.items() if fake.asked]


def test_precedence_socket_then_config_then_env_then_default(
    tmp_path: Path, carpds: dict[str, FakeCarpd], monkeypatch: pytest.MonkeyPatch
) -> None:
    a = config(tmp_path, "a.toml", f'control_socket = "{carpds["a"].path}"')
    b = config(tmp_path, "b.toml", f'control_socket = "{carpds["b"].path}"')
    assert carpctl(["--config", str(a), "status"]) == 0
    assert asked(carpds) == ["a"]
    monkeypatch.setenv(socketpath.CONFIG_ENV, str(b))
    assert carpctl(["status"]) == 0
    assert asked(carpds) == ["a", "b"]
    carpds["b"].asked.clear()
    assert carpctl(["--config", str(a), "status"]) == 0  # --config before the environment
    assert asked(carpds) == ["a"]
    carpds["a"].asked.clear()
    assert carpctl(["--socket", str(carpds["c"].path), "--config", str(a), "status"]) == 0
    assert asked(carpds) == ["c"]
    monkeypatch.delenv(socketpath.CONFIG_ENV)
    assert socketpath.control_socket(None, None, {}) == (socketpath.DEFAULT_SOCKET, None)


def test_socket_wins_without_reading_the_config(
    tmp_path: Path, carpds: dict[str, FakeCarpd], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(socketpath.CONFIG_ENV, str(tmp_path / "missing.toml"))
    assert carpctl(["--socket", str(carpds["c"].path), "status"]) == 0
    assert asked(carpds) == ["c"]


def test_a_relative_socket_and_the_overlay_are_carpds_own(
    tmp_path: Path, carpds: dict[str, FakeCarpd], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative to the file's directory, not carpctl's; the node's overlay wins."""
    shared = config(tmp_path, "carpd.toml", 'control_socket = "a.sock"')
    monkeypatch.chdir("/")
    assert carpctl(["--config", str(shared), "status"]) == 0
    assert asked(carpds) == ["a"]
    (tmp_path / "node.toml").write_text('[global]\ncontrol_socket = "b.sock"\n')
    shared.write_text(shared.read_text().replace("[global]\n", '[global]\noverlay = "node.toml"\n'))
    assert carpctl(["--config", str(shared), "status"]) == 0
    assert carpds["b"].asked


def test_no_passfile_or_credential_is_read(
    tmp_path: Path, carpds: dict[str, FakeCarpd], monkeypatch: pytest.MonkeyPatch
) -> None:
    """carpctl's user may not read carpd's secrets (a root-only passfile, systemd's
    credentials directory): the socket is found all the same."""
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    path = tmp_path / "carpd.toml"
    credential = CARP.replace('pass = "s3cret-pw"', 'passfile = "%d/carp-lan"')
    path.write_text(
        f'[global]\ncontrol_socket = "{carpds["a"].path}"\n{credential}'
        '[[carp]]\nvhid = 2\ncarpdev = "eth0"\npassfile = "/nonexistent/pass"\n'
        'addresses = ["192.0.2.101/24"]\n'
    )
    assert carpctl(["--config", str(path), "status"]) == 0
    assert asked(carpds) == ["a"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, "no such file"),
        ("[global\n", "line 1, column 8: TOML syntax error"),
        ("[global]\ncontrol_socket = 7\n", "global.control_socket = 7: must be a path string"),
        ('[global]\ncontrol_socket = ""\n', "global.control_socket"),
        ('[global]\noverlay = "missing.toml"\n', "cannot read the overlay"),
        ("global = 1\n", "global = 1: must be a table"),
    ],
)
@pytest.mark.parametrize("how", ["--config", "$CARPD_CONFIG"])
def test_a_config_that_does_not_load_exits_2_naming_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    text: str | None,
    expected: str,
    how: str,
) -> None:
    path = tmp_path / "carpd.toml"
    if text is not None:
        path.write_text(text)
    argv = ["status"]
    if how == "--config":
        argv = ["--config", str(path), *argv]
    else:
        monkeypatch.setenv(socketpath.CONFIG_ENV, str(path))
    assert carpctl(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"carpctl: {how}") and str(path) in err and expected in err


def test_a_file_that_is_not_a_config_is_not_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """$CARPD_CONFIG pointed at a file of secrets: refused, and none of it printed."""
    shadow = tmp_path / "shadow"
    shadow.write_text("root:$6$Hunter2saltHASH:19000:0:99999:7:::\n")
    monkeypatch.setenv(socketpath.CONFIG_ENV, str(shadow))
    assert carpctl(["status"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert str(shadow) in err and "Hunter2" not in err and "root:" not in err


def test_unreachable_names_the_config_the_socket_came_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, "carpd.toml", 'control_socket = "gone.sock"')
    assert carpctl(["--config", str(path), "status"]) == EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert str(tmp_path / "gone.sock") in err
    assert f"[global] control_socket of {path}" in err


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["sync", "status"], None, "/etc/carpd/carpd.toml"),
        (["sync", "status"], "env.toml", "env.toml"),
        (["--config", "top.toml", "sync", "status"], "env.toml", "top.toml"),
        (["sync", "--config", "sub.toml", "status"], "env.toml", "sub.toml"),
    ],
)
def test_sync_reads_the_same_config(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], env: str | None, expected: str
) -> None:
    import carpd.sync.cli

    seen: list[str] = []
    monkeypatch.setattr(carpd.sync.cli, "main", lambda args: seen.append(args.config) or 0)
    if env is not None:
        monkeypatch.setenv(socketpath.CONFIG_ENV, env)
    assert carpctl(argv) == 0
    assert seen == [expected]
