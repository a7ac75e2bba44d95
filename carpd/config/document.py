"""The whole document: its tables, the checks across them, and the expansion of each
[[pool]] into the [[carp]] tables of its vhids.

``ConfigFile`` is what a TOML file (or a ucarp command line) says; ``Config``, made by
``expand``, is what the daemon runs with: the same tables, a pool's vhids among the
[[carp]] ones. Settings are equal (``==``) and hash alike exactly when they mean the
same thing, so a SIGHUP reload can keep the vhids whose settings did not change.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from carpd.config.tables.carp import CarpConfig
from carpd.config.tables.cluster import ClusterConfig
from carpd.config.tables.conntrackd import ConntrackdConfig
from carpd.config.tables.global_ import GlobalConfig
from carpd.config.tables.ifstated import IfstatedConfig
from carpd.config.tables.pool import PoolConfig, PoolRef
from carpd.config.tables.roles import ActionConfig, FollowConfig, Follows
from carpd.config.tables.route import RouteConfig
from carpd.config.tables.sync import SyncConfig
from carpd.config.tables.track import TrackConfig
from carpd.config.tables.web import WebConfig
from carpd.config.values import Conflict, Frozen, conflicts


class ConfigFile(Frozen):
    """A whole document: what a TOML file (or a ucarp command line) says."""

    global_: GlobalConfig = Field(default=GlobalConfig(), alias="global")
    conntrackd: ConntrackdConfig = ConntrackdConfig()
    web: WebConfig = WebConfig()
    route: RouteConfig = RouteConfig()
    ifstated: IfstatedConfig = IfstatedConfig()
    sync: SyncConfig = SyncConfig()
    cluster: ClusterConfig = ClusterConfig()
    carp: tuple[CarpConfig, ...] = ()
    pool: tuple[PoolConfig, ...] = ()
    action: tuple[ActionConfig, ...] = ()
    follow: tuple[FollowConfig, ...] = ()
    track: tuple[TrackConfig, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _inherit_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        g = data.get("global")
        g = g if isinstance(g, dict) else {}
        tables = data.get("carp")
        if not isinstance(tables, list | tuple):
            return data
        preempt, refresh = g.get("preempt", False), g.get("garp_refresh", 0)
        defaults: list[tuple[str, Any, bool]] = [
            # VRRPv3 preempts by default (RFC 5798 Preempt_Mode); CARP as [global] says.
            ("preempt", preempt, type(preempt) is bool),
            ("garp_refresh", refresh, type(refresh) in (int, float) and 0 <= refresh <= 86400),
        ]
        out = []
        for t in tables:
            if isinstance(t, dict):
                given = {k: v for k, v, valid in defaults if valid}  # else [global]'s error
                if "preempt" in given and t.get("protocol") == "vrrp3":
                    given["preempt"] = True
                t = {**given, **t}
            out.append(t)
        return {**data, "carp": out}

    @model_validator(mode="after")
    def _cross_check(self) -> ConfigFile:
        if not self.carp and not self.pool:
            raise PydanticCustomError("nothing_to_run", "no [[carp]] and no [[pool]]")
        found = []
        by_vhid: dict[tuple[str, int], int] = {}
        by_name: dict[str, int] = {}
        for i, c in enumerate(self.carp):
            j = by_vhid.setdefault((c.carpdev, c.vhid), i)
            if j != i:
                msg = f"duplicate vhid {c.vhid} on carpdev {c.carpdev} (also {{other}})"
                found.append(Conflict(("carp", i, "vhid"), c.vhid, msg, ("carp", j)))
                continue
            j = by_name.setdefault(c.name, i)
            if j != i:
                msg = "duplicate name (also {other})"
                if c.name == f"carp{c.vhid}":
                    msg += "; the name defaults to carp<vhid>: set a distinct name"
                found.append(Conflict(("carp", i, "name"), c.name, msg, ("carp", j)))
        found += self._check_pools(by_vhid)
        found += self._check_targets()
        found += self._check_trackers()
        if found:
            raise conflicts(*found)
        return self

    def _check_pools(self, taken: dict[tuple[str, int], int]) -> list[Conflict]:
        """A pool's vhids are vhids too: none may be a [[carp]]'s or another pool's."""
        found = []
        pools: dict[tuple[str, int], int] = {}
        for i, p in enumerate(self.pool):
            for vhid, _ in p.nodes:
                j = taken.get((p.carpdev, vhid))
                if j is not None and self.carp[j].pool is None:  # Config: its own are there
                    msg = f"vhid {vhid} on carpdev {p.carpdev} is also in {{other}}"
                    found.append(Conflict(("pool", i, "nodes"), vhid, msg, ("carp", j)))
                k = pools.setdefault((p.carpdev, vhid), i)
                if k != i:
                    msg = f"vhid {vhid} on carpdev {p.carpdev} is also in {{other}}"
                    found.append(Conflict(("pool", i, "nodes"), vhid, msg, ("pool", k)))
        return found

    def _check_trackers(self) -> list[Conflict]:
        """[[track]] names are unique, and name vhids and groups that exist."""
        found = []
        names = {c.name for c in self.carp}
        groups = {g for c in self.carp for g in c.all_groups}
        seen: dict[str, int] = {}
        for i, t in enumerate(self.track):
            j = seen.setdefault(t.name, i)
            if j != i:
                found.append(Conflict(("track", i, "name"), t.name, "duplicate name (also {other})",
                                      ("track", j)))  # fmt: skip
            for k, v in enumerate(t.vhids):
                if v not in names:
                    found.append(Conflict(("track", i, "vhids", k), v, "no [[carp]] has this name"))
            for k, g in enumerate(t.groups):
                if g not in groups:
                    found.append(Conflict(("track", i, "groups", k), g,
                                          "no [[carp]] is in this group"))  # fmt: skip
        return found

    def _check_targets(self) -> list[Conflict]:
        """[[action]] and [[follow]] name vhids and groups that exist, and no interface
        follows twice or is a carpdev."""
        found = []
        names = {c.name for c in self.carp}
        groups = {g for c in self.carp for g in c.all_groups}
        tables: list[tuple[str, int, Follows]] = [
            ("action", i, a) for i, a in enumerate(self.action)
        ]
        tables += [("follow", i, f) for i, f in enumerate(self.follow)]
        for table, i, t in tables:
            if t.vhid is not None and t.vhid not in names:
                found.append(Conflict((table, i, "vhid"), t.vhid, "no [[carp]] has this name"))
            if t.group is not None and t.group not in groups:
                found.append(Conflict((table, i, "group"), t.group, "no [[carp]] is in this group"))
        seen: dict[str, int] = {}
        for i, a in enumerate(self.action):
            j = seen.setdefault(a.name, i)
            if j != i:
                found.append(
                    Conflict(
                        ("action", i, "name"),
                        a.name,
                        "duplicate name (also {other})",
                        ("action", j),
                    )
                )
        carpdevs = {c.carpdev for c in self.carp}
        followed: dict[str, int] = {}
        for i, f in enumerate(self.follow):
            j = followed.setdefault(f.interface, i)
            if j != i:
                msg = "this interface already follows a role (also {other})"
                found.append(Conflict(("follow", i, "interface"), f.interface, msg, ("follow", j)))
            elif f.interface in carpdevs:
                msg = "a carpdev cannot follow a role: its link carries the adverts"
                found.append(Conflict(("follow", i, "interface"), f.interface, msg))
        return found


