"""carpctl doctor's pair checks on hand-built status JSON with a ``cluster`` report (as
the daemon's cluster view makes it): each fault between this node and its peer (a
settings mismatch, preemption that never or always wins, clock skew, a silent peer) is
named with what was seen and the fix, from either node's side; a clean pair gives none.

Clock skew cannot be made for real in the lab (network namespaces share one
CLOCK_REALTIME): this is where it is proved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from carpd.doctor import node as doctor_node
from carpd.doctor import pair
from carpd.doctor.report import Finding
from carpd.doctor.run import examine


def vhid(state: str, **kw: Any) -> dict[str, Any]:
    """A status vhost entry as carpd's status JSON has it (CARP unless told)."""
    v = {"name": "lan", "vhid": 1, "state": state, "protocol": "carp", "advbase": 1,
         "advskew": 0, "advskew_sent": 0, "preempt": True, "demotion": 0}  # fmt: skip
    if kw.get("protocol") == "vrrp3":
        v.pop("advskew"), v.pop("advskew_sent")
        v.update(priority=100, priority_sent=100)
    v.update(kw)
    if "advskew" in kw:
        v["advskew_sent"] = kw["advskew"]
    if "priority" in kw:
        v["priority_sent"] = kw["priority"]
    return v


def node(name: str, *vhosts: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"pid": 1, "node": name, "vhosts": list(vhosts), **kw}


def seen(
    peer: dict[str, Any] | None, skew: float | None = 0.2, error: str | None = None
) -> dict[str, Any]:
    """One peer as the cluster report has it (carpd.cluster.client.Seen.to_json)."""
    return {
        "name": "fw2", "url": "https://192.0.2.2:8473", "answering": peer is not None,
        "checked": 1700000000.0, "error": error, "took": 0.05, "clock_skew": skew,
        "status": peer,
    }  # fmt: skip


