"""A carpd that dies leaves nothing behind: every address carpd adds for a vhid has a
lifetime (valid = preferred, so an IPv6 VIP is never deprecated) that carpd renews while
it holds the address, so that after a kill -9 (an OOM kill, a crash) the kernel removes
it by itself at about the time the peer takes over, instead of both nodes answering for
it until someone cleans up.

The lifetime (``[global] address_lifetime = "auto"``) is the vhid's master-down interval
rounded up to whole seconds (the kernel keeps lifetimes in seconds) plus the renewal
period, and the addresses are renewed every MARGIN seconds (1 s), or less often on a
node with more than BUDGET addresses, so that at most BUDGET are renewed a second (an
explicit lifetime: three times per lifetime, or often enough to leave ceil(master-down)
seconds). So a live MASTER's address always has at least ceil(master-down) seconds left:
a loop that stalls less than that (the peer's own bound for taking over) never loses it;
one that stalls longer finds it gone, as its peer found its adverts gone, and the keeper
puts it back (and announces it) when the loop runs again. After a kill -9 the address
lives on between ceil(master-down) and lifetime + 1 s (the kernel checks lifetimes on
whole seconds): the peer takes over after its own master-down interval.

What is renewed is what carpd's Netlink holds: the addresses added with a lifetime and
not removed by carpd since, which the link watch says are there, in one serialized
netlink call per period (RTM_NEWADDR with NLM_F_REPLACE, many per sendmsg). So a renewal
never re-creates an address a release has removed (the removal and the renewal take the
same lock, in order), and an address stays renewed while a ``pre_release`` hook runs
(the role on the host is BACKUP then, but the removal step has not run yet). An address
another program removed is not renewed (the kernel would re-create it): the keeper puts
it back, with a lifetime again."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import os
from collections.abc import Callable, Mapping

from carpd.config import CarpConfig, GlobalConfig
from carpd.core.timing import master_down_interval
from carpd.core.vrrp_machine import master_down_interval as vrrp_master_down
from carpd.daemon.runtime.host import Host
from carpd.daemon.runtime.vhost import Vhost
from carpd.daemon.seam.ratelimit import RateLimiter
from carpd.linux.linkwatch import LinkService
from carpd.linux.netlink import IPInterface

log = logging.getLogger("carpd")

MARGIN = 1  # seconds past ceil(master-down): the renewal period fits in it (period_of)
# "auto" renews at most this many addresses a second: each renewal is an RTM_NEWADDR that
# every netlink listener decodes, carpd's own link watch too (about 0.2 ms each with
# pyroute2): 255 vhids' 510 addresses renewed every second cost 4.2 % of a core more, 30
# a second 0.6 %. Past BUDGET addresses, the period and the lifetime grow with their
# number, and so does how long a dead carpd's addresses outlive it (510: 26 s).
BUDGET = 20
RENEWALS = 3  # per lifetime, at least
IDLE = 1.0  # seconds between two looks while no vhid has a lifetime (address_lifetime = 0)
LOG_EVERY = 60.0  # seconds between two lines about refused renewals
# A renewal this close to the shortest lifetime since the last one is late: the kernel
# may have expired an address already (it does so from 20 ms before the lifetime is up),
# and the link watch not heard it yet, so the kernel is asked what is there (a dump of
# every address, parsed: as dear as the renewal itself). Half a second leaves that much
# for the netlink lock and the link watch; it must stay under the renewal period, or
# every punctual renewal counts as late ("auto" at 10 ms adverts: lifetime 2 s, renewed
# every 1 s; it was 1.0, and every renewal dumped).
LATE = 0.5


def master_down(cfg: CarpConfig) -> float:
    """How long a peer waits for this vhid's adverts before it takes over, with this
    node's own skew (the peer's differs by at most 255/256 s)."""
    if cfg.protocol == "vrrp3":
        return vrrp_master_down(cfg.priority, cfg.interval_cs)
    return master_down_interval(int(cfg.advbase), cfg.advskew, cfg.deadratio)


def auto_period(count: int) -> float:
    """How often "auto" renews ``count`` addresses: every MARGIN seconds, or so that at
    most BUDGET are renewed a second."""
    return max(float(MARGIN), count / BUDGET)


def lifetime_of(cfg: CarpConfig, setting: str | int, count: int = 0) -> int | None:
    """Seconds an address of ``cfg`` lives unless renewed; None: forever (setting 0).
    ``count``: how many addresses "auto" renews (their renewal period is in it)."""
    if setting == "auto":
        return math.ceil(master_down(cfg)) + math.ceil(auto_period(count))
    return None if setting == 0 else int(setting)


def period_of(lifetime: int, master_down: float) -> float:
    """How often addresses of that lifetime are renewed: three times per lifetime, or
    often enough that a live MASTER's address always has ceil(master-down) seconds left
    (a loop stalled that long has lost the role too); with "auto", every second."""
    spare = lifetime - math.ceil(master_down)
    return lifetime / RENEWALS if spare <= 0 else min(lifetime / RENEWALS, spare)


class Lifetimes:
    """Renews the lifetimes of the addresses carpd holds, one batch per period."""

    def __init__(self, vhosts: Mapping[tuple[str, int], Vhost], host: Host, links: LinkService):
        self.vhosts, self.host, self.links = vhosts, host, links
        self.netlink = host.netlink
        self.settings: Callable[[], GlobalConfig] | None = None
        self.renewals = 0  # batches sent
        self.refused = 0  # renewals the kernel refused
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._last: float | None = None  # loop time of the last renewal
        self._adopted: str | int = 0  # the setting when MASTERs' addresses were last held
        self._limiter = RateLimiter(LOG_EVERY)

    def of(self, vh: Vhost) -> int | None:
        """The lifetime ``vh``'s addresses are added with (the host's and keeper's adds)."""
        if self.settings is None:
            return None
        return lifetime_of(vh.cfg, self._setting(), self._count())

    def _count(self) -> int:
        return sum(len(vh.cfg.addresses) for vh in self.vhosts.values())

    def _setting(self) -> str | int:
        assert self.settings is not None
        return self.settings().address_lifetime

    def start(self, settings: Callable[[], GlobalConfig]) -> None:
        """From now on the host adds addresses with a lifetime, and they are renewed. A
        MASTER's addresses added before (a fast takeover while the daemon started) get
        one at the first renewal."""
        self.settings = settings
        self.host.lifetime = self.of
        self._adopt()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lifetimes")
        self._task.add_done_callback(_stopped)

    def _adopt(self) -> None:
        """Renew the MASTERs' addresses added without a lifetime (before the start, or
        while ``address_lifetime`` was 0: a reload that sets one)."""
        self._adopted = self._setting()
        if self._adopted == 0:
            return
        masters = self.host.roles.masters()
        for vh in self.vhosts.values():
            if vh.cfg.name in masters and self.host.holds(vh):
                for a in vh.cfg.addresses:
                    self.netlink.hold(vh.address_index, a)

    def close(self) -> None:
        """Shutting down: renew on until carpd has removed the addresses it holds (a
        ``pre_release`` hook may run first), then stop."""
        self._closing = True

    async def aclose(self) -> None:
        """Stop now (tests)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def wanted(self) -> dict[tuple[int, IPInterface], int | None]:
        """Each vhid's addresses and their lifetime under the current config."""
        setting, count = self._setting(), self._count()
        out: dict[tuple[int, IPInterface], int | None] = {}
        for vh in self.vhosts.values():
            life, index = lifetime_of(vh.cfg, setting, count), vh.address_index
            for a in vh.cfg.addresses:
                out[(index, a)] = life
        return out

    def period(self) -> float:
        """The shortest renewal period among the vhids (one batch renews them all)."""
        setting = self._setting()
        if setting == "auto":
            return auto_period(self._count()) if self.vhosts else IDLE
        periods = [
            period_of(life, master_down(vh.cfg))
            for vh in self.vhosts.values()
            if (life := lifetime_of(vh.cfg, setting)) is not None
        ]
        return min(periods, default=IDLE)

    async def _run(self) -> None:
        while not (self._closing and not self.netlink.holding()):
            await asyncio.sleep(self.period())
            if self._adopted == 0 and not self._closing:
                self._adopt()
            await self.renew()

    async def renew(self) -> None:
        """One batch: every held address still wanted, that the link watch sees."""
        if not self.netlink.holding():
            return
        wanted, now = self.wanted(), asyncio.get_running_loop().time()
        lives = [life for life in wanted.values() if life is not None]
        # Late (the loop stalled): an address may have expired and the link watch not
        # heard it yet; renewing it would re-create it behind the keeper's back.
        late = self._last is None or (bool(lives) and now - self._last >= min(lives) - LATE)
        try:
            failed = await self.netlink.renew(wanted, self.links.has_address, exact=late)
            self._last = now
        except (OSError, TimeoutError) as e:
            failed, why = [], f"cannot renew the addresses' lifetimes: {e}"
            self.refused += 1
            self._say(why)
        self.renewals += 1
        for index, iface, code in failed:
            self.refused += 1
            self._say(f"cannot renew the lifetime of {iface} (link {index}): {_name(code)}")

    def _say(self, line: str) -> None:
        suppressed = self._limiter.allow("renew", asyncio.get_running_loop().time())
        if suppressed is not None:
            more = f" ({suppressed} more since the last line)" if suppressed else ""
            log.error("carp: %s%s", line, more)


def _stopped(task: asyncio.Task[None]) -> None:
    """A bug must not stop the renewals unseen (the addresses would expire, and the keeper
    put them back, every lifetime)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("carp: address lifetimes no longer renewed: %r", task.exception())


def _name(code: int) -> str:
    return f"{errno.errorcode.get(code, code)}: {os.strerror(code)}"
