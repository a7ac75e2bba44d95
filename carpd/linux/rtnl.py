"""The part of pyroute2 that carpd uses (AsyncIPRoute, NetlinkError, link constants),
imported without the rest of pyroute2.

Any import from pyroute2, ``from pyroute2.iproute.linux import AsyncIPRoute`` too, first
runs the package's ``__init__``, and that imports every API the library has: NDB and
IPDB, ethtool, conntrack, nftables, wireless, plan9 and more (163 modules, about 110 ms
on a 2-core lab machine, a quarter of carpd's way from spawn to BACKUP). The modules
carpd needs take about half of that.

So, unless something imported pyroute2 already, the package goes into ``sys.modules``
bare: its ``__path__`` is set, its ``__init__`` has not run. Submodules import from it
as usual (a submodule looked up as an attribute is imported then). The first look-up of
any other name, which only the ``__init__`` defines (``from pyroute2 import NetNS``
elsewhere in the same process, as the lab does), runs the ``__init__`` then, in the same
module object; from there on the package is just what a plain ``import pyroute2`` makes
of it.
"""

from __future__ import annotations

import importlib.util
import sys


def _import_bare(name: str) -> None:
    """Put package ``name`` in sys.modules without running its ``__init__`` until a name
    it does not have, and that is not a submodule, is looked up."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return  # not an installed package: the imports below fail as they would anyway
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def lookup(attr: str) -> object:
        # PEP 562: only called for names the module does not have (yet).
        sub = f"{name}.{attr}"
        if not attr.startswith("__") and importlib.util.find_spec(sub) is not None:
            # A submodule (``from pyroute2 import config`` in pyroute2 itself): import
            # just that one, as the import system would.
            return importlib.import_module(sub)
        del package.__dict__["__getattr__"]
        try:
            loader.exec_module(package)
        except BaseException:
            package.__dict__["__getattr__"] = lookup  # as after a failed import: try again
            raise
        return getattr(package, attr)

    package.__dict__["__getattr__"] = lookup
    sys.modules[name] = package


_import_bare("pyroute2")

from pyroute2.iproute.linux import AsyncIPRoute  # noqa: E402
from pyroute2.netlink import NLM_F_REQUEST  # noqa: E402
from pyroute2.netlink.exceptions import NetlinkError  # noqa: E402
from pyroute2.netlink.rtnl import (  # noqa: E402
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_GETADDR,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_LINK,
)
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg  # noqa: E402

__all__ = [
    "NLM_F_REQUEST",
    "RTMGRP_IPV4_IFADDR",
    "RTMGRP_IPV6_IFADDR",
    "RTMGRP_LINK",
    "RTM_DELADDR",
    "RTM_DELLINK",
    "RTM_GETADDR",
    "RTM_NEWADDR",
    "RTM_NEWLINK",
    "AsyncIPRoute",
    "NetlinkError",
    "ifaddrmsg",
]