class Config(ConfigFile):
    """The configuration the daemon runs with; ``source`` is the file or "command line"."""

    source: str


def expand(doc: ConfigFile, source: str) -> Config:
    """The configuration the daemon runs with: every table of the document, as
    validated, and where it came from; a [[pool]]'s vhids join the [[carp]] ones
    (checked against them already)."""
    tables = {f.alias or name: getattr(doc, name) for name, f in ConfigFile.model_fields.items()}
    pooled = [CarpConfig.model_validate(t) for p in doc.pool for t in pool_vhids(p)]
    tables["carp"] = (*doc.carp, *pooled)
    return Config.model_validate({**tables, "source": source})


def pool_vhids(pool: PoolConfig) -> list[dict[str, Any]]:
    """A [[pool]]'s vhids as [[carp]] tables: preempt on, so a node back takes its share back."""
    mac = f"01:00:5e:00:01:{pool.nodes[0][0]:02x}"  # OpenBSD: the leader's, multicast
    out = []
    for i, (vhid, skew) in enumerate(pool.nodes):
        ref = PoolRef(
            name=pool.name, index=i, count=len(pool.nodes), mode=pool.mode,
            seed=pool.seed, address=pool.address, mac=mac,
        )  # fmt: skip
        table: dict[str, Any] = {
            "name": f"{pool.name}-{vhid}", "vhid": vhid, "carpdev": pool.carpdev,
            "advbase": pool.advbase, "advskew": skew, "addresses": (pool.address,),
            "preempt": True, "pool": ref,
            # arp: each vhid's own MAC, on a macvlan of its name, adverts from it
            "vmac": pool.mode == "arp",
        }  # fmt: skip
        if pool.passfile is not None:
            table["passfile"] = pool.passfile
        else:
            table["pass"] = pool.pass_
        out.append(table)
    return out
