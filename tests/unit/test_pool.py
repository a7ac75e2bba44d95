"""[[pool]]: carpnodes words, the vhids a pool makes, and its nftables rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from carpd.config import ConfigError, load_config
from carpd.daemon.effects.pool import ruleset

POOL = """
[[pool]]
name = "web"
carpdev = "eth0"
address = "192.0.2.80/24"
nodes = {nodes}
pass = "s3cret"
seed = 7
"""


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "carpd.toml"
    path.write_text(text)
    return load_config(path)


def test_a_pool_is_its_vhids_with_preempt_and_one_multicast_mac(tmp_path: Path) -> None:
    config = load(tmp_path, POOL.format(nodes='["3:0", "4:100", "5:200"]'))
    vhids = config.carp  # type: ignore[attr-defined]
    assert [(c.name, c.vhid, c.advskew, c.preempt) for c in vhids] == [
        ("web-3", 3, 0, True), ("web-4", 4, 100, True), ("web-5", 5, 200, True),
    ]  # fmt: skip
    assert {c.pool.mac for c in vhids} == {"01:00:5e:00:01:03"}  # the leader's, OpenBSD's
    assert [c.pool.index for c in vhids] == [0, 1, 2]
    assert all(c.password == b"s3cret" for c in vhids)


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ('["1:0", "1:100"]', 'pool "web".nodes = 1: each vhid once in nodes'),
        ('["1:0", "2:300"]', 'pool "web".nodes[1] = "2:300": not "vhid:advskew"'),
        ('["1:0"]', 'pool "web".nodes = 1: a pool has 2 to 32 vhids'),
    ],
)
def test_bad_carpnodes_are_refused(tmp_path: Path, nodes: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, POOL.format(nodes=nodes))
    assert message in str(e.value)


def test_a_pool_vhid_may_not_be_a_carp_vhid_too(tmp_path: Path) -> None:
    carp = '[[carp]]\nvhid = 2\ncarpdev = "eth0"\npass = "x"\naddresses = ["192.0.2.1/24"]\n'
    with pytest.raises(ConfigError) as e:
        load(tmp_path, carp + POOL.format(nodes='["1:0", "2:100"]'))
    assert 'pool "web".nodes = 2: vhid 2 on carpdev eth0 is also in carp[0] (vhid 2)' in str(
        e.value
    )


def test_the_ruleset_keeps_our_buckets_and_replaces_itself_in_one_transaction(
    tmp_path: Path,
) -> None:
    config = load(tmp_path, POOL.format(nodes='["1:0", "2:100", "3:200"]'))
    ref = config.carp[0].pool  # type: ignore[attr-defined]
    text = ruleset(ref, frozenset({0, 2}))
    assert "jhash ip saddr mod 3 seed 0x7 vmap { 0 : jump keep, 1 : drop, 2 : jump keep }" in text
    assert "arp saddr ip 192.0.2.80 arp saddr ether set 01:00:5e:00:01:01" in text
    # The old tables go in the same script: nft applies all of it or nothing.
    assert text.index("delete table ip carpd_pool_web") < text.index("chain prerouting")


def test_each_node_gives_its_own_advskews_in_its_overlay(tmp_path: Path) -> None:
    (tmp_path / "node.toml").write_text('[pool.web]\nnodes = ["1:100", "2:0"]\n')
    text = '[global]\noverlay = "node.toml"\n' + POOL.format(nodes='["1:0", "2:100"]')
    config = load(tmp_path, text)
    assert [(c.vhid, c.advskew) for c in config.carp] == [(1, 100), (2, 0)]  # type: ignore[attr-defined]
