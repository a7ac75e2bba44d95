"""Which control socket carpctl talks to: ``--socket``, then ``[global] control_socket``
of ``--config``, then of ``$CARPD_CONFIG``, then the default.

A config is read with carpd's own loader (its overlay, its relative paths), [global]
only: pydantic is imported only then, so carpctl without a config starts as light as
before.
"""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_SOCKET = "/run/carpd/carpd.sock"
CONFIG_ENV = "CARPD_CONFIG"


class NoConfig(Exception):
    """A config that does not load: the message names it and what is wrong."""


def config_file(option: str | None, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """The config to read and how it was named (``--config`` or ``$CARPD_CONFIG``)."""
    if option is not None:
        return option, "--config"
    if environ.get(CONFIG_ENV):
        return environ[CONFIG_ENV], f"${CONFIG_ENV}"
    return None


def control_socket(
    socket: str | None, config: str | None, environ: Mapping[str, str]
) -> tuple[str, str | None]:
    """The socket, and the config file it was read from (None: --socket or the default)."""
    if socket is not None:
        return socket, None
    named = config_file(config, environ)
    if named is None:
        return DEFAULT_SOCKET, None
    path, how = named
    from carpd.config.errors import ConfigError  # pydantic: only with a config
    from carpd.config.load import load_global

    try:
        g = load_global(path)
    except ConfigError as e:
        named_in = str(e).startswith(f"{path}:")  # not so for a problem of its overlay
        raise NoConfig(f"{how}: {e}" if named_in else f"{how} {path}: {e}") from None
    return str(g.control_socket), path
