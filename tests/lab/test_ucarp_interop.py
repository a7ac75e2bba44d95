"""carpd and a real ucarp (Debian package) on one vhid with one password."""

from __future__ import annotations

import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from carpd_lab import bounds
from carpd_lab.cluster import Node, VhidSpec
from carpd_lab.netlab import Host, Lab, LogWatch

VHID, PASSWORD, VIP = 7, "secret", "192.0.2.100"


def scripts(lab: Lab) -> tuple[Path, Path]:
    up, down = lab.tmp / "vip-up.sh", lab.tmp / "vip-down.sh"
    up.write_text(
        textwrap.dedent(f"""\
        #!/bin/sh
        ip addr add {VIP}/24 dev "$1"
        """)
    )
    down.write_text(
        textwrap.dedent(f"""\
        #!/bin/sh
        ip addr del {VIP}/24 dev "$1" 2>/dev/null
        exit 0
        """)
    )
    for p in (up, down):
        p.chmod(0o755)
    return up, down


class Ucarp:
    def __init__(self, lab: Lab, host: Host, binary: str, advskew: int, preempt: bool) -> None:
        up, down = scripts(lab)
        argv = [
            binary,
            "-i",
            "eth0",
            "-s",
            host.ipv4.split("/")[0] if host.ipv4 else "",
            "-v",
            str(VHID),
            "-p",
            PASSWORD,
            "-a",
            VIP,
            "-u",
            str(up),
            "-d",
            str(down),
            "-b",
            "1",
            "-k",
            str(advskew),
            "-f",
            "none",
        ]
        if preempt:
            argv.append("-P")
        self.lab = lab
        self.proc = host.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.proc.stdout is not None
        self.log = LogWatch(self.proc.stdout)

    def wait_state(self, state: str, timeout: float, start: int = 0) -> None:
        self.log.wait_for(rf"Switching to state: {state}", timeout, start)


def setup(lab: Lab, ucarp_bin: str, ucarp_skew: int, carpd_skew: int) -> tuple[Ucarp, Node]:
    """The preferred side (lower advskew) starts alone until MASTER, then the other one
    until BACKUP: started together, their start-up times would pick the winner."""
    hu = lab.add_host("uc", "192.0.2.1/24")
    hc = lab.add_host("cd", "192.0.2.2/24")
    spec = VhidSpec(vhid=VHID, password=PASSWORD, advskew=carpd_skew, addresses=(f"{VIP}/24",))
    node = Node(lab, hc, [spec])
    if ucarp_skew < carpd_skew:
        ucarp = Ucarp(lab, hu, ucarp_bin, ucarp_skew, preempt=False)
        # ucarp looks at its timer only when poll() returns (bounds.ucarp_takeover).
        ucarp.wait_state("MASTER", bounds.START_UP + bounds.ucarp_takeover(1, ucarp_skew))
        node.start()
        node.wait_state("BACKUP", timeout=bounds.START_UP)
    else:
        node.start()
        node.wait_state("MASTER", timeout=bounds.first_master(node.master_down))
        ucarp = Ucarp(lab, hu, ucarp_bin, ucarp_skew, preempt=False)
        ucarp.wait_state("BACKUP", bounds.START_UP)
    node.wait_ready()
    return ucarp, node


def assert_no_bad_hmac(ucarp: Ucarp, node: Node) -> None:
    assert ucarp.log.count("Bad digest") == 0, ucarp.log.lines
    assert node.log is not None and node.log.count("bad_hmac") == 0
    assert "bad_hmac" not in node.status()["vhosts"][0]["counters"]["dropped"]


def test_ucarp_preferred_one_master_then_carpd_takes_over_after_kill_9(
    lab: Lab, ucarp_bin: str
) -> None:
    ucarp, node = setup(lab, ucarp_bin, ucarp_skew=0, carpd_skew=100)
    mark = node.mark()
    # Seven adverts heard: past two of carpd's master-down intervals, still one master.
    node.wait_counter("adverts_received", 7)
    assert node.states() == {"carp7": "BACKUP"}
    assert ucarp.log.count("Switching to state: MASTER") == 1
    assert_no_bad_hmac(ucarp, node)
    lab.kill(ucarp.proc, signal.SIGKILL)
    node.wait_state("MASTER", timeout=bounds.takeover(node.master_down), start=mark)
    node.host.wait_address(VIP)


