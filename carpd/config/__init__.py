"""carpd configuration: a TOML file (``load_config``) or a ucarp command line
(``config_from_ucarp_args``), both validated by the same pydantic models.

carpd runs no pydantic plugins. pydantic looks for them (the ``pydantic`` entry points of
every installed distribution) when it builds its first model, and the look-up alone
imports ``importlib.metadata``, ``email``, ``zipfile`` and more: about 3 MiB of the
daemon's memory and 20 ms of its start on a 2-core lab machine, for plugins carpd never
asks for (they observe validation, they do not do it: every model is validated by
pydantic as before). So, before the models below are built, pydantic's plugin loader is
one that has none, unless something in the same process loaded the real one already.
"""

import sys
import types


def _no_pydantic_plugins() -> None:
    name = "pydantic.plugin._loader"  # what pydantic imports its get_plugins() from
    if name in sys.modules:
        return
    loader = types.ModuleType(name, "carpd: no pydantic plugins (carpd.config)")
    loader.get_plugins = tuple  # type: ignore[attr-defined]  # () : no plugin
    sys.modules[name] = loader


_no_pydantic_plugins()

from carpd.config.errors import ConfigError  # noqa: E402
from carpd.config.load import DEFAULT_PATH, load_config, validate_config  # noqa: E402
from carpd.config.model import CarpConfig, Config, GlobalConfig  # noqa: E402
from carpd.config.ucarp_cli import config_from_ucarp_args, make_ucarp_parser  # noqa: E402

__all__ = [
    "DEFAULT_PATH",
    "CarpConfig",
    "Config",
    "ConfigError",
    "GlobalConfig",
    "config_from_ucarp_args",
    "load_config",
    "make_ucarp_parser",
    "validate_config",
]
