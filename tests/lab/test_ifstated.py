"""[ifstated]: OpenBSD's own example (etc/examples/ifstated.conf) run by carpd, with only
the command names changed: a node demotes its carp group while its syslog server is
unreachable, and takes the role back when the server answers again."""

from __future__ import annotations

import sys
from pathlib import Path

from carpd_lab import bounds
from carpd_lab.cluster import Node, VhidSpec, start_master_first
from carpd_lab.netlab import Lab

# OpenBSD's etc/examples/ifstated.conf (1.2), as shipped; the test changes its commands.
EXAMPLE = (
    Path(__file__).parents[1] / "unit" / "data" / "ifstated-openbsd-example.conf"
).read_text()
SYSLOG = "203.0.113.10"
EVERY = 1  # the test's period, by a define (ifstated -D), instead of the file's 10 s


def test_openbsds_example_demotes_while_the_syslog_server_is_unreachable(lab: Lab) -> None:
    syslog = lab.add_host("syslog", f"{SYSLOG}/24", bridge="brdmz")
    nodes = []
    for n, skew in ((1, 0), (2, 100)):
        host = lab.add_host(f"n{n}", f"192.0.2.{n + 1}/24")
        lab.add_interface(host, "em2", "brdmz", f"203.0.113.{n + 1}/24")
        node = Node(lab, host, [VhidSpec(1, ("192.0.2.1/24",), advskew=skew, name="carp0")])
        node.global_["preempt"] = True
        nodes.append(node)
    n1, n2 = nodes
    carpctl = f"{sys.executable} -m carpd.ctl --socket {n1.socket}"
    conf = lab.tmp / "ifstated.conf"
    conf.write_text(
        EXAMPLE.replace("192.168.1.10", SYSLOG)
        .replace("ifconfig -g carp", f"{carpctl} group carp")
        .replace("logger -st ifstated", "echo")
    )
    n1.tables["ifstated"] = {
        "file": str(conf),
        "defines": {"syslog_ok": f'"ping -q -c 1 -w 1 {SYSLOG} >/dev/null 2>&1" every {EVERY}'},
    }
    start_master_first(n1, n2)
    n1.wait_log(r"ifstated: run: carp0 is master", bounds.COMMAND)
    bound = n2.master_down + bounds.REACTION  # n2 preempts on n1's first demoted advert

    # The syslog server goes away: a failed ping demotes the group, n2 takes over.
    mark = n1.mark()
    lab.cut(syslog)
    n1.wait_log(r"ifstated: run: could not reach syslog server", EVERY + 1 + bounds.COMMAND, mark)
    n1.wait_log(r"ifstated: changing state to demoted", bounds.REACTION, mark)
    n2.wait_state("MASTER", "carp0", bounds.COMMAND + bound)
    n1.wait_state("BACKUP", "carp0", bound, mark)
    n1.wait_log(r"ifstated: run: carp0 is backup", bounds.COMMAND, mark)
    assert n1.status()["groups"] == {"carp": 1}
    ifs = n1.status()["ifstated"]
    assert ifs["state"] == "demoted" and [t["ok"] for t in ifs["tests"] if t["active"]] == [False]
    assert "ifstated: state demoted; " in n1.ctl("status")[1]

    # It answers again: the demotion goes and n1 (advskew 0, preempt) takes the role back.
    mark = n1.mark()
    lab.cut(syslog, on=False)
    n1.wait_log(r"ifstated: run: syslog server is ok again", EVERY + 1 + bounds.COMMAND, mark)
    n1.wait_log(r"ifstated: changing state to neutral", bounds.COMMAND, mark)
    n1.wait_state("MASTER", "carp0", bounds.COMMAND + bound, mark)
    assert n1.status()["groups"] == {"carp": 0}
    events = [a for a in n1.status()["actions"] if a["target"] == "ifstated"]
    assert {a["action"]: a["status"] for a in events}[f"{carpctl} group carp -carpdemote"] == 0