def test_carpd_preferred_one_master_then_ucarp_takes_over_after_kill_9(
    lab: Lab, ucarp_bin: str
) -> None:
    ucarp, node = setup(lab, ucarp_bin, ucarp_skew=100, carpd_skew=0)
    node.wait_counter("adverts_sent", 7)
    assert ucarp.log.count("Switching to state: MASTER") == 0
    assert node.states() == {"carp7": "MASTER"}
    assert_no_bad_hmac(ucarp, node)
    mark = ucarp.log.mark()
    node.signal(signal.SIGKILL)
    ucarp.wait_state("MASTER", bounds.ucarp_takeover(1, 100), start=mark)


def test_graceful_stop_of_carpd_hands_over_to_ucarp_at_once(lab: Lab, ucarp_bin: str) -> None:
    ucarp, node = setup(lab, ucarp_bin, 100, 0)
    mark = ucarp.log.mark()
    node.stop(signal.SIGTERM)
    # ucarp reads the infinite advert as "master will time out" and takes over at once.
    heard = bounds.UCARP_CAPTURE + bounds.REACTION
    ucarp.log.wait_for(r"Putting MASTER DOWN \(going to time out\)", heard, mark)
    ucarp.wait_state("MASTER", timeout=heard, start=mark)


def test_ucarp_with_preempt_takes_over_from_a_slower_carpd(lab: Lab, ucarp_bin: str) -> None:
    hu = lab.add_host("uc", "192.0.2.1/24")
    hc = lab.add_host("cd", "192.0.2.2/24")
    node = Node(
        lab, hc, [VhidSpec(vhid=VHID, password=PASSWORD, advskew=100, addresses=(f"{VIP}/24",))]
    )
    node.start()
    node.wait_state("MASTER", timeout=bounds.first_master(node.master_down))
    mark = node.mark()
    ucarp = Ucarp(lab, hu, ucarp_bin, 0, preempt=True)
    # ucarp preempts on carpd's next advert (advskew 100), and carpd yields on ucarp's first.
    heard = bounds.carp_interval(1, 100) + bounds.UCARP_CAPTURE + bounds.REACTION
    ucarp.log.wait_for(r"Putting MASTER down - preemption", bounds.START_UP + heard)
    node.wait_state("BACKUP", timeout=1 + bounds.REACTION, start=mark)
    node.host.wait_address(VIP, present=False)
    assert_no_bad_hmac(ucarp, node)


@pytest.mark.parametrize(
    ("carpd_ip", "ucarp_ip", "winner"),
    [
        # Lower as a big-endian number, but higher as the little-endian s_addr ucarp
        # compares: ucarp keeps the role, and carpd must agree.
        ("192.0.2.10/24", "198.51.100.1/24", "ucarp"),
        ("198.51.100.1/24", "192.0.2.10/24", "carpd"),
    ],
)
def test_equal_masters_after_a_partition_agree_on_one_like_ucarp(
    lab: Lab, ucarp_bin: str, carpd_ip: str, ucarp_ip: str, winner: str
) -> None:
    hu = lab.add_host("uc", ucarp_ip)
    hc = lab.add_host("cd", carpd_ip)
    ucarp = Ucarp(lab, hu, ucarp_bin, 0, preempt=False)
    ucarp.wait_state("MASTER", bounds.START_UP + bounds.ucarp_takeover(1, 0))
    lab.isolate(hu)
    lab.isolate(hc)  # partitioned: carpd hears nobody and becomes MASTER too
    node = Node(lab, hc, [VhidSpec(vhid=VHID, password=PASSWORD, addresses=(f"{VIP}/24",))])
    node.start()
    node.wait_state("MASTER", timeout=bounds.first_master(node.master_down))
    mark, umark = node.mark(), ucarp.log.mark()
    lab.isolate(hu, False)
    lab.isolate(hc, False)  # healed: two equal masters hear each other
    if winner == "ucarp":
        node.wait_log(
            r"state transition: MASTER -> BACKUP \(preferred master advertised \(tie\)\)",
            timeout=1 + bounds.REACTION,  # ucarp's next advert
            start=mark,
        )
        node.wait_counter("adverts_received", 4)
        assert node.states() == {"carp7": "BACKUP"}
        assert not [line for line in ucarp.log.lines[umark:] if "Switching to state" in line]
    else:
        # carpd's next advert, as ucarp's capture hands it over.
        heard = 1 + bounds.UCARP_CAPTURE + bounds.REACTION
        ucarp.log.wait_for(r"Preferred master advertised: going back to BACKUP", heard, umark)
        node.wait_counter("adverts_sent", 4)
        assert node.states() == {"carp7": "MASTER"}
        assert node.log is not None
        assert not [line for line in node.log.lines[mark:] if "state transition" in line]
    assert_no_bad_hmac(ucarp, node)
