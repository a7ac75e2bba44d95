"""carpd configuration: a TOML file (``load_config``) or a ucarp command line
(``config_from_ucarp_args``), both validated by the same pydantic models."""

from carpd.config.errors import ConfigError
from carpd.config.load import DEFAULT_PATH, load_config, validate_config
from carpd.config.model import CarpConfig, Config, GlobalConfig
from carpd.config.ucarp_cli import config_from_ucarp_args, make_ucarp_parser

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
