"""Measure what a client sees: ping the virtual address every 10 ms, find the gap; watch
the adverts and ARP that reach a host."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from dataclasses import dataclass

from carpd_lab import bounds
from carpd_lab.netlab import Host, LogWatch

_REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)")


@dataclass
class Outage:
    longest_gap_ms: float
    replies: int
    sent: int


class Pinger:
    """ping -D -i 0.01 from a lab host; the longest silence between replies is the outage.
    Below 10 ms, carpd_lab.echo: ping sends one probe per 10 ms while they go unanswered."""

    def __init__(self, host: Host, target: str, interval: float = 0.01) -> None:
        self.host = host
        self.interval = interval
        argv = ["ping", "-D", "-n", "-i", str(interval), "-W", "1", target]
        if interval < 0.01:
            argv = [sys.executable, "-m", "carpd_lab.echo", target, str(interval)]
        self.proc = host.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.proc.stdout is not None
        self.log = LogWatch(self.proc.stdout)

    def wait_reply(self, timeout: float = 5.0) -> None:
        self.log.wait_for(r"bytes from", timeout)

    def mark(self) -> int:
        return self.log.mark()

    def stop(self, since: int = 0) -> Outage:
        self.host.lab.kill(self.proc, 2)  # SIGINT: let ping print its summary
        self.proc.wait(timeout=5)
        self.log.join()
        times: list[float] = []
        seqs: list[int] = []
        for line in self.log.lines[since:]:
            m = _REPLY.match(line)
            if m:
                times.append(float(m.group(1)))
                seqs.append(int(m.group(2)))
        gaps = [b - a for a, b in itertools.pairwise(times)]
        sent = (max(seqs) - min(seqs) + 1) if seqs else 0
        return Outage(max(gaps, default=0.0) * 1000, len(times), sent)


def sniff(host: Host, *args: str) -> LogWatch:
    """carpd_lab.sniff on the host's eth0, once it listens: one line per CARP or VRRP
    advert and per ARP that reaches the host (``--times`` stamps each line)."""
    proc = host.spawn(
        [sys.executable, "-m", "carpd_lab.sniff", "eth0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    watch = LogWatch(proc.stdout)
    watch.wait_for("sniffing", bounds.START_UP)
    return watch
