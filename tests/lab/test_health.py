"""Demotion levers on two real nodes with preempt on: checks, groups, maintenance, links."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import time
from typing import Any

import pytest

from carpd.config import GlobalConfig
from carpd.ctl.main import EXIT_CHECK_FAILED, request
from carpd_lab import bounds
from carpd_lab.cluster import Node, VhidSpec, line_time, start_master_first
from carpd_lab.netlab import Lab

VIP = "192.0.2.100"
SERVICE_DOWN = "carp demoted by 1048576 due to service disruption (services: web)"
SERVICE_UP = "carp promoted by 1048576 due to service recovery"


def nodes(lab: Lab, **global_: object) -> tuple[Node, Node]:
    h1 = lab.add_host("n1", "192.0.2.1/24")
    h2 = lab.add_host("n2", "192.0.2.2/24")
    settings = {"preempt": True, **global_}
    n1 = Node(lab, h1, [VhidSpec(vhid=1, advskew=0, addresses=(f"{VIP}/24",))], settings)
    n2 = Node(lab, h2, [VhidSpec(vhid=1, advskew=100, addresses=(f"{VIP}/24",))], settings)
    return n1, n2


def started(lab: Lab, **global_: object) -> tuple[Node, Node]:
    n1, n2 = nodes(lab, **global_)
    start_master_first(n1, n2)
    n1.host.wait_address(VIP)
    n1.wait_ready()
    n2.wait_ready()
    return n1, n2


def moved_to(new: Node, old: Node, start: tuple[int, int], timeout: float | None = None) -> None:
    """The role (and the address) went from ``old`` to ``new``: at the latest once
    ``new`` times out the master, however ``old`` let go (preempt, bow-out or timeout)."""
    timeout = timeout or bounds.takeover(new.master_down)
    new.wait_state("MASTER", timeout=timeout, start=start[0])
    old.wait_state("BACKUP", timeout=timeout, start=start[1])
    new.host.wait_address(VIP)
    old.host.wait_address(VIP, present=False)


def test_a_failing_check_moves_the_role_and_recovery_moves_it_back(lab: Lab) -> None:
    # No periodic runs: what moves the role here is `carpctl service-status` running them.
    n1, n2 = nodes(lab, service_interval=0)
    flag = lab.tmp / "web-is-up"
    flag.touch()
    n1.add_check("web", f"test -e {flag}")
    start_master_first(n1, n2)
    n1.wait_ready()

    flag.unlink()
    marks = (n2.mark(), n1.mark())
    rc, out, _ = n1.ctl("service-status")
    assert rc == EXIT_CHECK_FAILED and "web: FAILED" in out  # cron and monitoring see it
    n1.wait_log(re.escape(f"carpd: {SERVICE_DOWN}") + "$", timeout=bounds.COMMAND, start=marks[1])
    moved_to(n2, n1, marks)
    rc, out, _ = n1.ctl("status")
    assert "\tdemoted 1048576: service disruption 1048576" in out  # why n1 is BACKUP
    rc, out, _ = n1.ctl("service-status", "--json")
    assert rc == EXIT_CHECK_FAILED and json.loads(out)["failed"] == ["web"]

    flag.touch()
    marks = (n1.mark(), n2.mark())
    rc, out, _ = n1.ctl("service-status")
    assert rc == 0 and "all 1 service checks healthy" in out
    n1.wait_log(re.escape(f"carpd: {SERVICE_UP}") + "$", timeout=bounds.COMMAND, start=marks[0])
    moved_to(n1, n2, marks)
    assert n1.log is not None and n1.log.count(re.escape(SERVICE_DOWN)) == 1


def test_group_demotion_moves_the_role_and_back(lab: Lab) -> None:
    n1, n2 = started(lab)
    marks = (n2.mark(), n1.mark())
    rc, out, _ = n1.ctl("group", "carp", "carpdemote", "128")
    assert (rc, out.strip()) == (0, "carp: carp demote count 128")
    moved_to(n2, n1, marks)
    assert n1.ctl("group", "carp")[1].strip() == "carp: carp demote count 128"
    # OpenBSD keeps a group's count in 0..255: 128 more is refused and changes nothing.
    rc, _, err = n1.ctl("group", "carp", "carpdemote", "128")
    assert rc == 1 and "would leave the allowed range 0-255" in err
    rc, _, err = n1.ctl("group", "carp", "carpdemote", "129")
    assert rc == 1 and "allowed range is 1-128" in err
    rc, _, err = n1.ctl("group", "nosuch", "carpdemote")
    assert rc == 1 and "no interface group 'nosuch'" in err

    marks = (n1.mark(), n2.mark())
    rc, out, _ = n1.ctl("group", "carp", "-carpdemote", "128")
    assert (rc, out.strip()) == (0, "carp: carp demote count 0")
    moved_to(n1, n2, marks)


def test_maintenance_moves_the_role_and_survives_a_restart(lab: Lab) -> None:
    n1, n2 = started(lab)
    marks = (n2.mark(), n1.mark())
    rc, out, _ = n1.ctl("maintenance", "on")
    assert (rc, out.strip()) == (0, "maintenance mode on")
    moved_to(n2, n1, marks)

    assert n1.stop(signal.SIGTERM) == 0
    n1.start()
    n1.wait_ready()
    n1.wait_log("maintenance mode is on", timeout=bounds.REACTION)
    # The start-up demotion is lifted (no checks: at once), so only maintenance is left.
    n1.wait_log("first service check done", timeout=bounds.COMMAND)
    # preempt on, advskew 0: only demotion holds it. A BACKUP decides on preempting as it
    # takes in each advert (the counter and the state change in one step of its loop), so
    # one advert of n2 heard from here on is the whole test.
    n1.wait_counter("adverts_received", 1)
    assert n1.states() == {"carp1": "BACKUP"}
    status = json.loads(n1.ctl("status", "--json")[1])
    assert status["maintenance"] is True
    assert status["vhosts"][0]["demotion_reasons"] == [{"reason": "maintenance", "amount": 240}]

    marks = (n1.mark(), n2.mark())
    rc, out, _ = n1.ctl("maintenance", "off")
    assert (rc, out.strip()) == (0, "maintenance mode off")
    moved_to(n1, n2, marks)
    assert not (n1.state_dir / "maintenance").exists()


def test_link_down_on_one_carpdev_fails_over_every_vhid(lab: Lab) -> None:
    h1 = lab.add_host("n1", "192.0.2.1/24")
    h2 = lab.add_host("n2", "192.0.2.2/24")
    lab.add_interface(h1, "eth1", "br1", "198.51.100.1/24")
    lab.add_interface(h2, "eth1", "br1", "198.51.100.2/24")

    def specs(skew: int) -> list[VhidSpec]:
        return [
            VhidSpec(1, ("192.0.2.100/24",), advskew=skew),
            VhidSpec(2, ("198.51.100.100/24",), advskew=skew, carpdev="eth1"),
        ]

    n1 = Node(lab, h1, specs(0), {"preempt": True})
    n2 = Node(lab, h2, specs(100), {"preempt": True})
    start_master_first(n1, n2)
    n1.wait_ready()
    mark = n2.mark()
    lab.set_link(h1, False, "eth1")
    n1.wait_log(r"carp2: state transition: MASTER -> INIT \(carpdev down\)", timeout=bounds.COMMAND)
    # eth0 is fine, but the node-wide demotion hands carp1 over too: never half master.
    takeover = bounds.takeover(n2.master_down)
    n2.wait_state("MASTER", vhid="carp1", timeout=takeover, start=mark)
    n2.wait_state("MASTER", vhid="carp2", timeout=takeover, start=mark)
    assert n1.states() == {"carp1": "BACKUP", "carp2": "INIT"}
    assert "\tdemoted 240: carpdev eth1 down 240" in n1.ctl("status")[1]
    h1.wait_address("192.0.2.100", present=False)

    mark = n1.mark()
    lab.set_link(h1, True, "eth1")
    takeover = bounds.takeover(n1.master_down)
    n1.wait_state("MASTER", vhid="carp1", timeout=takeover, start=mark)
    n1.wait_state("MASTER", vhid="carp2", timeout=takeover, start=mark)


def test_startup_demotion_holds_until_the_first_checks_have_run(lab: Lab) -> None:
    n1, n2 = nodes(lab)
    n2.start()
    n2.wait_state("MASTER", timeout=bounds.first_master(n2.master_down))
    gate = lab.tmp / "checks-may-finish"
    n1.add_check("slow", f"while [ ! -e {gate} ]; do sleep 0.05; done")
    n1.start()
    n1.wait_ready()
    # advskew 0 and preempt on, yet it waits: each advert heard is a chance to preempt
    # (decided as it is taken in), so one of n2's is as good as any number.
    n1.wait_counter("adverts_received", 1)
    assert n1.states() == {"carp1": "BACKUP"}
    assert "\tdemoted 240: startup 240" in n1.ctl("status")[1]
    mark = n1.mark()
    gate.touch()
    done, _ = n1.wait_log("first service check done", timeout=bounds.COMMAND, start=mark)
    took, _ = n1.wait_state("MASTER", timeout=bounds.takeover(n1.master_down), start=mark)
    assert took > done


@pytest.mark.solo  # measures timings: run alone
def test_a_hanging_check_counts_as_failed_and_does_not_stall_the_daemon(lab: Lab) -> None:
    timeout = 2.0
    n1, n2 = nodes(lab, service_timeout=timeout)
    n1.add_check("web", "sleep 60")
    n2.start()
    n2.wait_state("MASTER", timeout=bounds.first_master(n2.master_down))
    n1.start()
    n1.wait_ready()
    status = n1.status()  # answers while the first check hangs: it has no result yet
    assert status["services"] is None
    assert [v["state"] for v in status["vhosts"]] == ["BACKUP"]
    n1.wait_log(re.escape(f"carpd: {SERVICE_DOWN}") + "$", timeout=timeout + bounds.COMMAND)
    # Demoted, it does not preempt n2 (advskew 0 and preempt on): decided on each advert
    # as it is taken in, so one of n2's, heard from here on, shows it.
    n1.wait_counter("adverts_received", 1)
    assert n1.states() == {"carp1": "BACKUP"} and n2.states() == {"carp1": "MASTER"}
    status = json.loads(n1.ctl("status", "--json")[1])
    [web] = status["services"]["results"]
    assert web["timed_out"] is True and web["ok"] is False


def test_a_demoted_carpd_loses_to_an_undemoted_ucarp(lab: Lab, ucarp_bin: str) -> None:
    from test_ucarp_interop import PASSWORD, VHID, Ucarp

    hu = lab.add_host("uc", "192.0.2.1/24")
    hc = lab.add_host("cd", "192.0.2.2/24")
    node = Node(lab, hc, [VhidSpec(VHID, (f"{VIP}/24",), password=PASSWORD, advskew=0)])
    node.start()
    node.wait_state("MASTER", timeout=bounds.first_master(node.master_down))
    node.wait_ready()
    # ucarp with preempt and a much worse advskew: it never takes over from carpd...
    ucarp = Ucarp(lab, hu, ucarp_bin, 200, preempt=True)
    ucarp.wait_state("BACKUP", bounds.START_UP)
    node.wait_counter("adverts_sent", 3)
    assert ucarp.log.count("Switching to state: MASTER") == 0
    # ...until carpd is demoted: ucarp ignores the demote byte, but not the folded skew.
    mark = node.mark()
    assert node.ctl("maintenance", "on")[0] == 0
    ucarp.log.wait_for(r"Putting MASTER down - preemption", bounds.takeover(node.master_down))
    node.wait_state("BACKUP", timeout=bounds.takeover(node.master_down), start=mark)
    node.host.wait_address(VIP, present=False)


def _ask_as(path: str, uid: int, gid: int, command: dict[str, Any]) -> dict[str, Any]:
    """Send one control request from a forked child running as uid:gid."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            # carpctl's own client: a refusing carpd answers at once and hangs up without
            # reading, and carpctl must read that reply even if its send failed.
            os.write(w, json.dumps(request(path, command, timeout=30)).encode())
        except BaseException as e:
            os.write(w, json.dumps({"ok": False, "error": f"client: {e}"}).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        data = f.read()
    os.waitpid(pid, 0)
    reply: dict[str, Any] = json.loads(data)
    return reply


@pytest.mark.parametrize(("gid", "allowed"), [(65534, True), (65533, False)])
def test_control_socket_admits_only_root_and_its_group(lab: Lab, gid: int, allowed: bool) -> None:
    """Two doors: the socket's mode (0660, root and the control group), and carpd's own
    check of the peer's credentials (SO_PEERCRED), which still holds when the mode has
    been widened by mistake."""
    host = lab.add_host("n1", "192.0.2.1/24")
    node = Node(lab, host, [VhidSpec(vhid=1)], {"control_group": "nogroup"})
    lab.tmp.chmod(0o711)  # let the unprivileged client reach the socket, not list the lab
    node.start()
    node.wait_ready()
    mode = node.socket.stat()
    assert (mode.st_mode & 0o777, mode.st_uid, mode.st_gid) == (0o660, 0, 65534)
    ask = {"command": "service-status"}
    if allowed:
        assert _ask_as(str(node.socket), 65534, gid, ask)["ok"] is True
    else:
        # The socket's mode stops it first: the connect itself is refused.
        refused = {"ok": False, "error": f"client: {node.socket}: Permission denied"}
        assert _ask_as(str(node.socket), 65534, gid, ask) == refused
        # The mode widened (an admin's chmod): carpd's own check refuses it all the same.
        mark = node.mark()
        node.socket.chmod(0o666)
        assert _ask_as(str(node.socket), 65534, gid, ask) == {
            "ok": False,
            "error": "permission denied",
        }
        node.wait_log(r"control: refused a request from uid 65534 ", bounds.COMMAND, mark)


@pytest.mark.solo  # measures a timing: run alone
def test_down_and_up_take_one_vhid_out_and_back(lab: Lab) -> None:
    n1, n2 = started(lab)
    # down: a bow-out, so the peer takes over at once, like `ifconfig carp0 down`.
    marks = (n2.mark(), n1.mark())
    stopped = time.time()
    reply = request(str(n1.socket), {"command": "down", "name": "carp1"})
    assert reply["ok"] and reply["result"]["state"] == "INIT"
    _, line = n2.wait_state("MASTER", timeout=n2.master_down, start=marks[0])
    took = line_time(line) - stopped
    # Two reactions in a row: n1's to the request (its bow-out advert), n2's to that.
    assert took < 2 * bounds.REACTION, f"handover after {took:.3f} s"
    n1.host.wait_address(VIP, present=False)
    assert n1.ctl("status")[1].startswith("carp1: INIT ")
    # up: back in the game; preempt on and advskew 0, so it takes the role back.
    marks = (n1.mark(), n2.mark())
    assert n1.ctl("up", "carp1")[0] == 0
    moved_to(n1, n2, marks)


def test_forced_state_sticks_without_preempt(lab: Lab) -> None:
    n1, n2 = started(lab, preempt=False)
    marks = (n2.mark(), n1.mark())
    rc, out, _ = n1.ctl("state", "carp1", "backup")  # the master bows out
    assert rc == 0 and out.startswith("carp1: BACKUP ")
    moved_to(n2, n1, marks)
    marks = (n1.mark(), n2.mark())
    assert n1.ctl("state", "carp1", "master")[0] == 0  # and takes the role back
    moved_to(n1, n2, marks)
    rc, _, err = n1.ctl("state", "carp9", "master")
    assert rc == 1 and "no vhid named 'carp9'" in err
    assert n1.ctl("state", "carp1", "init")[0] == 2


def test_service_interval_runs_the_checks_by_itself(lab: Lab) -> None:
    n1, n2 = nodes(lab, service_interval=0.5)
    flag = lab.tmp / "web-is-up"
    flag.touch()
    n1.add_check("web", f"test -e {flag}")
    start_master_first(n1, n2)
    marks = (n2.mark(), n1.mark())
    flag.unlink()  # no carpctl: the periodic run must notice
    n1.wait_log(re.escape(SERVICE_DOWN), timeout=0.5 + bounds.COMMAND, start=marks[1])
    moved_to(n2, n1, marks)


def test_service_checks_repeat_by_default_and_0_turns_it_off(lab: Lab) -> None:
    """As keepalived's track_script: no service_interval in the file, yet a service that
    stops is noticed by the next periodic run, at most the default interval later. Then
    service_interval = 0, reloaded: no more runs, so a service that is back goes unseen."""
    n1, n2 = nodes(lab)
    flag = lab.tmp / "web-is-up"
    flag.touch()
    runs = lab.tmp / "runs"
    n1.add_check("web", f"test -e {flag}; ok=$?; echo run >> {runs}; exit $ok")
    start_master_first(n1, n2)
    n1.wait_ready()
    marks = (n2.mark(), n1.mark())
    flag.unlink()
    every = GlobalConfig().service_interval
    n1.wait_log(re.escape(SERVICE_DOWN), timeout=every + bounds.COMMAND, start=marks[1])
    moved_to(n2, n1, marks)

    n1.global_["service_interval"] = 0
    n1.write_config()
    before = len(runs.read_text().splitlines())
    assert n1.ctl("reload")[0] == 0
    # The changed interval restarts the checks with one run now (still failing).
    deadline = time.monotonic() + bounds.COMMAND
    while len(runs.read_text().splitlines()) == before:
        assert time.monotonic() < deadline, "no check run after the reload"
        time.sleep(0.05)
    after = len(runs.read_text().splitlines())
    flag.touch()  # healthy again, but only a run would see it
    # Had the reload left the runs on, the next would start at most one default interval
    # after the run just seen, and its line reach the file within a command's time: wait
    # that long (n1 counts n2's adverts as the clock). No run, n1 stays demoted.
    adverts = math.ceil((every + bounds.COMMAND) / n2.vhids[0].advert_interval) + 1
    n1.wait_counter(
        "adverts_received",
        adverts,
        timeout=adverts * n2.vhids[0].advert_interval + bounds.COMMAND,
    )
    assert len(runs.read_text().splitlines()) == after
    assert n1.states() == {"carp1": "BACKUP"}


def test_advert_send_errors_demote_the_node(lab: Lab) -> None:
    n1, n2 = started(lab)
    marks = (n1.mark(), n2.mark())
    # Inside n1's own namespace: make every CARP send fail (EPERM), as a broken NIC would.
    rules = """
        table inet lab {
            chain out {
                type filter hook output priority 0;
                meta l4proto 112 drop
            }
        }
    """
    r = n1.host.run(["nft", "-f", "-"], input=rules)
    assert r.returncode == 0, r.stderr
    # Three failed sends demote n1; n2 times out its silent master and n1, hearing it,
    # yields: all within n2's master-down interval and one advert.
    bound = bounds.takeover(n2.master_down) + n2.vhids[0].advbase
    n1.wait_log(r"carp: send errors on carp1", timeout=bound, start=marks[0])
    n2.wait_state("MASTER", timeout=bound, start=marks[1])
    n1.wait_state("BACKUP", timeout=bound, start=marks[0])
    assert "\tdemoted 240: send errors 240" in n1.ctl("status")[1]
    assert n1.host.run(["nft", "delete table inet lab"]).returncode == 0


def test_a_reload_that_adds_a_group_makes_it_usable(lab: Lab) -> None:
    """Groups are derived from the configuration: a SIGHUP that names a new one declares
    it, and one no vhid names any more is gone."""
    host = lab.add_host("n1", "192.0.2.1/24")
    node = Node(lab, host, [VhidSpec(vhid=1, extra={"groups": ["lan"]})])
    node.start()
    node.wait_ready()
    rc, _, err = node.ctl("group", "web", "carpdemote", "1")
    assert rc == 1 and "no interface group 'web' (groups: carp, lan)" in err
    node.vhids[0].extra["groups"] = ["web"]
    node.write_config()
    mark = node.mark()
    node.signal(signal.SIGHUP)
    node.wait_log(r"configuration reloaded: 0 vhid\(s\) unchanged, 1", bounds.COMMAND, mark)
    rc, out, _ = node.ctl("group", "web", "carpdemote", "1")
    assert (rc, out.strip()) == (0, "web: carp demote count 1")
    rc, _, err = node.ctl("group", "lan", "carpdemote", "1")
    assert rc == 1 and "no interface group 'lan' (groups: carp, web)" in err