def status(here: list[dict[str, Any]], peer: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    """fw1's status with its cluster report of fw2."""
    report = {"interval": 2.0, "peers": [seen(node("fw2", *peer), **kw)]}
    return node("fw1", *here, cluster=report)


# fw1 preferred (advskew 0) and MASTER, preempting; fw2 BACKUP at 100.
CLEAN = ([vhid("MASTER")], [vhid("BACKUP", advskew=100)])
VRRP = (
    [vhid("MASTER", protocol="vrrp3", priority=200)],
    [vhid("BACKUP", protocol="vrrp3", priority=100)],
)


def checks(s: dict[str, Any]) -> list[Finding]:
    return list(pair.pair_checks(s))


def problems(s: dict[str, Any], check: str | None = None) -> list[Finding]:
    return [f for f in checks(s) if f.ok is False and check in (None, f.check)]


def swapped(s: dict[str, Any]) -> dict[str, Any]:
    """The same pair seen from fw2."""
    (p,) = s["cluster"]["peers"]
    here = {**p["status"], "node": "fw2"}
    there = {k: v for k, v in s.items() if k != "cluster"}
    return {**here, "cluster": {"interval": 2.0, "peers": [{**p, "name": "fw1", "status": there}]}}


@pytest.mark.parametrize("pair_", [CLEAN, VRRP], ids=["carp", "vrrp3"])
def test_a_clean_pair_gives_no_pair_finding_from_either_side(
    pair_: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    s = status(*pair_)
    for side in (s, swapped(s)):
        found = checks(side)
        assert {f.check for f in found} == set(pair.CHECKS)
        assert all(f.ok is True for f in found), found
    by = {f.check: f for f in checks(s)}
    assert by["pair-peer"].saw == "fw2 answers the cluster view"
    assert by["pair-settings"].saw == (
        "fw2: the same 1 vhid(s), each with the same protocol and advbase"
    )
    assert by["pair-clock"].saw == "fw2's clock is +0.2 s off fw1's (+-1 s): within 5 s"


def test_advbase_mismatch_carp_and_vrrp3() -> None:
    s = status([vhid("MASTER")], [vhid("BACKUP", advskew=100, advbase=2)])
    for side, other in ((s, "fw2"), (swapped(s), "fw1")):
        (f,) = problems(side)
        assert f.check == "pair-settings" and f.subject == "lan"
        assert "CARP compares advbase before advskew" in f.saw
        assert f.fix is not None and f.fix.startswith("advbase = ") and f" on {other} " in f.fix
    (f,) = problems(s)
    assert f.saw.startswith(
        "lan: advbase 1 on fw1, 2 on fw2: the adverts' timing differs and so does the "
        "takeover bound (master-down 3.00 s on fw1, 6.39 s on fw2)"
    )
    assert f.fix == "advbase = 1 for lan on fw2 (or the same other value on both)"
    here, peer = VRRP
    s = status(here, [{**peer[0], "advbase": 0.5}])
    (f,) = problems(s)
    assert f.check == "pair-settings"
    assert f.saw.startswith("lan: interval 1 s on fw1, 0.5 s on fw2: RFC 5798 says")


def test_a_different_protocol_or_vhid_number() -> None:
    here, _ = CLEAN
    _, peer = VRRP
    (f,) = problems(status(here, peer))
    assert f.check == "pair-settings" and f.subject == "lan"
    assert f.saw.startswith("lan: carp vhid 1 on fw1, vrrp3 vhid 1 on fw2: the two are not one")
    assert f.fix == "the same protocol and vhid for lan on both nodes"
    (f,) = problems(status(here, [vhid("BACKUP", advskew=100, vhid=2)]))
    assert "carp vhid 1 on fw1, carp vhid 2 on fw2" in f.saw


def test_a_vhid_configured_on_one_node_only_from_either_side() -> None:
    here, peer = CLEAN
    wan = vhid("MASTER", name="wan", vhid=2)
    s = status([*here, wan], peer)
    (f,) = problems(s)
    assert f.check == "pair-settings" and f.subject == "wan"
    assert f.saw == (
        "wan (vhid 2) is configured on fw1 only, not on fw2: nothing takes over its "
        "addresses when fw1 fails"
    )
    assert f.fix == "the same [[carp]] table (vhid 2) on fw2, or none here"
    (f,) = problems(swapped(s))
    assert f.saw.startswith("wan (vhid 2) is configured on fw1 only, not on fw2")
    assert f.fix == "the same [[carp]] table (vhid 2) here, or none on fw1"
    # Matched by the vhid number when the names differ: not "one node only".
    assert problems(status(here, [{**peer[0], "name": "inside"}])) == []


def test_the_same_advskew_or_priority_is_a_tie() -> None:
    s = status([vhid("MASTER", advskew=20)], [vhid("BACKUP", advskew=20)])
    for side in (s, swapped(s)):
        (f,) = problems(side)
        assert f.check == "pair-preempt" and f.subject == "lan"
        assert "advskew 20 on both" in f.saw and "a tie" in f.saw
        assert f.fix == "advskew = 120 for lan on the node meant to be BACKUP"
    # With an advbase mismatch too (CARP compares advbase first): both named, and why.
    s = status([vhid("MASTER", advskew=20)], [vhid("BACKUP", advskew=20, advbase=2)])
    assert [f.check for f in problems(s)] == ["pair-settings", "pair-preempt"]
    assert problems(s, "pair-preempt")[0].saw.startswith(
        "lan: advskew 20 on both fw1 and fw2: a tie, so only the advbase mismatch decides now, "
        "and once it is fixed nothing says which node is MASTER"
    )
    here, peer = VRRP
    (f,) = problems(status(here, [{**peer[0], "priority": 200, "priority_sent": 200}]))
    assert f.check == "pair-preempt"
    assert f.saw.startswith("lan: priority 200 on both fw1 and fw2: a tie, so the config")
    assert f.fix == "priority = 250 for lan on the node meant to be MASTER"


def test_the_preferred_node_backup_with_preempt_on_takes_over_always() -> None:
    # fw2 has the better advskew and preempt on, yet fw1 is MASTER, and nothing holds fw2
    # back: it takes the role at once, every time it can.
    s = status([vhid("MASTER", advskew=100)], [vhid("BACKUP", advskew=0)])
    for side in (s, swapped(s)):
        (f,) = problems(side)
        assert f.check == "pair-preempt" and f.subject == "lan"
        assert f.saw == (
            "lan: fw2 is BACKUP with preempt on and the better advskew (0 against MASTER "
            "fw1's 100): it takes the role at once whenever it can (not held back now: a "
            "takeover under way), each time"
        )
        assert f.fix == (
            "if fw1 is meant to be MASTER, give it the better advskew; if fw2 is, see what "
            "holds it back (carpctl status on fw2)"
        )


def test_a_demoted_preferred_node_is_preemption_working_as_meant() -> None:
    # Demoted (a failing check) or in maintenance: BACKUP is where it belongs for now.
    s = status([vhid("MASTER", advskew=100)], [vhid("BACKUP", advskew=0, demotion=50)])
    for side in (s, swapped(s)):
        assert problems(side) == []


def test_a_vrrp_preferred_backup_not_held_back_is_named() -> None:
    here, peer = VRRP
    s = status([{**here[0], "state": "BACKUP"}], [{**peer[0], "state": "MASTER"}])
    (f,) = problems(s)
    assert f.saw.startswith("lan: fw1 is BACKUP with preempt on and the better priority (200")
    assert "not held back now: a takeover under way" in f.saw


def test_the_preferred_node_with_preempt_off_never_takes_the_role_back() -> None:
    s = status([vhid("BACKUP", preempt=False)], [vhid("MASTER", advskew=100)])
    for side in (s, swapped(s)):
        (f,) = problems(side)
        assert f.check == "pair-preempt" and f.subject == "lan"
        assert f.saw == (
            "lan: fw1 has the better advskew (0 against fw2's 100) but preempt off: after a "
            "failover to fw2 it never takes the role back (now fw1 is BACKUP, fw2 MASTER)"
        )
        assert f.fix == "preempt = true in lan's [[carp]] table on fw1"
    # The worse node's preempt does not matter.
    here, peer = CLEAN
    assert problems(status(here, [{**peer[0], "preempt": False}])) == []


def test_clock_skew_over_5_s_either_way() -> None:
    for skew in (7.0, -5.2):
        (f,) = problems(status(*CLEAN, skew=skew))
        assert f.check == "pair-clock" and f.subject == "fw2"
        assert f.saw == (
            f"fw2's clock is {skew:+.1f} s off fw1's (from its HTTP Date header, +-1 s), more "
            "than 5 s: the two nodes' journals and logs cannot be compared line by line"
        )
        assert f.fix is not None and "timedatectl set-ntp true" in f.fix
    assert problems(status(*CLEAN, skew=4.9)) == []
    (f,) = [f for f in checks(status(*CLEAN, skew=None)) if f.check == "pair-clock"]
    assert f.ok is None and f.saw == "fw2 sent no Date header: skew unknown"


def test_a_peer_that_does_not_answer_is_a_warning_and_the_pair_checks_do_not_run(
    tmp_path: Path,
) -> None:
    here, _ = CLEAN
    report = {"interval": 2.0, "peers": [seen(None, None, "no answer within 1.5 s")]}
    s = node("fw1", *here, cluster=report)
    found = checks(s)
    assert not [f for f in found if f.ok is False]
    (w,) = [f for f in found if f.warning]
    assert w.check == "pair-peer" and w.subject == "fw2" and w.ok is None
    assert w.saw == (
        "fw2 does not answer the cluster view (no answer within 1.5 s): the pair checks did "
        "not run for it"
    )
    assert w.fix is not None and w.fix.startswith("carpctl cluster status")
    rest = {f.check: (f.ok, f.saw) for f in found if f.check != "pair-peer"}
    assert rest == dict.fromkeys(pair.CHECKS[1:], (None, "no peer answers the cluster view"))
    # In the report: shown as WARNING with its fix, counted, and no problem (exit 0).
    cfg = tmp_path / "carpd.toml"
    cfg.write_text('[[carp]]\nname = "lan"\nvhid = 1\ncarpdev = "eth0"\npass = "x"\n'
                   'addresses = ["192.0.2.100/24"]\n')  # fmt: skip
    rep = examine(str(cfg), s, None, FakeNode())
    text = rep.text()
    assert "pair-peer fw2: WARNING: fw2 does not answer the cluster view" in text
    assert "\tfix: carpctl cluster status" in text
    assert rep.to_json()["warnings"] == 1 and not [
        p for p in rep.problems if p.check == "pair-peer"
    ]
    # No peer read yet (carpd just started): skipped, not a warning.
    found = checks(node("fw1", *here, cluster={"interval": 2.0, "peers": []}))
    assert {(f.ok, f.warning) for f in found} == {(None, False)}
    assert found[0].saw == "no peer read yet (carpd reads each every 2.0 s)"


def test_no_cluster_or_no_carpd_skips_the_pair_checks() -> None:
    found = checks(node("fw1", vhid("MASTER")))
    assert [(f.check, f.ok) for f in found] == [(c, None) for c in pair.CHECKS]
    assert found[0].saw == "no [[cluster.peer]] in carpd's config: no peer to compare with"
    assert [f.saw for f in pair.skipped("needs the running carpd")] == [
        "needs the running carpd"
    ] * 4


class FakeNode(doctor_node.Host):
    """A node with nothing to say (no nft, no sysctls): only the pair checks matter."""

    def sysctl(self, name: str) -> str | None:
        return None

    def ruleset(self) -> str:
        return "no nft here"

    def addresses(self) -> dict[str, list[Any]]:  # type: ignore[override]
        return {}

    def link_file(self, ifname: str, rel: str) -> str | None:
        return None

    def master(self, ifname: str) -> str | None:
        return None

    def ports(self, bridge: str) -> list[str]:
        return []

    def read(self, path: Path) -> str | None:
        return None
