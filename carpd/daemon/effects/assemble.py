"""Which effects a config asks for, in the order their steps run, and which of the
current ones a reload keeps (conntrackd's knows whether it synced; a follower knows its
targets' roles and its DHCP clients).

The one place an integration that acts around host actions is registered: one that is
also an ``Integration`` (a ``name`` and a ``report()``: conntrackd's, the pools') shows
in status through ``integration.Integrations``, which reads these effects; nothing else
names it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from carpd.config.model import Config
from carpd.core.model import State
from carpd.daemon.effects.actions import Actions
from carpd.daemon.effects.conntrack import Conntrack
from carpd.daemon.effects.follow import Follow
from carpd.daemon.effects.hooks import Hooks
from carpd.daemon.effects.pool import Pools
from carpd.daemon.effects.route import Routes
from carpd.daemon.events import Event
from carpd.daemon.lanes import Effect
from carpd.linux.linkwatch import LinkService
from carpd.linux.netlink import Netlink


@dataclass(frozen=True)
class Needs:
    """What the effects are made with: the daemon's own parts."""

    netlink: Netlink
    publish: Callable[[Event], None]
    state_sync_demotion: Callable[[int, str], None]
    # The daemon's one link watch: an effect watches an interface through it.
    links: LinkService | None = None
    # Beside those the config asks for (tests, plugins); an Integration among them shows
    # in status too.
    extra: tuple[Effect, ...] = ()


def effects_for(
    config: Config, current: Sequence[Effect], needs: Needs, now: Mapping[str, State]
) -> list[Effect]:
    """``now``: each vhid's state (empty at start), so a new follower knows its roles."""
    effects: list[Effect] = []
    old = next((e for e in current if isinstance(e, Conntrack)), None)
    if config.conntrackd.enabled:  # its commit precedes everything
        if old is None or old.cfg != config.conntrackd:
            synced = old is not None and old.synced
            started = old.started if old is not None else None  # stopped only at exit
            old = Conntrack(
                config.conntrackd, needs.state_sync_demotion, synced, started, needs.links
            )
        effects.append(old)
    elif old is not None:  # state sync turned off: no longer a reason to be demoted
        needs.state_sync_demotion(0, "state sync off")
    if any(c.pool is not None for c in config.carp):  # its buckets are the addresses
        pools = next((e for e in current if isinstance(e, Pools)), None)
        effects.append(
            pools if pools is not None and pools.same(config) else Pools(config, needs.netlink)
        )
    if config.route.enabled:
        kept = [e for e in current if isinstance(e, Routes) and e.cfg == config.route]
        effects.append(kept[0] if kept else Routes(config.route, needs.netlink))
    if config.follow:
        follow = next((e for e in current if isinstance(e, Follow)), None)
        if follow is None or not follow.same(config):
            follow = Follow(config, needs.netlink, now).adopt(follow)
        effects.append(follow)
    effects.append(Hooks(config.global_.hook_timeout, needs.publish))
    if config.action:
        actions = next((e for e in current if isinstance(e, Actions)), None)
        if actions is None or not actions.same(config):
            actions = Actions(config, needs.publish, now)
        effects.append(actions)
    return [*effects, *needs.extra]
