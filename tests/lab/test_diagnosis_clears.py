"""A diagnosis says what is true now: "became MASTER without having heard any advert" is a
note while a node is alone, and gone once it hears its peer (issue 25, item 6: it used to
stay for ever on every healthy pair)."""

from __future__ import annotations

from carpd_lab import bounds
from carpd_lab.cluster import Node, VhidSpec
from carpd_lab.netlab import Lab

VIPS = ("192.0.2.100/24",)


def test_the_silence_note_of_a_lone_first_master_clears_once_its_peer_speaks(lab: Lab) -> None:
    h1 = lab.add_host("n1", "192.0.2.1/24")
    h2 = lab.add_host("n2", "192.0.2.2/24")
    # n2 starts alone and becomes MASTER by the silence; n1, preferred and preempting,
    # joins later and takes over: n2 then hears n1's adverts.
    first = Node(lab, h2, [VhidSpec(vhid=1, advskew=100, addresses=VIPS)], {"preempt": True})
    later = Node(lab, h1, [VhidSpec(vhid=1, advskew=0, addresses=VIPS)], {"preempt": True})
    first.start()
    first.wait_state("MASTER", timeout=bounds.first_master(first.master_down))
    first.wait_ready()
    (note,) = first.status()["vhosts"][0]["diagnostics"]
    assert (note["kind"], note["level"]) == ("silence", "info")
    assert note["since"] is not None
    _, text, _ = first.ctl("status")
    assert "\tnote: became MASTER without having heard any advert" in text

    mark = first.mark()
    later.start()
    # n1 hears one of n2's adverts, and preempts it at once.
    hear = first.vhids[0].advert_interval
    later.wait_state("MASTER", timeout=bounds.START_UP + hear + bounds.REACTION)
    # n2 steps down on n1's first advert as MASTER (a better master, with preempt).
    first.wait_state("BACKUP", timeout=bounds.REACTION, start=mark)
    later.wait_ready()
    assert first.status()["vhosts"][0]["diagnostics"] == []
    _, text, _ = first.ctl("status")
    assert "became MASTER without" not in text
    # n1 heard n2 before it took over by preemption: it was never alone.
    assert later.status()["vhosts"][0]["diagnostics"] == []
