"""The floors under carpd's start-up (FLOORS, for bench/core.py), and, run as a script
with carpd's interpreter, where carpd's own part of it goes: one JSON object.

The script first loads the top floor, untimed (asyncio, hmac, pydantic and rtnetlink
imported, one pydantic model built). Then it imports the daemon's modules, timed in the
same process and split into what builds carpd's dataclasses (each compiles its
generated methods, ``__init__``, ``__eq__``, ``__repr__``..., as its class is made: about
0.5 ms a frozen class on a 2-core lab machine, with Python 3.11 to 3.13 alike), what
builds its pydantic config models, and the rest (reading and running the modules).
The stages are spent inside carpd's import, so they add up to it. It imports nothing of
the bench's (that would load carpd first).
"""

from __future__ import annotations

# What carpd.config does before its models: no pydantic plugin look-up (see there).
_NO_PLUGINS = (
    "import sys, types; m = types.ModuleType('pydantic.plugin._loader'); "
    "m.get_plugins = tuple; sys.modules[m.__name__] = m\n"
)
# pydantic defers its schema machinery to the first model a program defines: one frozen
# model, built and validated, as carpd's every config table is.
_ONE_MODEL = (
    "from pydantic import BaseModel, ConfigDict\n"
    "class M(BaseModel):\n"
    "    model_config = ConfigDict(frozen=True, extra='forbid')\n"
    "    a: int = 1\n"
    "M(a=2)\n"
)
_IMPORTS = "import asyncio, hmac, pydantic, carpd.linux.rtnl\n"
FLOORS = {"python": "", "imports": _IMPORTS, "model": _IMPORTS + _NO_PLUGINS + _ONE_MODEL}
# What the daemon imports before its first vhid runs (carpd.daemon.service.main's modes).
DAEMON_MODULES = ("carpd.config.load", "carpd.daemon.service.serve")


def main() -> None:
    import dataclasses
    import importlib
    import json
    import sys
    import time
    from collections import Counter
    from typing import Any

    exec(FLOORS["model"], {})  # the floor, as bench/core.py measures it
    from pydantic._internal import _model_construction

    spent: Counter[str] = Counter()

    def timed(stage: str, build: Any) -> Any:
        def wrapper(cls: Any, *args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return build(cls, *args, **kwargs)
            finally:  # a library's dataclass, loaded on the way, is "the rest"
                if stage == "models" or cls.__module__.split(".")[0] == "carpd":
                    spent[stage] += time.perf_counter() - t0

        return wrapper

    # Every @dataclass goes through _process_class, every model through ModelMetaclass.
    dataclasses._process_class = timed("dataclasses", dataclasses._process_class)  # type: ignore[attr-defined]
    meta = _model_construction.ModelMetaclass
    meta.__new__ = timed("models", meta.__new__)  # type: ignore[method-assign]
    before = set(sys.modules)
    t0 = time.perf_counter()
    # Imported by name to be timed, as carpd's start imports them; nothing of them is used.
    for name in DAEMON_MODULES:
        importlib.import_module(name)

    total = time.perf_counter() - t0
    own = [m for m in set(sys.modules) - before if m.split(".")[0] == "carpd"]
    report = {
        "own_import_ms": 1000 * total,
        "own_dataclasses_ms": 1000 * spent["dataclasses"],
        "own_models_ms": 1000 * spent["models"],
        "own_modules": len(own),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
