"""OpenBSD ifstated.conf(5), sans-IO: `parse` reads the language, `Engine` runs it.

Neither module reads files or clocks nor runs commands: the daemon feeds the engine link
states and external test results, and runs what it returns, in order.
"""

from carpd.ifstated.engine import (
    Engine,
    LoopStopped,
    Output,
    StartTests,
    StateEntered,
    StopTests,
)
from carpd.ifstated.parse import (
    ExternalTest,
    IfstatedError,
    LinkTest,
    Program,
    Run,
    SetState,
    State,
    parse,
)

__all__ = [
    "Engine",
    "ExternalTest",
    "IfstatedError",
    "LinkTest",
    "LoopStopped",
    "Output",
    "Program",
    "Run",
    "SetState",
    "StartTests",
    "State",
    "StateEntered",
    "StopTests",
    "parse",
]
