"""How long the lab may wait for something: the protocol's bound plus a named margin.

Two rules keep the lab tests deterministic on a cold, busy 2-core machine:

- Never start two daemons together and then assert which one was never MASTER: their
  start-up times race each other's master-down timers. Start the one that must win, wait
  until it is MASTER, then the others (``carpd_lab.cluster.start_master_first``).
- Every time limit is a protocol bound (the master-down interval, the advert interval)
  plus one of the margins below, which say what they cover. A margin never hides a
  daemon that is late under load: that is a carpd bug.
"""

from __future__ import annotations

# From spawn until a daemon speaks its protocol: interpreter, imports, config, sockets.
# About 0.3 s on an idle machine; a cold page cache and two busy cores make it several
# times that. Only ever a wait's limit, never a measured claim.
START_UP = 5.0

# From an event (an advert on the wire, a signal, a control request, a timer running out)
# to carpd's log line about its reaction, as stamped by carpd itself (millisecond
# resolution), plus the moment between the test's own time stamp and the event. carpd
# sleeps between events, so even two busy cores wake it within milliseconds.
REACTION = 0.1

# One netlink change or one helper process (ip, nft, carpctl) started by a test or by
# carpd (hooks, service checks): a fork and exec on a busy machine.
COMMAND = 2.0


def carp_master_down(advbase: float, advskew: int) -> float:
    """CARP's master-down interval: 3 x advbase + advskew / 256 s."""
    return 3 * advbase + advskew / 256


def carp_interval(advbase: float, advskew: int) -> float:
    """CARP's advert interval: advbase + advskew / 256 s."""
    return advbase + advskew / 256


def vrrp_master_down(advert_interval: float, priority: int) -> float:
    """RFC 5798: 3 x Master_Adver_Interval + Skew_Time, Skew_Time = (256 - priority) x
    Master_Adver_Interval / 256."""
    return 3 * advert_interval + (256 - priority) * advert_interval / 256


# libpcap may hold a packet back from ucarp for its capture timeout (CAPTURE_TIMEOUT,
# 1000 ms in ucarp 1.5.2's ucarp.h) before poll() wakes it.
UCARP_CAPTURE = 1.0


def ucarp_takeover(advbase: float, advskew: int) -> float:
    """From its master's last advert until a BACKUP ucarp is MASTER.

    ucarp compares its master-down timer with the clock only when poll() returns, which in
    BACKUP it asks for every advbase + advskew/256 s (ucarp 1.5.2, carp.c), so it can be a
    whole such period late, and it may have been handed the last advert late.
    """
    period = carp_interval(advbase, advskew)
    return carp_master_down(advbase, advskew) + period + UCARP_CAPTURE + REACTION


def first_master(master_down: float) -> float:
    """From spawn until a lone daemon is MASTER: start-up, then a master-down interval of
    silence."""
    return START_UP + master_down + REACTION


def takeover(master_down: float) -> float:
    """From the master's last advert (or its death) until a backup is MASTER."""
    return master_down + REACTION
