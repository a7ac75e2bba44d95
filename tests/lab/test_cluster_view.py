"""The cluster view with two real nodes: each reads the other's page over HTTPS (pinned
certificate, a [web] user); carpctl cluster status shows both side by side with the
verdict, names a split brain, and shows a peer that does not answer within its bound,
while the daemon's own adverts go on as before."""

from __future__ import annotations

import json
import time

import pytest

from carpd_lab import bounds
from carpd_lab.browsing import Browser
from carpd_lab.cluster import Node, VhidSpec, start_master_first
from carpd_lab.netlab import Lab
from carpd_lab.pairview import INTERVAL, PASSWORD, PORT, TIMEOUT, USER, Identity, join

LAN = "192.0.2.100/24"


def pair(lab: Lab, ids: dict[str, Identity] | None = None) -> tuple[Node, Node]:
    nodes = {}
    for i, skew in ((1, 0), (2, 100)):
        host = lab.add_host(f"n{i}", f"192.0.2.{i}/24")
        nodes[f"192.0.2.{i}"] = Node(lab, host, [VhidSpec(1, (LAN,), advskew=skew, name="lan")])
    ids = join(lab, nodes) if ids is None else ids.update(join(lab, nodes)) or ids
    n1, n2 = nodes.values()
    start_master_first(n1, n2)
    n2.wait_ready()
    return n1, n2


def cluster(node: Node) -> tuple[int, dict]:
    rc, out, err = node.ctl("cluster", "status", "--json")
    assert rc in (0, 4), err
    return rc, json.loads(out)


def test_cluster_status_shows_both_nodes_and_what_a_failure_of_this_one_would_do(lab: Lab) -> None:
    n1, n2 = pair(lab)
    rc, view = cluster(n1)
    assert rc == 0, view
    assert view["verdict"] == "ok"
    (peer,) = view["peers"]
    assert peer["name"] == "n2" and peer["answering"], peer
    assert abs(peer["clock_skew"]) <= 1.5  # one clock in the lab: only the Date header's 1 s
    (lan,) = view["vhids"]
    states = {m["node"]: (m["state"], m["advskew"]) for m in lan["nodes"]}
    assert states == {"n1": ("MASTER", 0), "n2": ("BACKUP", 100)}
    assert lan["successor"] == "n2"
    failed = lan["if_this_node_failed"]
    assert failed[0] == "n2 takes over lan after 3.39 s (its master-down interval)", failed
    assert failed[2] == "health: n2 is healthy", failed
    # The same view from the other side: nothing would change if the BACKUP failed.
    rc, view = cluster(n2)
    assert rc == 0 and view["vhids"][0]["if_this_node_failed"] == [
        "nothing: n2 is not MASTER of lan"
    ]
    # The text for people, and no credential anywhere in what carpctl or status show.
    rc, text, _ = n1.ctl("cluster", "status")
    assert "lan (vhid 1): OK: n1 is MASTER" in text, text
    assert "if n1 failed now: n2 takes over lan after 3.39 s" in text, text
    print(text)  # the docs' example
    status = json.dumps(n1.status())
    assert PASSWORD not in text + status


def split(n2: Node) -> None:
    """n2 stops hearing CARP (its own firewall drops protocol 112; the pages still talk)
    and becomes MASTER too."""
    n2.host.check("nft", "add table inet lab_split")
    n2.host.check("nft", "add chain inet lab_split in { type filter hook input priority 0; }")
    mark = n2.mark()
    n2.host.check("nft", "add rule inet lab_split in ip protocol 112 drop")
    # From the last advert it heard (at most one interval before the rule).
    limit = n2.vhids[0].advert_interval + n2.master_down + bounds.COMMAND
    n2.wait_state("MASTER", "lan", limit, mark)


def test_a_split_brain_is_named(lab: Lab) -> None:
    n1, n2 = pair(lab)
    split(n2)
    rc, view = cluster(n1)
    assert rc == 4 and view["verdict"] == "split-brain", view
    assert view["vhids"][0]["text"] == "split brain: n1 and n2 are all MASTER"
    rc, text, _ = n1.ctl("cluster", "status")
    assert "lan (vhid 1): SPLIT-BRAIN: split brain: n1 and n2 are all MASTER" in text


def test_a_peer_that_does_not_answer_is_shown_in_bounded_time(lab: Lab) -> None:
    n1, n2 = pair(lab)
    # Its page's packets vanish (no RST): only the timeout can end a read.
    n2.host.check("nft", "add table inet lab_silent")
    n2.host.check("nft", "add chain inet lab_silent in { type filter hook input priority 0; }")
    n2.host.check("nft", "add rule inet lab_silent in tcp dport 8473 drop")
    sent = n1.counter("adverts_sent")
    start = time.monotonic()
    rc, view = cluster(n1)
    took = time.monotonic() - start
    assert took < TIMEOUT + bounds.COMMAND, took
    assert rc == 4 and view["verdict"] == "unknown", view
    (peer,) = view["peers"]
    assert not peer["answering"] and "no answer within 1.5 s" in peer["error"], peer
    assert view["vhids"][0]["text"] == "n1 is MASTER; not answering: n2"
    # The daemon's loop never waited for the peer: it advertised all along.
    interval = n1.vhids[0].advert_interval
    assert n1.counter("adverts_sent") - sent >= int(took / interval) - 1
    # And n2, still MASTER-less BACKUP, heard every advert: no takeover happened.
    assert n2.states() == {"lan": "BACKUP"}


@pytest.mark.solo
def test_the_page_shows_the_cluster_in_a_browser(lab: Lab) -> None:
    ids: dict[str, Identity] = {}
    _, n2 = pair(lab, ids)
    client = lab.add_host("client", "192.0.2.9/24")
    browser = Browser(client, USER, PASSWORD, trust=ids["192.0.2.1"].spki)
    browser.ask(f"open n1 https://192.0.2.1:{PORT}/")
    # The section comes with the page's next fetch of /api/cluster, within a second.
    assert browser.ask(f"waitcluster n1 lan ok {1 + bounds.COMMAND}")["after"] is not None
    assert browser.ask("cluster n1")["cluster"] == {"lan": "ok"}
    text = browser.ask("text n1")["text"]
    assert "lan@1: n1 is MASTER" in text and "n2: answering" in text, text
    assert "if n1 failed now: n2 takes over lan after 3.39 s" in text, text
    # A split brain: the page names it within a read of the peer (it refreshes each second).
    split(n2)
    answer = browser.ask(
        f"waitcluster n1 lan split-brain {INTERVAL + TIMEOUT + 1 + bounds.COMMAND}"
    )
    assert answer["after"] is not None, answer
    assert "split brain: n1 and n2 are all MASTER" in browser.ask("text n1")["text"]
    # The peer gone: shown as not answering, the next read.
    n2.stop()
    answer = browser.ask(f"waitcluster n1 lan unknown {INTERVAL + TIMEOUT + 1 + bounds.COMMAND}")
    assert answer["after"] is not None, answer
    assert "n2: NOT ANSWERING" in browser.ask("text n1")["text"]
