"""The ucarp command line as a ucarp user runs it: syslog by default (and no /dev/log),
a bare -a, and an up-script that adds the address again as ``$2/24``."""

from __future__ import annotations

import signal
import sys
import textwrap

from carpd_lab import bounds
from carpd_lab.cluster import Node
from carpd_lab.netlab import Host, Lab

VIP = "192.0.2.107"

# A mount namespace of carpd's own in which /dev/log takes no lines: absent, or covered
# by /dev/null (connect(2) to it is refused), whatever the machine running the lab has.
NO_DEV_LOG = (
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    '[ ! -e /dev/log ] || mount --bind /dev/null /dev/log; exec "$@"',
    "no-dev-log",
)


def ucarp_args(node: Node, *more: str) -> list[str]:
    assert node.host.ipv4 is not None
    own = node.host.ipv4.split("/")[0]
    args = ["-i", "eth0", "-s", own, "-v", "9", "-p", "secret", *more]
    return [*args, "--socket", str(node.socket)]


def up_script(lab: Lab) -> str:
    """ucarp's usual up-script: the address again, in the carpdev's subnet."""
    path = lab.tmp / "vip-up.sh"
    path.write_text(
        textwrap.dedent("""\
        #!/bin/sh
        ip addr add "$2/24" dev "$1" 2>&1
        echo "up-script done"
        """)
    )
    path.chmod(0o755)
    return str(path)


def entries(host: Host, ip: str) -> list[str]:
    return sorted(a for a in host.addresses() if a.split("/")[0] == ip)


def test_without_dev_log_syslog_is_said_once_and_every_line_goes_to_stderr(lab: Lab) -> None:
    node = Node(lab, lab.add_host("n1", "192.0.2.1/24"), [])
    # No -f: syslog, facility daemon, as with ucarp.
    node.start(args=ucarp_args(node, "-a", VIP), wrap=NO_DEV_LOG)
    node.wait_state("MASTER", timeout=bounds.first_master(bounds.carp_master_down(1, 0)))
    assert node.stop(signal.SIGTERM) == 0
    assert node.log is not None
    text = "\n".join(node.log.lines)
    assert "Logging error" not in text and "Traceback" not in text, text
    assert node.log.count(r"syslog unavailable \(/dev/log: .*\), logging to stderr only") == 1
    assert node.log.count(r"carp0: state transition: BACKUP -> MASTER") == 1, text


def test_a_bare_address_takes_the_subnet_and_no_entry_of_it_stays_on_leaving_master(
    lab: Lab,
) -> None:
    n1 = Node(lab, lab.add_host("n1", "192.0.2.1/24"), [])
    n2 = Node(lab, lab.add_host("n2", "192.0.2.2/24"), [])
    up = up_script(lab)
    n1.start(args=ucarp_args(n1, "-a", VIP, "-u", up, "-k", "100", "-f", "none"))
    n1.wait_state("MASTER", timeout=bounds.first_master(bounds.carp_master_down(1, 100)))
    assert n1.log is not None
    assert n1.log.count(r"carp0: 192\.0\.2\.107 takes /24 from eth0's 192\.0\.2\.1/24") == 1
    n1.wait_log(r"carp0: up hook: up-script done", timeout=bounds.COMMAND)
    # carpd's own entry is the script's: one entry (it was a /32 beside the script's /24).
    assert entries(n1.host, VIP) == [f"{VIP}/24"]
    # A faster peer with preempt takes over: n1 leaves MASTER for BACKUP.
    mark = n1.mark()
    n2.start(args=ucarp_args(n2, "-a", VIP, "-k", "0", "-P", "-f", "none"))
    n2.wait_state("MASTER", timeout=bounds.first_master(bounds.carp_master_down(1, 0)))
    n1.wait_state("BACKUP", timeout=bounds.REACTION + bounds.carp_interval(1, 0), start=mark)
    n1.host.wait_address(VIP, present=False)
    n2.host.wait_address(VIP)  # a host step after n2's MASTER line (its advert goes first)
    assert entries(n2.host, VIP) == [f"{VIP}/24"]


def test_leaving_master_removes_the_address_in_every_prefix_an_up_script_gave_it(
    lab: Lab,
) -> None:
    node = Node(lab, lab.add_host("n1", "192.0.2.1/24"), [])
    up = up_script(lab)
    # The prefix given: carpd adds /32, the up-script /24 beside it.
    node.start(args=ucarp_args(node, "-a", f"{VIP}/32", "-u", up, "-f", "none"))
    node.wait_state("MASTER", timeout=bounds.first_master(bounds.carp_master_down(1, 0)))
    node.wait_log(r"carp0: up hook: up-script done", timeout=bounds.COMMAND)
    node.wait_ready()
    assert entries(node.host, VIP) == [f"{VIP}/24", f"{VIP}/32"]
    rc, _, err = node.ctl("down", "carp0")
    assert rc == 0, err
    node.host.wait_address(VIP, present=False)
    assert entries(node.host, "192.0.2.1") == ["192.0.2.1/24"]  # the node's own stays


REMOVE = """
import asyncio, ipaddress, sys
from carpd.linux.netlink import Netlink

async def main():
    netlink = Netlink()
    link = await netlink.link("eth0")
    for text in sys.argv[1:]:
        iface = ipaddress.ip_interface(text)
        print(text, await netlink.remove_address(link.index, iface, any_prefix=True))
    await netlink.close()

asyncio.run(main())
"""


def test_netlink_removes_every_prefix_of_an_address_and_nothing_else(lab: Lab) -> None:
    host = lab.add_host("n1", "192.0.2.1/24", "2001:db8::1/64")
    for a in (f"{VIP}/32", f"{VIP}/24", f"{VIP}/28", "192.0.2.50/24"):
        host.check("ip", "addr", "add", a, "dev", "eth0")
    # IPv6 keeps one entry per address: removed in the prefix it has, not the one asked.
    host.check("ip", "addr", "add", "2001:db8::7/64", "dev", "eth0", "nodad")
    asked = [f"{VIP}/32", "2001:db8::7/128", "192.0.2.99/24", "2001:db8::9/128"]
    out = host.check(sys.executable, "-c", REMOVE, *asked)
    assert out.split("\n")[:-1] == [
        f"{VIP}/32 True",
        "2001:db8::7/128 True",
        "192.0.2.99/24 False",  # was not there
        "2001:db8::9/128 False",
    ]
    left = [a for a in host.addresses() if not a.startswith("fe80:")]
    assert sorted(left) == ["192.0.2.1/24", "192.0.2.50/24", "2001:db8::1/64"]
