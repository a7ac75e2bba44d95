"""LinkWatcher inside a lab namespace: one event per change of a link's usability."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys

from carpd_lab.netlab import Host, Lab, LogWatch

# Runs inside the namespace: argv = [-c, mode, name]. One line per event; SIGTERM closes
# the watcher, which ends the event stream, and the script exits 0.
WATCH = """
import asyncio, signal, subprocess, sys
from carpd.linux.linkwatch import AddressEvent, LinkWatcher, link_is_up

async def main(mode: str, name: str) -> None:
    watcher = LinkWatcher(rcvbuf=1) if mode == "overflow" else LinkWatcher()
    await watcher.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def closer() -> None:
        await stop.wait()
        await watcher.close()

    task = asyncio.create_task(closer())
    print("initial", watcher.is_up(name), watcher.is_up("nosuch0"),
          await link_is_up(name), await link_is_up("nosuch0"), flush=True)
    if mode == "overflow":
        # The loop is blocked while the link flaps: the tiny receive buffer overflows.
        for state in ["down", "up"] * 20 + ["down"]:
            subprocess.run(["ip", "link", "set", name, state], check=True)
        print("flapped", flush=True)
    async for ev in watcher.events():
        if isinstance(ev, AddressEvent):
            print(f"address {ev.index} {ev.address} present={ev.present} "
                  f"seen={watcher.has_address(ev.index, ev.address)}", flush=True)
            continue
        print(f"event {ev.name} up={ev.up} exists={ev.exists} overflows={watcher.overflows}",
              flush=True)
    await task
    print("closed", flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def watch(
    lab: Lab, host: Host, name: str, mode: str = "watch"
) -> tuple[subprocess.Popen[bytes], LogWatch]:
    proc = host.spawn(
        [sys.executable, "-c", WATCH, mode, name],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    log = LogWatch(proc.stdout, echo=sys.stderr, prefix=f"[{host.name}] ")
    log.wait_for(r"^initial ", timeout=15)
    return proc, log


def next_event(log: LogWatch, name: str, start: int) -> tuple[int, str]:
    """The next event line of interface ``name`` from line ``start`` on, within 1 s."""
    i, line = log.wait_for(rf"^event {name} ", timeout=1.0, start=start)
    return i + 1, line


def stop(lab: Lab, proc: subprocess.Popen[bytes], log: LogWatch) -> None:
    lab.kill(proc, signal.SIGTERM)
    assert proc.wait(timeout=5) == 0
    log.join()
    assert log.lines[-1] == "closed"


def switch_ip(lab: Lab, *args: str) -> None:
    subprocess.run(["ip", "netns", "exec", lab.switch, "ip", "link", *args], check=True)


def test_each_change_of_carrier_or_admin_state_is_one_event(lab: Lab) -> None:
    host = lab.add_host("a", "192.0.2.1/24")
    proc, log = watch(lab, host, "eth0")
    assert log.lines[0] == "initial True None True None"
    at = log.mark()
    switch_ip(lab, "set", host.port, "down")  # the peer: eth0 stays UP, loses its carrier
    at, line = next_event(log, "eth0", at)
    assert line == "event eth0 up=False exists=True overflows=0"
    switch_ip(lab, "set", host.port, "up")
    at, line = next_event(log, "eth0", at)
    assert line == "event eth0 up=True exists=True overflows=0"
    lab.set_link(host, False)
    at, line = next_event(log, "eth0", at)
    assert line == "event eth0 up=False exists=True overflows=0"
    lab.set_link(host, True)  # carrier comes before operstate UP: still one event
    at, line = next_event(log, "eth0", at)
    assert line == "event eth0 up=True exists=True overflows=0"
    stop(lab, proc, log)
    assert [x for x in log.lines if x.startswith("event")] == [
        f"event eth0 up={up} exists=True overflows=0" for up in (False, True, False, True)
    ]


def test_leaving_a_bridge_is_no_event_and_deletion_is_one(lab: Lab) -> None:
    host = lab.add_host("a", "192.0.2.1/24")
    # Watch the host's port in the switch namespace, where the bridge is.
    switch = Host(lab, "sw", lab.switch, None, None)
    proc, log = watch(lab, switch, host.port)
    assert log.lines[0] == "initial True None True None"
    at = log.mark()
    # The bridge says RTM_DELLINK (family AF_BRIDGE) for its port: not a deletion.
    switch_ip(lab, "set", host.port, "nomaster")
    lab.set_link(host, False)  # the next event of the port is this one
    at, line = next_event(log, host.port, at)
    assert line == f"event {host.port} up=False exists=True overflows=0"
    switch_ip(lab, "del", host.port)
    at, line = next_event(log, host.port, at)
    assert line == f"event {host.port} up=False exists=False overflows=0"
    stop(lab, proc, log)
    assert log.count(rf"^event {host.port} ") == 2


def test_lost_events_are_made_up_for_by_a_new_dump(lab: Lab) -> None:
    host = lab.add_host("a", "192.0.2.1/24")
    proc, log = watch(lab, host, "eth0", mode="overflow")
    # The link flapped 41 times while nobody read, and ended down; the socket overflowed
    # and died. The watcher dumps the links on a new socket and goes on from there.
    log.wait_for(r"^flapped$", timeout=10)
    lab.set_link(host, True)
    log.wait_for(r"^event eth0 up=True exists=True overflows=1$", timeout=1.0)
    stop(lab, proc, log)
    events = [x for x in log.lines if x.startswith("event")]
    assert events[-1] == "event eth0 up=True exists=True overflows=1"
    assert all(a.split()[2] != b.split()[2] for a, b in itertools.pairwise(events))


def test_each_address_added_or_removed_is_one_event_and_a_renewal_none(lab: Lab) -> None:
    """The same subscription hears addresses: one event for an add, none for a lifetime
    renewal of the same address (another RTM_NEWADDR), one for its removal."""
    host = lab.add_host("a", "192.0.2.1/24")
    proc, log = watch(lab, host, "eth0")
    at = log.mark()
    host.check("ip", "addr", "add", "192.0.2.50/24", "dev", "eth0", "valid_lft", "60",
               "preferred_lft", "60")  # fmt: skip
    i, added = log.wait_for(r"^address \d+ 192\.0\.2\.50/24 ", timeout=1.0, start=at)
    assert added.endswith(" present=True seen=True")
    host.check(
        "ip",
        "addr",
        "change",
        "192.0.2.50/24",
        "dev",
        "eth0",
        "valid_lft",
        "90",
        "preferred_lft",
        "90",
    )  # a renewal
    host.check("ip", "addr", "del", "192.0.2.50/24", "dev", "eth0")
    _, removed = log.wait_for(r"^address \d+ 192\.0\.2\.50/24 ", timeout=1.0, start=i + 1)
    assert removed.endswith(" present=False seen=False")
    stop(lab, proc, log)
    assert len([x for x in log.lines if x.startswith("address ")]) == 2
