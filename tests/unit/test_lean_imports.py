"""What a process loads is what its job needs (issue 32: start-up time and memory).

`carpctl status` loads neither the daemon nor pydantic nor asyncio; a daemon with one
plain vhid loads no integration its config does not use (conntrackd's, the pools', the
routes', the followers', the actions', the status page, ifstated, trackers' libraries,
sync, the importer, doctor); carpd's config is validated by pydantic without pydantic's
plugin look-up (importlib.metadata). Each is checked in a fresh interpreter, by its
``sys.modules`` after the work is done.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeNetlink, FakePorts, install, takeover
from fakes import config as carp_config

from carpd.daemon.registry import Needs, effects_for
from carpd.daemon.runtime.runtime import Daemon
from carpd.daemon.seam.view import to_json

ROOT = Path(__file__).parents[2]
VHID = 'vhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n'

# The end of each child script: the loaded modules under these names, as JSON on stderr.
REPORT = """
import json, sys
names = {names!r}
loaded = sorted(m for m in sys.modules if any(m == n or m.startswith(n + ".") for n in names))
print(json.dumps(loaded), file=sys.stderr)
"""


def run_child(
    script: str, names: list[str], cwd: Path, *, site: bool = True
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``script`` in a fresh interpreter (carpd and tests/unit importable; without
    ``site``, nothing else: what the venv's start-up files load is not counted); the
    process and which of ``names`` (modules, with their submodules) it had loaded."""
    code = f"import sys\nsys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'tests' / 'unit')!r}]\n"
    code += script + REPORT.format(names=names)
    flags = [] if site else ["-S"]
    proc = subprocess.run(
        [sys.executable, *flags, "-c", code], capture_output=True, text=True, timeout=60, cwd=cwd
    )
    assert proc.stderr.strip(), f"the child died: {proc}"
    return proc, json.loads(proc.stderr.strip().splitlines()[-1])


# typing and pathlib too: 4 and 3.5 ms of an installed carpctl's start (the dev venv's
# editable-install finder loads pathlib itself, hence -S).
CTL_NEVER = [
    "typing",
    "pathlib",
    "pydantic",
    "pydantic_core",
    "asyncio",
    "ssl",
    "importlib.metadata",
    "carpd.config",
    "carpd.daemon",
    "carpd.linux",
    "carpd.web",
    "carpd.cluster",
    "carpd.doctor",
    "aiohttp",
]

# A carpd answering one `status` with the reply in reply.json, then carpctl status.
CTL_SCRIPT = """
import os, socket, threading
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind("ctl.sock")
server.listen(1)

def answer():
    conn, _ = server.accept()
    with conn:
        conn.makefile("rb").readline()
        conn.sendall(open("reply.json", "rb").read() + b"\\n")

threading.Thread(target=answer, daemon=True).start()
from carpd.ctl.main import main
rc = main(["--socket", "ctl.sock", "status"])
sys.stdout.flush()
assert rc == 0, rc
"""


def test_carpctl_status_loads_neither_the_daemon_nor_pydantic_nor_asyncio(tmp_path: Path) -> None:
    """The daemon's real status reply (one vhid, MASTER), printed by `carpctl status` in
    a fresh interpreter: the answer is there, and none of the daemon's libraries are."""
    install()
    daemon = Daemon(carp_config(tmp_path, VHID), FakePorts(FakeNetlink()))
    takeover(daemon, 0.0)
    reply = {"ok": True, "result": to_json(daemon.view(), text=True)}
    (tmp_path / "reply.json").write_text(json.dumps(reply))
    proc, loaded = run_child(CTL_SCRIPT, CTL_NEVER, tmp_path, site=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("carp1: MASTER carpdev eth0 vhid 1")
    assert loaded == []


DAEMON_NEVER = [
    "carpd.daemon.effects.conntrack",
    "carpd.daemon.effects.pool",
    "carpd.daemon.effects.route",
    "carpd.daemon.effects.follow",
    "carpd.daemon.effects.actions",
    "carpd.linux.conntrackd",
    "carpd.web",
    "aiohttp",
    "prometheus_client",
    "carpd.ifstated",
    "lark",
    "icmplib",
    "dns",
    "carpd.sync",
    "carpd.importer",
    "carpd.doctor",
    "importlib.metadata",
]

# The daemon's entry point and the runtime with one plain vhid, started and MASTER.
DAEMON_SCRIPT = """
import carpd.daemon.service.serve
from fakes import FakeNetlink, FakePorts, install, takeover, config
from carpd.core.model import State
from carpd.daemon.runtime.runtime import Daemon
from pathlib import Path
install()
cfg = config(Path("."), 'vhid = 1\\npass = "x"\\naddresses = ["192.0.2.100/24"]\\n')
daemon = Daemon(cfg, FakePorts(FakeNetlink()))
takeover(daemon, 0.0)
print(daemon.view().vhid("carp1").state.name)
"""


def test_a_daemon_with_one_plain_vhid_loads_no_integration_it_does_not_use(
    tmp_path: Path,
) -> None:
    proc, loaded = run_child(DAEMON_SCRIPT, DAEMON_NEVER, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["MASTER"]
    assert loaded == []


CONFIG_SCRIPT = """
from carpd.config import ConfigError, load_config
open("bad.toml", "w").write('[[carp]]\\nvhid = 256\\ncarpdev = "eth0"\\npass = "x"\\n')
try:
    load_config("bad.toml")
except ConfigError as e:
    print(e)
"""


def test_the_config_is_validated_by_pydantic_without_its_plugin_look_up(
    tmp_path: Path,
) -> None:
    """An out-of-range vhid is still refused by the models, and importlib.metadata (what
    pydantic's plugin look-up loads) never is."""
    proc, loaded = run_child(CONFIG_SCRIPT, ["importlib.metadata", "email"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "carp[0].vhid = 256" in proc.stdout
    assert loaded == []


class Demote:
    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []

    def state_sync_demotion(self, amount: int, why: str) -> None:
        self.calls.append((amount, why))

    def scoped_demotion(self, *args: object) -> None:
        pass


@pytest.fixture
def with_conntrackd(tmp_path: Path) -> str:
    binary = tmp_path / "conntrackd"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    conf = tmp_path / "conntrackd.conf"
    conf.write_text("General {\n}\n")
    return VHID + f'\n[conntrackd]\nenabled = true\nbinary = "{binary}"\nconfig = "{conf}"\n'


def test_state_sync_turned_off_by_a_reload_lifts_its_demotion(
    tmp_path: Path, with_conntrackd: str
) -> None:
    """conntrackd's effect is made only when the config enables it (its module loaded
    then); a reload without it takes the state-sync demotion away, and a config that
    never had it pulls no lever."""
    demote = Demote()
    needs: Any = Needs(FakeNetlink(), lambda e: None, demote)  # type: ignore[arg-type]
    plain = carp_config(tmp_path, VHID)
    assert [type(e).__name__ for e in effects_for(plain, (), needs)] == ["Hooks"]
    assert demote.calls == []
    synced = carp_config(tmp_path, with_conntrackd)
    effects = effects_for(synced, (), needs)
    assert [type(e).__name__ for e in effects] == ["Conntrack", "Hooks"]
    before = len(demote.calls)  # (its own: demoted until its first bulk sync is done)
    assert [type(e).__name__ for e in effects_for(plain, effects, needs)] == ["Hooks"]
    assert demote.calls[before:] == [(0, "state sync off")]
