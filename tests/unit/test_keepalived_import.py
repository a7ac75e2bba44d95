"""carpd import keepalived: the golden corpus (tests/data/importer/*/keepalived.conf, each
with the carpd.toml and the report it must give), every generated carpd.toml accepted by
`carpd --check --other-node`, and the translation rules one by one: keepalived's
weights, sync groups, VRRPv2, --to carp's order of priorities, notify's arguments as a
script receives them, secrets never shown.

CARPD_REGOLD=1 rewrites the golden files from what the importer gives now.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import tomllib
from pathlib import Path

import pytest

from carpd.config import load_config
from carpd.daemon.service.main import main as carpd_main
from carpd.importer.cli import main as import_main
from carpd.importer.toml_out import Document, Table, string

CORPUS = Path(__file__).parents[1] / "data" / "importer"
REGOLD = os.environ.get("CARPD_REGOLD") == "1"


def run_import(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = import_main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def loads_in_carpd(toml: str, where: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The generated file, beside the passfiles it names, passes `carpd --check
    --other-node` (carpd's loader and its advisories) and load_config."""
    where.mkdir(parents=True, exist_ok=True)
    path = where / "carpd.toml"
    path.write_text(toml)
    for carp in tomllib.loads(toml).get("carp", []):
        if "passfile" in carp:
            (where / carp["passfile"]).write_text("a-shared-secret\n")
    assert carpd_main(["--check", "--other-node", "-c", str(path)]) == 0, capsys.readouterr()
    load_config(path)
    capsys.readouterr()


def run_case(
    case: Path, source: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[str, str]:
    """Import the case's file, compare with (or with CARPD_REGOLD=1 write) its golden
    carpd.toml and report.txt, and prove the carpd.toml loads."""
    args = (case / "args").read_text().split() if (case / "args").exists() else []
    name = "keepalived.conf" if source == "keepalived" else "interfaces"
    status, out, err = run_import([source, *args, str(case / name)], capsys)
    report = f"{err}(exit status {status})\n"
    if REGOLD:
        (case / "carpd.toml").write_text(out)
        (case / "report.txt").write_text(report)
    assert out == (case / "carpd.toml").read_text()
    assert report == (case / "report.txt").read_text()
    assert status == (0 if "review the lines above" not in err else 1)
    loads_in_carpd(out, tmp_path / "out", capsys)
    return out, err


CASES = sorted(p.parent.name for p in CORPUS.glob("*/keepalived.conf"))


def test_the_corpus_has_the_shapes_people_use() -> None:
    assert set(CASES) >= {
        "pair",
        "pair-to-carp",
        "unicast-cloud",
        "sync-group",
        "use-vmac",
        "ipv6",
        "many-instances",
        "includes",
        "lvs",
        "vrrp2-auth",
    }


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_case(CORPUS / case, "keepalived", tmp_path, capsys)


def test_the_docs_show_what_the_importer_gives() -> None:
    """docs/keepalived.md and docs/ucarp.md show a corpus case's carpd.toml and report
    as they are (regenerated, they would change here first)."""
    docs = Path(__file__).parents[2] / "docs"
    for case, page in (("pair", "keepalived.md"), ("ucarp-interfaces", "ucarp.md")):
        text = (docs / page).read_text()
        report = (CORPUS / case / "report.txt").read_text().rsplit("(exit status", 1)[0]
        assert (CORPUS / case / "carpd.toml").read_text().rstrip() in text, page
        assert report.rstrip() in text, page


def convert(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, object], str]:
    conf = tmp_path / "keepalived.conf"
    conf.write_text(text)
    status, out, err = run_import(["keepalived", *args, str(conf)], capsys)
    loads_in_carpd(out, tmp_path / "out", capsys)
    return status, tomllib.loads(out), err


def instance(body: str, name: str = "VI_1", vrid: int = 51) -> str:
    return (
        f"vrrp_instance {name} {{\n interface eth0\n virtual_router_id {vrid}\n"
        f" virtual_ipaddress {{\n  192.0.2.{vrid}/24\n }}\n{body}\n}}\n"
    )


