"""The validated configuration, by the names it has always had here.

The models live by job: the value types in ``values``, the files the loader reads for
them in ``files``, one module per table family in ``tables``, the whole document and its
cross-checks in ``document``. Input keys are the TOML keys (``pass``, ``global``); the
validation context is described in ``values`` and ``files``.
"""

from carpd.config.document import Config, ConfigFile
from carpd.config.files import PassFile, PassFileField
from carpd.config.tables.carp import CarpConfig
from carpd.config.tables.cluster import ClusterConfig, ClusterPeer
from carpd.config.tables.conntrackd import ConntrackdConfig
from carpd.config.tables.global_ import SERVICE_INTERVAL_MAX, SERVICE_INTERVAL_MIN, GlobalConfig
from carpd.config.tables.ifstated import IfstatedConfig
from carpd.config.tables.pool import PoolConfig, PoolRef
from carpd.config.tables.roles import ActionConfig, FollowConfig, Follows, Phase
from carpd.config.tables.route import RouteConfig
from carpd.config.tables.sync import SyncConfig, SyncFile
from carpd.config.tables.track import TrackConfig
from carpd.config.tables.web import WebConfig
from carpd.config.values import (
    INTERNAL,
    SAFE_CHARS,
    SAFE_NAME,
    AddressSetting,
    AddressValue,
    Conflict,
    Facility,
    GroupName,
    IfName,
    Interface,
    IPAddr,
    IPv4Value,
    Loc,
    LogLevel,
    MacAddress,
    Name,
    PathSetting,
    Protocol,
    StrictBool,
    conflicts,
)

__all__ = [
    "INTERNAL",
    "SAFE_CHARS",
    "SAFE_NAME",
    "SERVICE_INTERVAL_MAX",
    "SERVICE_INTERVAL_MIN",
    "ActionConfig",
    "AddressSetting",
    "AddressValue",
    "CarpConfig",
    "ClusterConfig",
    "ClusterPeer",
    "Config",
    "ConfigFile",
    "Conflict",
    "ConntrackdConfig",
    "Facility",
    "FollowConfig",
    "Follows",
    "GlobalConfig",
    "GroupName",
    "IPAddr",
    "IPv4Value",
    "IfName",
    "IfstatedConfig",
    "Interface",
    "Loc",
    "LogLevel",
    "MacAddress",
    "Name",
    "PassFile",
    "PassFileField",
    "PathSetting",
    "Phase",
    "PoolConfig",
    "PoolRef",
    "Protocol",
    "RouteConfig",
    "StrictBool",
    "SyncConfig",
    "SyncFile",
    "TrackConfig",
    "WebConfig",
    "conflicts",
]
