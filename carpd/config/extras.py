"""Optional features whose libraries are extras of the package (`pip install
'carpd[web]'`): a config that uses one without its libraries is refused at --check,
naming the extra, instead of failing with an ImportError once the daemon runs."""

from __future__ import annotations

from importlib.util import find_spec

# extra -> the top-level modules it brings (pyproject.toml's optional-dependencies).
EXTRAS = {
    "web": ("aiohttp", "prometheus_client"),  # the status page, /api/status, /metrics
    "ifstated": ("lark",),  # ifstated.conf's grammar
    "track": ("icmplib", "dns"),  # [[track]] kinds ping (ICMP echo) and dns (dnspython)
}


def absent() -> dict[str, str | None]:
    """Why each extra cannot be used here (None: it can), for validation context
    ``extras``: the loader looks, the models only read the answer."""
    return {extra: missing(extra) for extra in EXTRAS}


def missing(extra: str) -> str | None:
    """Why ``extra``'s libraries cannot be used here, or None when they are installed."""
    absent = [name for name in EXTRAS[extra] if find_spec(name) is None]
    if not absent:
        return None
    return (
        f"needs {', '.join(absent)}, not installed: install carpd with its {extra!r} "
        f"extra (pip install 'carpd[{extra}]'; the Debian package has every extra)"
    )
