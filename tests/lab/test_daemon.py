"""The daemon as a process: hooks, the ucarp command line, refusals before the network."""

from __future__ import annotations

import signal
import subprocess
import textwrap

import pytest

from carpd_lab import bounds
from carpd_lab.cluster import Node, VhidSpec
from carpd_lab.netlab import Lab, carpd_argv


def test_hooks_run_with_ucarp_arguments_and_carp_environment(lab: Lab) -> None:
    host = lab.add_host("n1", "192.0.2.1/24", "2001:db8::1/64")
    record = lab.tmp / "hooks.log"
    hook = lab.tmp / "hook.sh"
    hook.write_text(
        textwrap.dedent(f"""\
        #!/bin/sh
        echo "$(basename "$0") args=$* vhid=$CARP_VHID state=$CARP_STATE \\
        if=$CARP_INTERFACE addrs=$CARP_ADDRESSES" >> {record}
        echo "  from $CARP_PREVIOUS_STATE: $CARP_REASON" >> {record}
        echo "hello from the hook"
        """)
    )
    hook.chmod(0o755)
    up = lab.tmp / "up"
    down = lab.tmp / "down"
    up.symlink_to(hook)
    down.symlink_to(hook)
    spec = VhidSpec(
        vhid=3,
        addresses=("192.0.2.100/24", "2001:db8::100/64"),
        extra={"up": str(up), "down": str(down), "xparam": "extra"},
    )
    node = Node(lab, host, [spec])
    node.start()
    node.wait_state("MASTER", timeout=bounds.first_master(node.master_down))
    node.wait_log(r"carp3: up hook: hello from the hook", timeout=bounds.COMMAND)
    node.stop(signal.SIGTERM)
    lines = record.read_text().splitlines()
    assert lines == [
        "down args=eth0 192.0.2.100 extra vhid=3 state=BACKUP if=eth0 "
        "addrs=192.0.2.100 2001:db8::100",
        "  from INIT: initialization complete",
        "up args=eth0 192.0.2.100 extra vhid=3 state=MASTER if=eth0 "
        "addrs=192.0.2.100 2001:db8::100",
        "  from BACKUP: master timed out",
        # Stopped: the vhid leaves the group (INIT), it does not become a BACKUP.
        "down args=eth0 192.0.2.100 extra vhid=3 state=INIT if=eth0 "
        "addrs=192.0.2.100 2001:db8::100",
        "  from MASTER: shutdown",
    ]


@pytest.mark.solo  # measures timings: run alone
def test_a_hanging_hook_is_killed_and_does_not_stop_adverts(lab: Lab) -> None:
    host = lab.add_host("n1", "192.0.2.1/24")
    hang = lab.tmp / "hang.sh"
    hang.write_text("#!/bin/sh\nsleep 60\n")
    hang.chmod(0o755)
    node = Node(lab, host, [VhidSpec(vhid=4, extra={"up": str(hang)})], {"hook_timeout": 1.0})
    node.start()
    node.wait_state("MASTER", timeout=bounds.first_master(node.master_down))
    # Adverts go on while the hook hangs: two of them before a backup would time out.
    node.wait_counter("adverts_sent", 2, timeout=bounds.carp_master_down(1, 0))
    node.wait_log(r"carp4: up hook \S+ killed after 1.0 s", timeout=1.0 + bounds.COMMAND)


def test_ucarp_command_line_runs_the_same_protocol(lab: Lab) -> None:
    host = lab.add_host("n1", "192.0.2.1/24")
    node = Node(lab, host, [])
    args = [
        "-i",
        "eth0",
        "-s",
        "192.0.2.1",
        "-v",
        "9",
        "-p",
        "secret",
        "-a",
        "192.0.2.100",
        "-k",
        "10",
        "-f",
        "none",
        "--socket",
        str(node.socket),
    ]
    node.start(args=args)
    node.wait_state("MASTER", timeout=bounds.first_master(bounds.carp_master_down(1, 10)))
    assert node.states() == {"carp0": "MASTER"}
    node.host.wait_address("192.0.2.100")
    assert node.stop(signal.SIGTERM) == 0
    assert not node.host.has_address("192.0.2.100")


def test_unknown_carpdev_is_refused_before_the_network_is_touched(lab: Lab) -> None:
    host = lab.add_host("n1", "192.0.2.1/24")
    config = lab.tmp / "bad.toml"
    config.write_text(
        textwrap.dedent(f"""\
        [global]
        control_socket = "{lab.tmp / "bad.sock"}"
        [[carp]]
        vhid = 1
        carpdev = "nosuch0"
        pass = "secret"
        addresses = ["192.0.2.100/24"]
        """)
    )
    r = subprocess.run(
        ["ip", "netns", "exec", host.ns, *carpd_argv("--config", str(config))],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert r.returncode == 2
    assert f"{config}: carp1: carpdev = 'nosuch0': no such interface" in r.stderr
    assert not (lab.tmp / "bad.sock").exists()


def test_unknown_control_group_is_refused_before_the_network_is_touched(lab: Lab) -> None:
    host = lab.add_host("n1", "192.0.2.1/24")
    node = Node(lab, host, [VhidSpec(vhid=1)], {"control_group": "nosuchgroup"})
    node.write_config()
    r = subprocess.run(
        ["ip", "netns", "exec", host.ns, *carpd_argv("--config", str(node.config))],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert (r.returncode, r.stderr.strip()) == (
        2,
        f"carpd: {node.config}: global.control_group = 'nosuchgroup': no such group",
    )
    assert not node.socket.exists()
    assert not host.has_address("192.0.2.100")


def test_missing_capabilities_are_named(lab: Lab) -> None:
    host = lab.add_host("n1", "192.0.2.1/24")
    node = Node(lab, host, [VhidSpec(vhid=1)])
    node.write_config()
    drop = ["setpriv", "--bounding-set=-net_raw,-net_admin", "--inh-caps=-net_raw,-net_admin"]
    r = subprocess.run(
        ["ip", "netns", "exec", host.ns, *drop, *carpd_argv("--config", str(node.config))],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert r.returncode == 1
    assert "missing CAP_NET_RAW and CAP_NET_ADMIN" in r.stderr
    assert not node.socket.exists()


def test_a_control_group_without_cap_chown_is_named_before_the_network_is_touched(
    lab: Lab,
) -> None:
    """Root without CAP_CHOWN (a unit's CapabilityBoundingSet) may not give the control
    socket a group it is not in: found running the packaged unit under real systemd, where
    carpd crashed at the socket's chown after its vhids had started."""
    host = lab.add_host("n1", "192.0.2.1/24")
    node = Node(lab, host, [VhidSpec(vhid=1)], global_={"control_group": "daemon"})
    node.write_config()
    drop = ["setpriv", "--bounding-set=-chown", "--inh-caps=-chown"]
    r = subprocess.run(
        ["ip", "netns", "exec", host.ns, *drop, *carpd_argv("--config", str(node.config))],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert r.returncode == 1, r.stderr
    assert "missing CAP_CHOWN" in r.stderr and "control_group" in r.stderr
    assert not node.socket.exists()
    assert not host.has_address("192.0.2.100")
