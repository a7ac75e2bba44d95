"""Up/down hooks as ucarp calls them (script <interface> <address> [xparam]), and the
environment of every program run for a transition (a hook or an [[action]]). They are
run as [[action]]s are (effects/actions.run_programs): never blocking the protocol,
killed at a timeout, output logged, children they leave running left alone."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HookCall:
    name: str  # the vhid's name, e.g. carp0, for log lines
    kind: str  # "up" or "down"
    path: str
    interface: str
    addresses: Sequence[str]
    xparam: str | None
    vhid: int
    state: str
    previous: str | None = None  # the state it left, when known
    reason: str | None = None  # why it changed, in the log's words

    def argv(self) -> list[str]:
        # ucarp: script <interface> <virtual address> [xparam]
        args = [self.path, self.interface, self.addresses[0] if self.addresses else ""]
        if self.xparam is not None:
            args.append(self.xparam)
        return args

    @property
    def label(self) -> str:  # its log lines': "carp1: up hook"
        return f"{self.name}: {self.kind} hook"

    def env(self) -> dict[str, str]:
        return transition_env(
            self.vhid, self.state, self.interface, self.addresses, self.previous, self.reason
        )


def transition_env(
    vhid: int,
    state: str,
    interface: str,
    addresses: Sequence[str],
    previous: str | None,
    reason: str | None,
    **extra: str,
) -> dict[str, str]:
    """The environment of a hook or an action: carpd's own, and what the transition was."""
    env = dict(os.environ)
    env.update(
        CARP_VHID=str(vhid),
        CARP_STATE=state,
        CARP_INTERFACE=interface,
        CARP_ADDRESSES=" ".join(addresses),
    )
    if previous is not None:
        env["CARP_PREVIOUS_STATE"] = previous
    if reason is not None:
        env["CARP_REASON"] = reason
    env.update(extra)
    return env
