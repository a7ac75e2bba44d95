"""The one place integrations are named.

``effects_for``: which effects a config asks for, in the order their steps run, and
which of the current ones a reload keeps (conntrackd's knows whether it synced; a
follower knows its targets' roles and its DHCP clients). One that is also an
``Integration`` (a ``name`` and a ``report()``: conntrackd's, the pools') shows in
status through ``integration.Integrations``, which reads these effects.

``beside_for``: those beside the host lanes (ifstated, the real-time policy), each told
every configuration by ``Daemon.reload``. Nothing else names an integration."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from carpd.config.model import Config
from carpd.daemon.effects.hooks import Hooks
from carpd.daemon.observers.cluster import Cluster
from carpd.daemon.observers.drill import DrillRecord
from carpd.daemon.observers.trackers import Trackers
from carpd.daemon.seam.events import Event, Lifecycle
from carpd.daemon.seam.integration import Beside, Demoter, Report
from carpd.daemon.seam.lanes import Effect
from carpd.daemon.seam.roles import HostRoles
from carpd.daemon.seam.view import NodeView
from carpd.linux.linkwatch import LinkService
from carpd.linux.netlink import Netlink
from carpd.linux.realtime import Realtime

if TYPE_CHECKING:
    from carpd.daemon.observers.ifstated import Ifstated

log = logging.getLogger("carpd")


@dataclass(frozen=True)
class Needs:
    """What the effects are made with: the daemon's own parts."""

    netlink: Netlink
    publish: Callable[[Event], None]
    # The demotion levers an integration pulls (the runtime's Levers).
    demote: Demoter
    # The daemon's one link watch: an effect watches an interface through it.
    links: LinkService | None = None
    # Beside those the config asks for (tests, plugins); an Integration among them shows
    # in status too.
    extra: tuple[Effect, ...] = ()
    # A snapshot of the node, for an integration that starts in the middle of a run.
    view: Callable[[], NodeView] | None = None
    # Each vhid's role on the host (its one owner; the host lane sets it).
    roles: HostRoles = field(default_factory=HostRoles)


# An integration's module is imported only with a config that uses it (a quicker start,
# less memory): conntrackd's, the pools', the routes', the followers', the actions'.
CONNTRACK_MODULE = "carpd.daemon.effects.conntrack"


def effects_for(config: Config, current: Sequence[Effect], needs: Needs) -> list[Effect]:
    effects: list[Effect] = []
    if config.conntrackd.enabled:  # its commit precedes everything
        from carpd.daemon.effects.conntrack import Conntrack

        old = next((e for e in current if isinstance(e, Conntrack)), None)
        if old is None or old.cfg != config.conntrackd:
            synced = old is not None and old.synced
            started = old.started if old is not None else None  # stopped only at exit
            old = Conntrack(
                config.conntrackd, needs.demote.state_sync_demotion, synced, started, needs.links,
                needs.roles,
            )  # fmt: skip
        effects.append(old)
    elif _had_conntrack(current):  # state sync turned off: no longer a reason to be demoted
        needs.demote.state_sync_demotion(0, "state sync off")
    if any(c.pool is not None for c in config.carp):  # its buckets are the addresses
        from carpd.daemon.effects.pool import Pools

        pools = next((e for e in current if isinstance(e, Pools)), None)
        effects.append(
            pools if pools is not None and pools.same(config) else Pools(config, needs.netlink)
        )
    if config.route.enabled:
        from carpd.daemon.effects.route import Routes

        kept = [e for e in current if isinstance(e, Routes) and e.cfg == config.route]
        effects.append(
            kept[0] if kept else Routes(config.route, needs.netlink, needs.links, needs.roles)
        )
    if config.follow:
        from carpd.daemon.effects.follow import Follow

        follow = next((e for e in current if isinstance(e, Follow)), None)
        if follow is None or not follow.same(config):
            follow = Follow(config, needs.netlink, needs.roles).adopt(follow)
        effects.append(follow)
    effects.append(Hooks(config.global_.hook_timeout, needs.publish))
    if config.action:
        from carpd.daemon.effects.actions import Actions

        actions = next((e for e in current if isinstance(e, Actions)), None)
        if actions is None or not actions.same(config):
            actions = Actions(config, needs.publish, needs.roles)
        effects.append(actions)
    return [*effects, *needs.extra]


def _had_conntrack(current: Sequence[Effect]) -> bool:
    """Whether conntrackd's effect is among ``current``: never, unless a configuration
    that enabled it loaded its module."""
    module = sys.modules.get(CONNTRACK_MODULE)
    return module is not None and any(isinstance(e, module.Conntrack) for e in current)


def beside_for(needs: Needs) -> list[Beside]:
    """Made once the daemon runs (in its event loop), told the configuration next."""
    return [
        IfstatedSlot(needs),
        Realtime(asyncio.get_running_loop()),
        Cluster(),
        DrillRecord(),
        Trackers(needs.demote, needs.publish),
    ]


class IfstatedSlot:
    """[ifstated] as the daemon sees it: the runner of its file while there is one (read
    again on every reload, as ifstated does on SIGHUP: a changed file or table starts
    afresh), subscribed to the events through this slot. lark (carpd[ifstated]) is
    loaded only with a file."""

    name = "ifstated"  # its key in status

    def __init__(self, needs: Needs) -> None:
        self.needs = needs
        self.runner: Ifstated | None = None
        self.ready = False  # the daemon's "ready" has passed: a new runner begins at once

    def report(self) -> Report | None:
        return None if self.runner is None else self.runner.report()

    def notify(self, event: Event, view: NodeView) -> None:
        self.ready = self.ready or (isinstance(event, Lifecycle) and event.phase == "ready")
        if self.runner is not None:
            self.runner.notify(event, view)

    async def reconfigure(self, config: Config) -> None:
        cfg, old = config.ifstated, self.runner
        if old is not None and old.cfg == cfg and old.unchanged():
            return
        new = None
        if cfg.file is not None:
            from carpd.daemon.observers.ifstated import Ifstated
            from carpd.ifstated import IfstatedError

            try:
                new = await Ifstated.open(cfg, self.needs.publish, self.needs.links)
            except (OSError, IfstatedError) as e:  # changed since the config was checked
                if not self.ready:
                    raise  # at start: carpd does not run without the ifstated it was given
                log.error("ifstated: %s: keeping the running one", e)
                return
        self.runner = new
        if old is not None:
            await old.close()
        if new is not None and self.ready:
            assert self.needs.view is not None
            new.begin(self.needs.view())

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.close()
