"""The ``[route]`` table: a MASTER's addresses as host routes, for a BGP daemon."""

from __future__ import annotations

from pydantic import Field

from carpd.config.values import Frozen, IfName, StrictBool


class RouteConfig(Frozen):
    """The ``[route]`` table: while MASTER of a vhid, its addresses are also host
    addresses (/32, /128) on a dummy device, for a BGP daemon to announce."""

    enabled: StrictBool = False
    """While MASTER of a vhid, its addresses are also host addresses (/32, /128) on
    ``device``, for a BGP daemon to announce."""
    device: IfName = "carpd0"
    """A dummy device, made and brought up if missing; "lo" where the kernel has no dummy
    driver."""
    timeout: float = Field(default=2.0, gt=0, le=60, strict=True, allow_inf_nan=False)
    """Seconds withdrawing the routes may hold back the removal of the addresses."""