V3 = "global_defs {\n vrrp_version 3\n}\n"


def script(name: str, weight: int | None, extra: str = "") -> str:
    w = f" weight {weight}\n" if weight is not None else ""
    return f'vrrp_script {name} {{\n script "/bin/true"\n{w}{extra}}}\n'


def test_a_clean_vrrp3_pair_is_carried_over_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, doc, err = convert(V3 + instance(" priority 150\n advert_int 0.5"), tmp_path, capsys)
    assert status == 0, err
    (carp,) = doc["carp"]  # type: ignore[misc]
    assert carp == {
        "name": "VI_1",
        "protocol": "vrrp3",
        "vhid": 51,
        "carpdev": "eth0",
        "priority": 150,
        "advbase": 0.5,
        "preempt": True,
        "accept": True,
        "addresses": ["192.0.2.51/24"],
    }
    assert "everything was carried over" in err


def test_keepalived_defaults_are_written_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No priority, advert_int, preempt: keepalived's 100, 1 s and preempt; a bare address
    is /32; a vrrp_script's rise, fall, interval and timeout are 1, 1, 1 s, 1 s."""
    text = (
        V3
        + script("chk", -5)
        + instance(" track_script {\n  chk\n }").replace("192.0.2.51/24", "192.0.2.51")
    )
    _, doc, err = convert(text, tmp_path, capsys)
    carp = doc["carp"][0]  # type: ignore[index]
    assert (carp["priority"], carp["advbase"], carp["preempt"]) == (100, 1, True)
    assert carp["addresses"] == ["192.0.2.51/32"]
    track = doc["track"][0]  # type: ignore[index]
    assert (track["rise"], track["fall"], track["interval"], track["timeout"]) == (1, 1, 1.0, 1.0)
    assert "192.0.2.51/32: keepalived's prefix for a bare address" in err


