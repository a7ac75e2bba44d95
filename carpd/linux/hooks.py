"""Up/down hooks as ucarp calls them (script <interface> <address> [xparam]), run by
process.run: never blocking the protocol, killed at a timeout, output logged, children
they leave running left alone."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from carpd.linux.process import Outcome, run


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


async def run_hook(call: HookCall, timeout: float) -> Outcome:
    """Run one hook (killed with its process group at ``timeout``); its stderr's tail kept."""
    label = f"{call.name}: {call.kind} hook"
    return await run(
        call.argv(),
        timeout=timeout,
        env=call.env(),
        capture="stderr",
        leftovers="leave",
        label=label,
    )
