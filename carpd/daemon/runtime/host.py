"""The host lane's own steps: a vhid's addresses (netlink, and its virtual MAC) and the
announcements, with the effects' steps around them in the order of daemon/plan.py."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from collections.abc import Callable, Sequence

from carpd.core.actions import AddAddresses, Announce, RemoveAddresses
from carpd.core.announce import gratuitous_arp, unsolicited_na
from carpd.daemon.runtime.vhost import Vhost
from carpd.daemon.seam.events import AddressesApplied, Event
from carpd.daemon.seam.lanes import Claimant, Effect, HostAction, HostWork, Step
from carpd.daemon.seam.plan import plan, shown
from carpd.daemon.seam.roles import HostRoles
from carpd.daemon.seam.view import VhidView
from carpd.linux import sysctl
from carpd.linux.netlink import Netlink


def forwards(ifname: str) -> bool:
    """Does the node route IPv6 on ``ifname`` (its NAs then carry the Router flag)?"""
    try:
        return sysctl.read("ipv6", ifname, "forwarding") == "1"
    except OSError:  # IPv6 off on it, or the interface gone
        return False


# A netlink address change is answered in milliseconds; one that takes this long means
# the kernel or the system is in trouble, and the lane goes on (the change still lands).
NETLINK_DEADLINE = 10.0


class Host:
    """Turns host actions into lane steps. Not at once: after the loop has run whatever
    else is due now (``call_soon``), so that when many vhids change state together (255
    master-down timers expiring in one tick) each takeover's advert goes out before any
    of them pays for its views and steps, and their advert schedules stay together."""

    def __init__(
        self,
        netlink: Netlink,
        publish: Callable[[Event], None],
        effects: Sequence[Effect],
        view: Callable[[Vhost], VhidView],
        roles: HostRoles,
    ) -> None:
        self.netlink = netlink
        self.roles = roles  # each vhid's role on the host: its one owner, set by plan
        self.publish = publish
        self.effects = effects  # replaced on reload: they follow the config
        self.view = view
        self._pending: list[tuple[Vhost, HostWork]] = []
        # The lifetime a vhid's addresses are added with (runtime/lifetimes.py); None:
        # forever, as before the lifetimes start.
        self.lifetime: Callable[[Vhost], int | None] = lambda vh: None

    def submit(self, vh: Vhost, work: HostWork) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self._pending.append((vh, work))

    def flush(self) -> None:
        """Hand every submitted action to its vhid's lane, in order (also before a
        settle, so nothing submitted is left behind). The effects read the vhid's
        settings from a view; what the action serves comes with it (``work.cause``)."""
        pending, self._pending = self._pending, []
        views: dict[int, VhidView] = {}
        for vh, work in pending:
            view = views.get(id(vh))
            if view is None:
                view = views[id(vh)] = self.view(vh)
            steps = self.plan(vh, work, view)
            if work.cause is not None:  # status shows the last transition's plan
                if work.cause is not vh.plan_cause:
                    vh.plan_cause, vh.plan = work.cause, ()
                vh.plan += shown(steps)
            vh.lane.submit(steps)

    def plan(self, vh: Vhost, work: HostWork, view: VhidView) -> list[Step]:
        return plan(work, view, self.effects, self._own(vh, work.action, view), self.roles)

    def holds(self, vh: Vhost) -> bool:
        """Are ``vh``'s addresses this lane's own steps' (not an effect's: a pool's)?"""
        return not self._claimed(AddAddresses(), self.view(vh))

    def _claimed(self, action: HostAction, view: VhidView) -> bool:
        return any(isinstance(e, Claimant) and e.claims(action, view) for e in self.effects)

    def _own(self, vh: Vhost, action: HostAction, view: VhidView) -> list[Step]:
        if self._claimed(action, view):
            return []  # an effect does it its own way (a pool's buckets)
        if isinstance(action, AddAddresses | RemoveAddresses):
            verb = "add" if isinstance(action, AddAddresses) else "remove"
            run = functools.partial(self._addresses, vh, isinstance(action, AddAddresses))
            return [Step(f"{verb} addresses", run, NETLINK_DEADLINE, chain="addresses")]
        if isinstance(action, Announce):  # a send on a raw socket: never waits
            return [Step("announce", functools.partial(self._announce, vh), chain="addresses")]
        return []  # RunHook: the hooks effect

    async def _addresses(self, vh: Vhost, add: bool) -> None:
        vm = vh.vmac
        index = vm.index if vm is not None else vh.dev.link.index
        try:
            if vm is not None and add:
                await vm.set_up(True)
            life = self.lifetime(vh) if add else None
            for a in vh.cfg.addresses:
                if add:
                    await self.netlink.add_address(index, a, life)
                else:  # and an up-script's copy in another prefix (a ucarp $2/24)
                    await self.netlink.remove_address(index, a, any_prefix=True)
            if vm is not None and not add:
                await vm.set_up(False)
        except Exception as e:  # netlink refused: the lane logs it, the protocol runs on
            self.publish(AddressesApplied(vh.key, not add, str(e)))
            verb = "add" if add else "remove"
            raise RuntimeError(f"cannot {verb} addresses on {vh.dev.name}: {e}") from e
        self.publish(AddressesApplied(vh.key, add, None))

    async def announce(self, vh: Vhost) -> None:
        """Announce ``vh``'s addresses again, unless an effect forbids it (a pool's)."""
        if not self._claimed(Announce(), self.view(vh)):
            await self._announce(vh)

    async def _announce(self, vh: Vhost) -> None:
        announcer, mac, ifname = vh.dev.announcer, vh.dev.link.mac, vh.dev.name
        if vh.vmac is not None and vh.vmac.announcer is not None:
            announcer, mac, ifname = vh.vmac.announcer, vh.vmac.mac, vh.vmac.name
        router = None
        for a in vh.cfg.addresses:
            if isinstance(a, ipaddress.IPv4Interface):
                announcer.send_arp(gratuitous_arp(mac, a.ip))
            else:
                router = forwards(ifname) if router is None else router
                announcer.send_na(unsolicited_na(mac, a.ip, router))
