"""A flood of forged adverts from a third host: the backup still hears every one of the
master's adverts (the known peers' are read from their own socket), and the flood costs
no more than the budget for unknown sources."""

from __future__ import annotations

import sys

import pytest

from carpd.daemon.runtime import intake
from carpd_lab.cluster import Node, VhidSpec, start_master_first
from carpd_lab.netlab import Lab

pytestmark = pytest.mark.solo  # the flooder takes a core: run alone

FLOOD_SECONDS = 4.0  # four of the master's adverts (advbase 1) fall inside
# Budget slack: the reader wakes in batches, and the flood is counted until it drains.
SLACK_SECONDS = 1.0


def _heard_and_sent(master: Node, backup: Node) -> tuple[int, int]:
    """Right after the backup heard an advert (none in flight for the next second):
    the backup's received count and the master's sent count."""
    backup.wait_counter("adverts_received", 1)
    return backup.counter("adverts_received"), master.counter("adverts_sent")


@pytest.mark.parametrize("source", ["192.0.2.66", "2001:db8::66"])
def test_a_flood_costs_the_backup_none_of_the_masters_adverts(lab: Lab, source: str) -> None:
    addresses = ("192.0.2.100/24",) if ":" not in source else ("2001:db8::100/64",)
    h1 = lab.add_host("n1", "192.0.2.1/24", "2001:db8::1/64")
    h2 = lab.add_host("n2", "192.0.2.2/24", "2001:db8::2/64")
    attacker = lab.add_host("at", "192.0.2.66/24", "2001:db8::66/64")
    master = Node(lab, h1, [VhidSpec(vhid=1, advskew=0, addresses=addresses)])
    backup = Node(lab, h2, [VhidSpec(vhid=1, advskew=100, addresses=addresses)])
    start_master_first(master, backup)
    transitions = backup.counter("transitions")
    heard0, sent0 = _heard_and_sent(master, backup)

    argv = [sys.executable, "-m", "carpd_lab.flood", source, "1", "0", str(FLOOD_SECONDS)]
    out = attacker.run(argv, timeout=FLOOD_SECONDS + 30)
    assert out.returncode == 0, out.stderr
    flood = int(out.stdout.split()[1])

    heard1, sent1 = _heard_and_sent(master, backup)
    assert heard1 - heard0 == sent1 - sent0, f"flood of {flood}: adverts lost"
    assert backup.counter("transitions") == transitions
    assert backup.states() == {"carp1": "BACKUP"}

    # The flood was shed by the kernel, not read: no more than the budget was verified.
    st = backup.status()
    shed = st["dropped"]["eth0"].get("shed", 0)
    read = sum(st["vhosts"][0]["counters"]["dropped"].values())
    budget = intake.BUDGET_BURST + intake.BUDGET_RATE * (FLOOD_SECONDS + SLACK_SECONDS)
    assert read <= budget, f"{read} of {flood} forged adverts read"
    # A full queue refuses before the filter runs: the master's adverts meanwhile count
    # as shed there too (their own socket took them).
    assert shed > 0 and read + shed <= flood + sent1 - sent0, (read, shed, flood)
    assert backup.log is not None
    assert backup.log.count(r"carp: flood on eth0: more than 1000 adverts/s") >= 1


SPOOFED_RATE = 20_000  # a second: well within what the backup refuses in its screen
DELIVERED = 0.99  # of the forged adverts sent, at least this share reaches the backup


@pytest.mark.parametrize("varied", [False, True], ids=["one-frame", "varied"])
def test_a_flood_from_the_masters_own_address_costs_the_backup_none_of_its_adverts(
    lab: Lab, varied: bool
) -> None:
    """Forged adverts with the master's own source share its queue on the backup: each
    is refused as bad_hmac (or as a copy of one refused before), and every real advert
    is still heard."""
    h1 = lab.add_host("n1", "192.0.2.1/24")
    h2 = lab.add_host("n2", "192.0.2.2/24")
    attacker = lab.add_host("at", "192.0.2.66/24")
    master = Node(lab, h1, [VhidSpec(vhid=1, advskew=0, addresses=("192.0.2.100/24",))])
    backup = Node(lab, h2, [VhidSpec(vhid=1, advskew=100, addresses=("192.0.2.100/24",))])
    start_master_first(master, backup)
    transitions = backup.counter("transitions")
    heard0, sent0 = _heard_and_sent(master, backup)

    argv = [sys.executable, "-m", "carpd_lab.flood", "192.0.2.1", "1"]
    argv += [str(SPOOFED_RATE), str(FLOOD_SECONDS), *(["varied"] if varied else [])]
    out = attacker.run(argv, timeout=FLOOD_SECONDS + 30)
    assert out.returncode == 0, out.stderr
    assert "(trafgen)" in out.stdout, out.stdout  # varied adverts: trafgen's
    flood = int(out.stdout.split()[1])

    heard1, sent1 = _heard_and_sent(master, backup)
    assert heard1 - heard0 == sent1 - sent0, f"flood of {flood}: adverts lost"
    assert backup.counter("transitions") == transitions
    st = backup.status()
    refused = st["vhosts"][0]["counters"]["dropped"].get("bad_hmac", 0)
    repeated = st["dropped"]["eth0"].get("repeated", 0)
    # The forged adverts reached the backup's peers socket and were refused there (none
    # shed: the others socket never saw them).
    assert DELIVERED * flood <= refused + repeated <= flood, (refused, repeated, flood)
    assert st["dropped"]["eth0"].get("shed", 0) == 0