def test_a_negative_weight_is_a_demotion_while_down(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = V3 + script("chk", -30) + instance(" priority 150\n track_script {\n  chk\n }")
    status, doc, err = convert(text, tmp_path, capsys)
    assert status == 0, err
    assert doc["carp"][0]["priority"] == 150  # type: ignore[index]
    (track,) = doc["track"]  # type: ignore[misc]
    assert (track["weight"], track["vhids"]) == (30, ["VI_1"])


def test_a_positive_weight_is_added_to_the_priority_and_taken_back_while_down(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = V3 + script("chk", 20) + instance(" priority 100\n track_script {\n  chk\n }")
    status, doc, err = convert(text, tmp_path, capsys)
    assert status == 0, err
    assert doc["carp"][0]["priority"] == 120  # type: ignore[index]
    assert doc["track"][0]["weight"] == 20  # type: ignore[index]


def test_a_sum_over_254_is_capped_and_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = V3 + script("chk", 100) + instance(" priority 200\n track_script {\n  chk\n }")
    status, doc, err = convert(text, tmp_path, capsys)
    assert status == 1
    assert doc["carp"][0]["priority"] == 254  # type: ignore[index]
    assert "priority: priority 200 + 100 of positive weights is over 254: 254" in err


def test_weight_0_is_keepalived_fault_and_the_difference_is_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = V3 + script("chk", None) + instance(" track_script {\n  chk\n }")
    status, doc, err = convert(text, tmp_path, capsys)
    assert status == 1
    track = doc["track"][0]  # type: ignore[index]
    assert "weight" not in track  # carpd's default, 2^20: priority 1 while down
    assert "chk: weight 0: keepalived puts vrrp_instance VI_1 in FAULT" in err


def test_an_instance_weight_overrides_the_scripts_one_tracker_per_weight(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        V3
        + script("chk", -10)
        + instance(" track_script {\n  chk\n }", "A", 1)
        + instance(" track_script {\n  chk weight -40\n }", "B", 2)
        + instance(" track_script {\n  chk\n }", "C", 3)
    )
    _, doc, _ = convert(text, tmp_path, capsys)
    tracks = {t["weight"]: t["vhids"] for t in doc["track"]}  # type: ignore[attr-defined]
    assert tracks == {10: ["A", "C"], 40: ["B"]}


def test_a_weighted_script_of_a_sync_group_member_is_ignored_as_keepalived_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        V3
        + script("chk", -10)
        + "vrrp_sync_group G {\n group {\n  A\n  B\n }\n}\n"
        + instance(" track_script {\n  chk\n }", "A", 1)
        + instance("", "B", 2)
    )
    status, doc, err = convert(text, tmp_path, capsys)
    assert status == 1
    assert "track" not in doc
    assert [c["groups"] for c in doc["carp"]] == [["G"], ["G"]]  # type: ignore[attr-defined]
    assert "keepalived ignores it too (unless sync_group_tracking_weight)" in err


def test_a_sync_groups_tracker_demotes_the_group(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        V3
        + script("chk", -10)
        + "vrrp_sync_group G {\n group {\n  A\n  B\n }\n track_script {\n  chk\n }\n}\n"
        + instance("", "A", 1)
        + instance("", "B", 2)
    )
    _, doc, _ = convert(text, tmp_path, capsys)
    (track,) = doc["track"]  # type: ignore[misc]
    assert (track["groups"], track["weight"]) == (["G"], 10)
    assert "vhids" not in track


def test_vrrp_version_2_keepalived_default_is_said_the_output_is_vrrp3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, doc, err = convert(instance(" priority 150"), tmp_path, capsys)
    assert status == 1
    assert doc["carp"][0]["protocol"] == "vrrp3"  # type: ignore[index]
    assert "VI_1 speaks VRRPv2 (keepalived's default)" in err
    assert "set vrrp_version 3 on the keepalived nodes" in err


def test_to_carp_keeps_the_order_of_every_nodes_priorities(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One file per node, as a cluster is converted: the node with the higher priority
    gets the lower advskew, for every pair of priorities, 255 (the owner) included."""
    skews = {}
    for prio in (1, 2, 99, 100, 101, 150, 253, 254, 255):
        where = tmp_path / str(prio)
        where.mkdir()
        _, doc, _ = convert(instance(f" priority {prio}"), where, capsys, "--to", "carp")
        carp = doc["carp"][0]  # type: ignore[index]
        assert carp["protocol"] == "carp"
        assert "priority" not in carp and "accept" not in carp
        assert carp["passfile"] == "VI_1.pass"
        skews[prio] = carp["advskew"]
    prios = sorted(skews)
    assert all(skews[a] > skews[b] for a, b in itertools.pairwise(prios) if b != 255)
    assert skews[254] == skews[255] == 0 and skews[1] == 253


def test_to_carp_rounds_a_fraction_of_a_second_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, doc, err = convert(instance(" advert_int 0.3"), tmp_path, capsys, "--to", "carp")
    assert status == 1
    assert doc["carp"][0]["advbase"] == 1  # type: ignore[index]
    assert "advbase = 1: CARP's adverts go every 1-255 whole seconds" in err


def test_auth_pass_never_appears(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = "Zz9-secret"
    text = instance(f" authentication {{\n  auth_type PASS\n  auth_pass {secret}\n }}")
    for args, expected in (((), 1), (("--to", "carp"), 0)):
        conf = tmp_path / "keepalived.conf"
        conf.write_text(text)
        status, out, err = run_import(["keepalived", *args, str(conf)], capsys)
        assert status == expected, err
        assert secret not in out and secret not in err
    assert "write the auth_pass of keepalived.conf:" in err


def test_a_second_family_is_left_out_as_keepalived_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = V3 + instance("").replace("192.0.2.51/24", "192.0.2.51/24\n  2001:db8::51/64")
    status, doc, err = convert(text, tmp_path, capsys)
    assert status == 1
    assert doc["carp"][0]["addresses"] == ["192.0.2.51/24"]  # type: ignore[index]
    assert "2001:db8::51/64: not the family of the instance's first address" in err


def test_an_instance_without_a_virtual_address_is_left_out_with_its_actions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        V3
        + instance("")
        + (
            "vrrp_instance EMPTY {\n interface eth0\n virtual_router_id 9\n"
            " notify_master /bin/true\n}\n"
        )
    )
    status, doc, err = convert(text, tmp_path, capsys)
    assert status == 1
    assert [c["name"] for c in doc["carp"]] == ["VI_1"]  # type: ignore[attr-defined]
    assert "action" not in doc
    assert "vrrp_instance EMPTY: no virtual address" in err


def notify_args(shell: str, state: str, tmp_path: Path) -> str:
    """What the script of a generated [[action]] receives, run as carpd runs it
    (/bin/sh -c, CARP_STATE in the environment)."""
    out = tmp_path / "args"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CARP_STATE": state, "OUT": str(out)}
    out.unlink(missing_ok=True)
    subprocess.run(["/bin/sh", "-c", shell], env=env, check=True, timeout=10)
    return out.read_text() if out.exists() else "(not run)"


def test_notify_gets_keepalived_arguments_and_each_notify_runs_for_its_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = tmp_path / "notify.sh"
    recorder.write_text('#!/bin/sh\necho "$@" > "$OUT"\n')
    recorder.chmod(0o755)
    body = (
        f' priority 150\n notify {recorder}\n notify_backup "{recorder} B"\n'
        f" notify_fault {recorder} F\n notify_master {recorder} M"
    )
    _, doc, _ = convert(V3 + instance(body), tmp_path, capsys)
    actions = {a["name"]: a for a in doc["action"]}  # type: ignore[attr-defined]
    generic = actions["VI_1-notify"]["shell"]
    assert notify_args(generic, "MASTER", tmp_path) == "INSTANCE VI_1 MASTER 150\n"
    assert notify_args(generic, "BACKUP", tmp_path) == "INSTANCE VI_1 BACKUP 150\n"
    assert notify_args(generic, "INIT", tmp_path) == "INSTANCE VI_1 FAULT 150\n"
    backup, fault = actions["VI_1-backup"]["shell"], actions["VI_1-fault"]["shell"]
    assert notify_args(backup, "BACKUP", tmp_path) == "B\n"
    assert notify_args(backup, "INIT", tmp_path) == "(not run)"
    assert notify_args(fault, "INIT", tmp_path) == "F\n"
    assert notify_args(fault, "BACKUP", tmp_path) == "(not run)"
    assert actions["VI_1-master"]["run"] == [str(recorder), "M"]
    assert [actions[n]["on"] for n in ("VI_1-notify", "VI_1-backup", "VI_1-fault")] == [
        ["master", "backup"],
        ["backup"],
        ["backup"],
    ]


def test_everything_else_is_listed_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = V3 + instance(" preempt_delay 30\n some_future_keyword 1") + "bfd_instance b {\n}\n"
    status, _, err = convert(text, tmp_path, capsys)
    assert status == 1
    assert "keepalived.conf:10: preempt_delay: carpd has no preempt delay" in err
    assert "keepalived.conf:11: some_future_keyword: not known to the importer" in err
    assert "keepalived.conf:13: bfd_instance b: keepalived's own BFD" in err


def test_a_file_that_cannot_be_parsed_is_status_2_and_nothing_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text("vrrp_instance VI_1 {\n interface eth0\n")
    status, out, err = run_import(["keepalived", str(conf)], capsys)
    assert (status, out) == (2, "")
    assert "keepalived.conf:1: block 'vrrp_instance' is never closed" in err
    status, out, err = run_import(["keepalived", str(tmp_path / "missing.conf")], capsys)
    assert (status, out) == (2, "")


@pytest.mark.parametrize(
    "text",
    ['a"b', "back\\slash", "new\nline", "tab\there", "del\x7fete", "bell\x07", "ünïcode", "'"],
)
def test_strings_read_back_as_written(text: str) -> None:
    doc = Document(["a comment\nwith a newline"], [Table("carp", True, ["x\ny"], {"k": text})])
    assert tomllib.loads(doc.text()) == {"carp": [{"k": text}]}
    assert tomllib.loads(f"k = {string(text)}") == {"k": text}
