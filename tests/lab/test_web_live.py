"""The status page changed by reloads of a running MASTER (no restart, no failover), its
listen addresses (loopback free, the others with a user), and a real Prometheus scraping
it with basic_auth as docs/status-page.md says."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from carpd.web.auth import hash_password
from carpd_lab import bounds
from carpd_lab.cluster import Node, VhidSpec, start_master_first
from carpd_lab.netlab import Host, Lab, LogWatch

USER, PASSWORD = "prometheus", "lab-scrape-password"
PORT = 8473
TRANSITION = r"state transition"
DOCS = Path(__file__).parents[2] / "docs" / "status-page.md"
SCRAPE = 1  # the lab's scrape_interval (the docs' example scrapes every 15 s)
# Prometheus hands its targets to the scrape manager at most every 5 s (updatert in its
# discovery/manager.go), the first time too.
DISCOVERY = 5.0


def curl(host: Host, *args: str) -> tuple[int, str]:
    r = host.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "5", *args])
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


def users_file(lab: Lab) -> Path:
    path = lab.tmp / "web-users"
    path.write_text(f"{USER}:{hash_password(PASSWORD)}\n")
    return path


def pair(lab: Lab) -> tuple[Node, Node, Host]:
    nodes = []
    for i, skew in ((1, 0), (2, 100)):
        host = lab.add_host(f"n{i}", f"192.0.2.{i}/24")
        nodes.append(Node(lab, host, [VhidSpec(1, ("192.0.2.100/24",), advskew=skew, name="lan")]))
    start_master_first(nodes[0], nodes[1])
    return nodes[0], nodes[1], lab.add_host("client", "192.0.2.9/24")


def adverts_go_on(master: Node, backup: Node, marks: tuple[int, int]) -> None:
    """The backup hears two more of the master's adverts, and nobody changed state since
    the marks: the reload cost no failover (a master that stopped advertising for a
    master-down interval would have lost the vhid)."""
    backup.wait_counter(
        "adverts_received", 2, 2 * master.vhids[0].advert_interval + bounds.REACTION
    )
    assert master.states() == {"lan": "MASTER"} and backup.states() == {"lan": "BACKUP"}
    for node, mark in zip((master, backup), marks, strict=True):
        assert node.log is not None
        assert not [x for x in node.log.lines[mark:] if re.search(TRANSITION, x)], node.name


def test_a_reload_turns_the_page_on_on_a_running_master_without_a_failover(lab: Lab) -> None:
    n1, n2, client = pair(lab)
    marks = (n1.mark(), n2.mark())
    loopback, other = f"http://127.0.0.1:{PORT}", f"http://192.0.2.1:{PORT}"
    assert curl(n1.host, f"{loopback}/metrics")[0] == 0  # nothing listens yet
    n1.tables["web"] = {
        "enabled": True,
        "listen": ["127.0.0.1", "192.0.2.1"],
        "users_file": str(users_file(lab)),
    }
    n1.write_config()
    rc, out, err = n1.ctl("reload")
    assert (rc, out.strip(), err) == (0, f"reloaded {n1.config}", "")
    # At once, no restart: loopback needs nothing...
    code, metrics = curl(n1.host, f"{loopback}/metrics")
    assert code == 200
    assert 'carpd_vhid_state{carpdev="eth0",name="lan",vhid="1"} 2.0' in metrics  # MASTER
    assert 'carpd_demotion{source="maintenance"} 0.0' in metrics
    # ...the other address needs a user, from elsewhere and from the node itself, even
    # from its loopback address (the attacker's way round the loopback rule).
    assert curl(client, f"{other}/metrics")[0] == 401
    assert curl(n1.host, f"{other}/metrics")[0] == 401
    assert curl(n1.host, "--interface", "127.0.0.1", f"{other}/metrics")[0] == 401
    assert curl(client, "-u", f"{USER}:wrong-password", f"{other}/metrics")[0] == 401
    code, status = curl(client, "-u", f"{USER}:{PASSWORD}", f"{other}/api/status")
    assert code == 200 and json.loads(status)["vhosts"][0]["state"] == "MASTER"
    adverts_go_on(n1, n2, marks)

    # [web] off again by a reload: the page is gone, the vhid stays.
    del n1.tables["web"]
    n1.write_config()
    assert n1.ctl("reload")[0] == 0
    assert curl(n1.host, f"{loopback}/metrics")[0] == 0
    adverts_go_on(n1, n2, marks)


def test_a_reload_whose_page_cannot_start_keeps_the_old_one_and_says_so(lab: Lab) -> None:
    n1, n2, _ = pair(lab)
    n1.tables["web"] = {"enabled": True}  # 127.0.0.1:8473
    n1.write_config()
    assert n1.ctl("reload")[0] == 0
    marks = (n1.mark(), n2.mark())
    page = f"http://127.0.0.1:{PORT}/api/status"
    assert curl(n1.host, page)[0] == 200
    # Another program holds the port the new [web] wants.
    hold = "import socket,time; s=socket.socket(); s.bind(('127.0.0.1', 8474)); s.listen()\n"
    hold += "print('listening', flush=True); time.sleep(3600)"
    blocker = n1.host.spawn([sys.executable, "-c", hold], stdout=subprocess.PIPE)
    assert blocker.stdout is not None
    LogWatch(blocker.stdout).wait_for("^listening$", bounds.START_UP)
    bad = lab.tmp / "web.pem"
    bad.write_text("not a certificate\n")
    refusals: list[tuple[dict[str, Any], str]] = [
        ({"port": 8474}, "web: cannot listen on http://127.0.0.1:8474/: Address already in use"),
        ({"tls_cert": str(bad), "tls_key": str(bad)}, "web.tls_cert / web.tls_key: "),
    ]
    for change, words in refusals:
        n1.tables["web"] = {"enabled": True, **change}
        n1.write_config()
        rc, out, err = n1.ctl("reload")
        assert rc == 1 and out == "", (rc, out, err)
        assert err.startswith("carpctl: reload refused, the running configuration is kept: ")
        assert words in err, err
        assert curl(n1.host, page)[0] == 200  # the old page, on the old port, plain HTTP
    # What a reload cannot apply is applied at the next start, and carpctl says so: exit 5.
    n1.tables["web"] = {"enabled": True, "read_only": True}
    n1.global_["control_group"] = "root"
    n1.write_config()
    rc, out, err = n1.ctl("reload")
    assert rc == 5, (rc, out, err)
    assert out.splitlines() == [
        f"reloaded {n1.config}",
        "not applied until carpd restarts: global.control_group = root (running: None)",
    ]
    n1.wait_log(
        r"reload: global.control_group = root .*: restart carpd to apply it",
        bounds.COMMAND,
        marks[0],
    )
    # The rest of that reload is applied: the page is read-only now.
    post = ["-X", "POST", "-u", f"{USER}:{PASSWORD}", f"http://127.0.0.1:{PORT}/api/maintenance"]
    code, body = curl(n1.host, *post)
    assert code == 403 and "read-only" in body
    adverts_go_on(n1, n2, marks)


def scrape_config(target: str, password_file: Path) -> str:
    """docs/status-page.md's scrape example, pointed at the lab."""
    text = DOCS.read_text()
    block = re.search(r"```yaml\n(scrape_configs:.*?)```", text, re.S)
    assert block is not None, "docs/status-page.md has no scrape example"
    example = block.group(1)
    example = example.replace("/etc/prometheus/carpd-password", str(password_file))
    example = re.sub(r"targets: \[.*\]", f'targets: ["{target}"]', example)
    return f"global:\n  scrape_interval: {SCRAPE}s\n" + example


