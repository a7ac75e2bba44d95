"""What the control socket can ask of the daemon: status and the operator's levers."""

from __future__ import annotations

from typing import Any

from carpd.core.demotion import CARPDEMOTE_STEP_MAX
from carpd.core.model import State
from carpd.daemon.runtime.runtime import Daemon
from carpd.daemon.seam.events import DrillDone
from carpd.daemon.seam.view import to_json, vhid_json
from carpd.daemon.service.control import Refused


async def status(daemon: Daemon, req: dict[str, Any]) -> dict[str, Any]:
    """``text``: carpctl's text status, with the integrations' own lines; ``fresh``:
    the reports that can be made true now are (the peers read again) first."""
    if req.get("fresh") is True:
        await daemon.integrations.refresh()
    return to_json(daemon.view(), text=req.get("text") is True)


def _vhid(daemon: Daemon, name: str) -> dict[str, Any]:
    return vhid_json(daemon.view().vhid(name))


def _arg(req: dict[str, Any], key: str, kind: type) -> Any:
    value = req.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise Refused(f"malformed request: {key!r} must be a {kind.__name__}")
    return value


def group(daemon: Daemon, req: dict[str, Any]) -> dict[str, Any]:
    """`carpctl group NAME [[-]carpdemote [N]]`, OpenBSD's `ifconfig -g`."""
    name = _arg(req, "group", str)
    delta = req.get("carpdemote")
    if delta is not None:
        if not isinstance(delta, int) or isinstance(delta, bool):
            raise Refused("malformed request: 'carpdemote' must be an integer")
        if not 0 < abs(delta) <= CARPDEMOTE_STEP_MAX:
            raise Refused(
                f"carpdemote {abs(delta)}: allowed range is 1-{CARPDEMOTE_STEP_MAX} per change"
            )
        try:
            daemon.adjust_group(name, delta)
        except ValueError as e:
            raise Refused(str(e)) from None
    if name not in daemon.ledger.groups:
        raise Refused(f"no interface group {name!r} (groups: {', '.join(daemon.ledger.groups)})")
    members = [vh.cfg.name for vh in daemon.vhosts.values() if name in vh.cfg.all_groups]
    return {"group": name, "demote": daemon.ledger.groups[name], "members": members}


async def service_status(daemon: Daemon, _req: dict[str, Any]) -> dict[str, Any]:
    report = await daemon.health.check_services()
    return report.to_json()


def maintenance(daemon: Daemon, req: dict[str, Any]) -> dict[str, Any]:
    on = req.get("on")
    if not isinstance(on, bool):
        raise Refused("malformed request: 'on' must be true or false")
    try:
        warning = daemon.health.set_maintenance(on)
    except OSError as e:
        raise Refused(f"cannot persist maintenance mode: {e}") from None
    return {"maintenance": daemon.health.maintenance, "warning": warning}


def _lookup(daemon: Daemon, req: dict[str, Any]) -> str:
    name = _arg(req, "name", str)
    try:
        daemon.find(name)
    except LookupError as e:
        raise Refused(str(e)) from None
    return str(name)


def set_up(daemon: Daemon, req: dict[str, Any]) -> dict[str, Any]:
    name = _lookup(daemon, req)
    daemon.set_enabled(name, True)
    return _vhid(daemon, name)


def set_down(daemon: Daemon, req: dict[str, Any]) -> dict[str, Any]:
    name = _lookup(daemon, req)
    daemon.set_enabled(name, False)
    return _vhid(daemon, name)


def set_state(daemon: Daemon, req: dict[str, Any]) -> dict[str, Any]:
    name = _lookup(daemon, req)
    wanted = _arg(req, "state", str).upper()
    if wanted not in ("MASTER", "BACKUP"):
        raise Refused(f"state {wanted.lower()!r}: allowed are master, backup")
    try:
        daemon.force_state(name, State(wanted))
    except LookupError as e:
        raise Refused(str(e)) from None
    return _vhid(daemon, name)


def drill_done(daemon: Daemon, req: dict[str, Any]) -> dict[str, Any]:
    """`carpctl drill` tells how it ended: an event for the stream (its report is in
    state_dir, where the drill's report shows it in status and /metrics)."""
    result, summary = _arg(req, "result", str), _arg(req, "summary", str)
    if result not in ("passed", "failed", "refused"):
        raise Refused(f"result {result[:20]!r}: allowed are passed, failed, refused")
    daemon.publisher.publish(DrillDone(result, summary[:1000]))
    return {}


def handlers(daemon: Daemon) -> dict[str, Any]:
    def bind(fn: Any) -> Any:
        return lambda req: fn(daemon, req)

    return {
        "status": bind(status),
        "group": bind(group),
        "service-status": bind(service_status),
        "maintenance": bind(maintenance),
        "up": bind(set_up),
        "down": bind(set_down),
        "state": bind(set_state),
        "drill-done": bind(drill_done),
    }
