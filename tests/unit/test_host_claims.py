"""An effect may take over one of the host lane's own steps (a pool's addresses and its
silence on ARP): the host asks the effects, and knows no effect by name."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

from fakes import FakeNetlink, FakePorts, config, install, takeover

from carpd.core.actions import Announce
from carpd.daemon.runtime.runtime import Daemon
from carpd.daemon.seam.lanes import Claimant, HostAction, HostWork, Step
from carpd.daemon.seam.view import VhidView

HOST = Path(__file__).parents[2] / "carpd" / "daemon" / "runtime" / "host.py"
VHID = 'name = "carp1"\nvhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n'


class Quiet:
    """Claims the announcement of every vhid (as a pool does for its own)."""

    name = "quiet"

    def claims(self, action: HostAction, vhid: VhidView) -> bool:
        return isinstance(action, Announce)

    def before(self, work: HostWork, vhid: VhidView) -> Sequence[Step]:
        return ()

    def after(self, work: HostWork, vhid: VhidView) -> Sequence[Step]:
        return ()

    async def close(self) -> None:
        pass


def takeover_plan(tmp_path: Path, effects: tuple[object, ...]) -> list[str]:
    tmp_path.mkdir()
    install()
    netlink = FakeNetlink()
    daemon = Daemon(config(tmp_path, VHID), FakePorts(netlink), effects=effects)  # type: ignore[arg-type]
    takeover(daemon, 0.0)
    (vh,) = daemon.vhosts.values()
    return [planned.step for planned in vh.plan]


def test_a_claimed_step_is_not_planned_by_the_host(tmp_path: Path) -> None:
    assert isinstance(Quiet(), Claimant)
    assert "announce" in takeover_plan(tmp_path / "a", ())
    claimed = takeover_plan(tmp_path / "b", (Quiet(),))
    assert "announce" not in claimed and "add addresses" in claimed


def test_the_host_lane_names_no_effect() -> None:
    """The pool's rule lives in the pool effect (Pools.claims), not in host.py."""
    names = {n.id for n in ast.walk(ast.parse(HOST.read_text())) if isinstance(n, ast.Name)}
    words = HOST.read_text().split()
    assert not {"Pools", "Conntrack", "Routes", "Follow", "Actions"} & names
    assert ".pool" not in HOST.read_text() and "cfg.pool" not in words