def test_prometheus_scrapes_the_master_from_elsewhere_with_basic_auth(lab: Lab) -> None:
    n1, _, client = pair(lab)
    n1.tables["web"] = {
        "enabled": True,
        "listen": ["127.0.0.1", "192.0.2.1"],
        "users_file": str(users_file(lab)),
    }
    n1.write_config()
    assert n1.ctl("reload")[0] == 0
    secret = lab.tmp / "carpd-password"
    secret.write_text(PASSWORD + "\n")
    config = lab.tmp / "prometheus.yml"
    config.write_text(scrape_config(f"192.0.2.1:{PORT}", secret))
    argv = ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={lab.tmp / 'tsdb'}"]
    argv += ["--web.listen-address=127.0.0.1:9090"]
    prom = client.spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert prom.stderr is not None
    # Prometheus opens its database first: a start as slow as carpd's, twice over.
    ready = "Server is ready to receive web requests"
    LogWatch(prom.stderr).wait_for(ready, bounds.START_UP * 2)

    def query(expr: str) -> list[str]:
        api = "http://127.0.0.1:9090/api/v1/query"
        _, body = curl(client, "-G", "--data-urlencode", f"query={expr}", api)
        return [r["value"][1] for r in json.loads(body)["data"]["result"]]

    # The targets come within DISCOVERY of the start, the first scrape within an interval
    # after that (Prometheus spreads them).
    deadline = time.monotonic() + DISCOVERY + SCRAPE + bounds.COMMAND
    while not (demotion := query('carpd_demotion{source="maintenance"}')):
        if time.monotonic() > deadline:
            targets = curl(client, "http://127.0.0.1:9090/api/v1/targets")[1]
            raise AssertionError(f"no scrape: {targets}")
        time.sleep(0.1)
    assert demotion == ["0"]  # there, at 0: no absent() needed
    assert query('up{job="carpd"}') == ["1"]
    assert query("carpd_vhid_is_master") == ["1"]
