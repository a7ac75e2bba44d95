"""The cluster view without namespaces: the verdict (carpd.cluster.verdict) on status JSON
built by hand as carpd shows it, a peer's answer read as untrusted input
(carpd.cluster.status), PeerClient against a real aiohttp HTTPS server on loopback with a
pinned certificate (and one that misbehaves), and the cluster report's metrics."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretBytes

from carpd.cluster.client import MAX_ANSWER, PeerClient, Seen
from carpd.cluster.status import Unreadable, read
from carpd.cluster.verdict import build
from carpd.config.files import PassFile
from carpd.config.model import ClusterPeer
from carpd.ctl import cluster as ctl
from carpd.daemon.observers.cluster import ClusterReport

# --- status JSON as carpd shows it (carpctl status --json, /api/status) ----------------


def vhost(
    state: str,
    *,
    name: str = "lan",
    vhid: int = 1,
    protocol: str = "carp",
    advbase: float = 1,
    advskew: int = 0,
    priority: int = 100,
    preempt: bool = False,
    **more: Any,
) -> dict[str, Any]:
    """One entry of status "vhosts", with the keys carpd.daemon.seam.view.vhid_json
    gives (the cluster view keeps only some)."""
    if protocol == "vrrp3":
        params = {
            "protocol": "vrrp3",
            "advbase": advbase,
            "priority": priority,
            "priority_sent": priority,
            "accept": True,
        }
    else:
        params = {
            "protocol": "carp",
            "authentication": "HMAC-SHA1",
            "advbase": advbase,
            "advskew": advskew,
            "advskew_sent": advskew,
            "demote": 0,
        }
    return {
        "name": name,
        "vhid": vhid,
        "carpdev": "eth0",
        "state": state,
        **params,
        "vmac": False,
        "peers": [],
        "diagnostics": [],
        "demotion": 0,
        "demotion_reasons": [],
        "groups": ["carp"],
        "pool": None,
        "preempt": preempt,
        "enabled": True,
        "link_up": True,
        "addresses": ["192.0.2.100/24"],
        "accepting": state == "MASTER" or None,
        "master": None,
        "last_transition": "2026-12-06T13:00:00+0000",
        "last_reason": "master timed out",
        "history": [],
        "flapping": False,
        "counters": {
            "adverts_sent": 10,
            "adverts_received": 30,
            "transitions": 1,
            "dropped": {},
        },
        "host_steps": [
            {
                "name": "conntrackd commit",
                "runs": 1,
                "failed": 0,
                "late": 0,
                "skipped": 0,
                "last_duration": 0.01,
                "last_error": None,
            },
        ],
        "plan": [],
        **more,
    }


SYNC_DONE = {
    "running": True,
    "bulk": "done",
    "link": "up",
    "stall": None,
    "demoted_by": [],
    "stats": {"internal": 200, "external": 200},
    "started_by_carpd": None,
    "stop_with_carpd": False,
}
CONFIG_SAME = {
    "peer": "192.0.2.2",
    "checked": "2026-12-06T13:00:00+0000",
    "in_sync": True,
    "drift": None,
    "differ": [],
    "only_here": [],
    "only_peer": [],
    "error": None,
}


def node(name: str, *vhosts: dict[str, Any], **more: Any) -> dict[str, Any]:
    """A node's status JSON, as carpd.daemon.seam.view.to_json gives it."""
    return {
        "node": name,
        "pid": 4242,
        "config": "/etc/carpd/carpd.toml",
        "maintenance": False,
        "demotion": {},
        "groups": {"carp": 0},
        "services": {
            "directory": "/etc/carpd/checks",
            "directory_exists": True,
            "healthy": True,
            "failed": [],
            "results": [],
        },
        "vhosts": list(vhosts),
        "dropped": {},
        "actions": [],
        "state_sync": SYNC_DONE,
        "pools": None,
        "ifstated": None,
        "config_sync": CONFIG_SAME,
        "realtime": None,
        **more,
    }


def seen(name: str, status: dict[str, Any] | None, error: str | None = None) -> Seen:
    """What PeerClient.status gives for an answer (None: no answer, with ``error``)."""
    url = f"https://192.0.2.{len(name)}:8473"
    got = read(status) if status is not None else None
    took, skew = (0.01, 0.0) if got else (None, None)
    return Seen(name, url, 1_765_000_000.0, got, error, took, skew)


def view(here: dict[str, Any], *peers: Seen) -> dict[str, Any]:
    """The cluster view from ``here`` with its cluster report of ``peers`` (as the
    daemon's status carries it: through the report's own to_json)."""
    return build({**here, "cluster": ClusterReport(5.0, peers).to_json()})


def lan(v: dict[str, Any]) -> dict[str, Any]:
    (row,) = v["vhids"]
    assert isinstance(row, dict)
    return row


# --- the verdict ------------------------------------------------------------------------


def test_one_master_is_ok_and_its_backup_would_take_over() -> None:
    v = view(node("n1", vhost("MASTER")), seen("n2", node("n2", vhost("BACKUP", advskew=100))))
    assert v["verdict"] == "ok" and v["node"] == "n1"
    assert v["peers"] == [
        {
            "name": "n2",
            "answering": True,
            "error": None,
            "checked": 1_765_000_000.0,
            "clock_skew": 0.0,
            "maintenance": False,
            "demotion": 0,
        }
    ]
    row = lan(v)
    assert (row["name"], row["vhid"], row["verdict"]) == ("lan", 1, "ok")
    assert row["text"] == "n1 is MASTER"
    assert [(m["node"], m["here"], m["state"], m["advskew"]) for m in row["nodes"]] == [
        ("n1", True, "MASTER", 0),
        ("n2", False, "BACKUP", 100),
    ]
    assert row["successor"] == "n2"
    assert row["if_this_node_failed"] == [
        "n2 takes over lan after 3.39 s (its master-down interval)",
        "connections: n2 has 200 of our 200 (100%)",
        "health: n2 is healthy",
        "config: the same (checked 2026-12-06T13:00:00+0000)",
    ]
    assert ctl.exit_status(v) == ctl.EXIT_OK
    assert "lan (vhid 1): OK: n1 is MASTER" in ctl.text(v)


def test_the_same_pair_seen_from_the_backup_changes_nothing_if_it_failed() -> None:
    v = view(node("n2", vhost("BACKUP", advskew=100)), seen("n1", node("n1", vhost("MASTER"))))
    row = lan(v)
    assert (v["verdict"], row["text"]) == ("ok", "n1 is MASTER")
    assert row["if_this_node_failed"] == ["nothing: n2 is not MASTER of lan"]
    assert row["successor"] is None


def test_two_masters_are_a_split_brain_naming_both() -> None:
    v = view(node("n1", vhost("MASTER")), seen("n2", node("n2", vhost("MASTER", advskew=100))))
    row = lan(v)
    assert (v["verdict"], row["verdict"]) == ("split-brain", "split-brain")
    assert row["text"] == "split brain: n1 and n2 are all MASTER"
    assert ctl.exit_status(v) == ctl.EXIT_PROBLEM
    assert "lan (vhid 1): SPLIT-BRAIN: split brain: n1 and n2 are all MASTER" in ctl.text(v)


def test_a_split_brain_outweighs_a_silent_peer_and_another_vhid_that_is_fine() -> None:
    here = node("n1", vhost("MASTER"), vhost("MASTER", name="wan", vhid=2))
    n2 = node("n2", vhost("MASTER"), vhost("BACKUP", name="wan", vhid=2))
    v = view(here, seen("n2", n2), seen("n3", None, "no answer within 2 s"))
    verdicts = {r["name"]: (r["verdict"], r["text"]) for r in v["vhids"]}
    assert verdicts == {
        "lan": ("split-brain", "split brain: n1 and n2 are all MASTER"),
        "wan": ("unknown", "n1 is MASTER; not answering: n3"),
    }
    assert v["verdict"] == "split-brain"


def test_no_master_anywhere_is_no_master() -> None:
    v = view(node("n1", vhost("BACKUP")), seen("n2", node("n2", vhost("BACKUP", advskew=100))))
    row = lan(v)
    assert (v["verdict"], row["verdict"], row["text"]) == (
        "no-master",
        "no-master",
        "no node is MASTER",
    )
    assert ctl.exit_status(v) == ctl.EXIT_PROBLEM


def test_a_peer_not_answering_makes_it_unknown() -> None:
    v = view(node("n1", vhost("MASTER")), seen("n2", None, "no answer within 2 s"))
    row = lan(v)
    assert (v["verdict"], row["verdict"]) == ("unknown", "unknown")
    assert row["text"] == "n1 is MASTER; not answering: n2"
    (peer,) = v["peers"]
    assert (peer["answering"], peer["error"]) == (False, "no answer within 2 s")
    assert [m["answering"] for m in row["nodes"]] == [True, False]
    assert row["if_this_node_failed"] == [
        "no node would take over lan: no answering peer is BACKUP of it"
    ]
    assert row["successor"] is None
    assert "  n2: NOT ANSWERING: no answer within 2 s" in ctl.text(v)
    # Nor a MASTER here: still unknown (the silent peer may be it).
    v = view(node("n1", vhost("BACKUP")), seen("n2", None, "no answer within 2 s"))
    assert (v["verdict"], lan(v)["text"]) == ("unknown", "no MASTER here; not answering: n2")


def test_a_peer_whose_status_is_unreadable_counts_as_not_answering() -> None:
    """The report as stored may hold a status the view cannot read (a later carpd's, or
    a hostile one): the view reads it again and shows why, without its values."""
    here = {
        **node("n1", vhost("MASTER")),
        "cluster": {
            "interval": 5.0,
            "peers": [
                {
                    "name": "n2",
                    "url": "https://192.0.2.2:8473",
                    "answering": True,
                    "checked": 1.0,
                    "error": None,
                    "took": 0.01,
                    "clock_skew": 0.0,
                    "status": {
                        "node": "n2",
                        "vhosts": [{"name": "lan", "vhid": 999, "state": "x"}],
                    },
                },
            ],
        },
    }
    v = build(here)
    (peer,) = v["peers"]
    assert (peer["answering"], peer["error"]) == (
        False,
        "vhosts.vhid: Input should be less than or equal to 255",
    )
    assert (v["verdict"], lan(v)["text"]) == ("unknown", "n1 is MASTER; not answering: n2")


def test_carp_successor_is_the_ready_backup_with_the_lowest_advskew() -> None:
    n2 = node("n2", vhost("BACKUP", advskew=100))
    n3 = node("n3", vhost("BACKUP", advskew=50))
    n4 = node("n4", vhost("BACKUP", advskew=10, link_up=False))  # cannot take over
    n5 = node("n5", vhost("BACKUP", advskew=5, enabled=False))  # nor this one
    n6 = node("n6", vhost("INIT", advskew=1))
    v = view(node("n1", vhost("MASTER")), *(seen(n["node"], n) for n in (n2, n3, n4, n5, n6)))
    row = lan(v)
    assert row["successor"] == "n3"
    # 3 x advbase + advskew/256 = 3 + 50/256 = 3.195...
    assert row["if_this_node_failed"][0] == (
        "n3 takes over lan after 3.20 s (its master-down interval)"
    )


@pytest.mark.parametrize(
    ("advbase", "advskew", "after"),
    [(1, 0, "3.00"), (1, 100, "3.39"), (2, 128, "6.50"), (5, 255, "16.00")],
)
def test_carp_master_down_interval_is_three_advbase_and_advskew_over_256(
    advbase: int, advskew: int, after: str
) -> None:
    peer = node("n2", vhost("BACKUP", advbase=advbase, advskew=advskew))
    row = lan(view(node("n1", vhost("MASTER", advbase=advbase)), seen("n2", peer)))
    assert row["if_this_node_failed"][0] == (
        f"n2 takes over lan after {after} s (its master-down interval)"
    )


def test_vrrp3_successor_is_the_backup_with_the_highest_priority() -> None:
    def v3(state: str, priority: int, **more: Any) -> dict[str, Any]:
        return vhost(state, protocol="vrrp3", priority=priority, **more)

    v = view(
        node("n1", v3("MASTER", 254)),
        seen("n2", node("n2", v3("BACKUP", 100))),
        seen("n3", node("n3", v3("BACKUP", 200))),
    )
    row = lan(v)
    assert row["successor"] == "n3"
    # RFC 5798: 3 x interval + (256 - priority) x interval / 256 = 3 + 56/256
    assert row["if_this_node_failed"][0] == (
        "n3 takes over lan after 3.22 s (its master-down interval)"
    )
    assert [(m["node"], m["priority"], m["advskew"]) for m in row["nodes"]] == [
        ("n1", 254, None),
        ("n2", 100, None),
        ("n3", 200, None),
    ]
    assert "n3                   BACKUP  advbase 1, priority 200" in ctl.text(v)


@pytest.mark.parametrize("preempt", [True, False])
def test_a_better_backup_that_preempts_takes_over_after_the_first_to_time_out(
    preempt: bool,
) -> None:
    """n2's master-down interval ends first (1 s adverts); n3 has the higher priority
    but 2 s adverts: with preempt it takes over from n2, without it n2 stays."""
    n2 = node("n2", vhost("BACKUP", protocol="vrrp3", priority=150, advbase=1))
    n3 = node("n3", vhost("BACKUP", protocol="vrrp3", priority=250, advbase=2, preempt=preempt))
    here = node("n1", vhost("MASTER", protocol="vrrp3", priority=254))
    row = lan(view(here, seen("n2", n2), seen("n3", n3)))
    if preempt:
        assert row["successor"] == "n3"
        assert row["if_this_node_failed"][0] == (
            "n3 takes over lan after 6.05 s (its master-down interval), n2 first, until n3 "
            "preempts it"
        )
    else:
        assert row["successor"] == "n2"
        # 3 + 106/256
        assert row["if_this_node_failed"][0] == (
            "n2 takes over lan after 3.41 s (its master-down interval)"
        )


def failed_now(here: dict[str, Any], peer: dict[str, Any]) -> list[str]:
    row = lan(view(here, seen("n2", peer)))
    assert row["successor"] == "n2"
    out = row["if_this_node_failed"]
    assert isinstance(out, list) and len(out) == 4
    return out


@pytest.mark.parametrize(
    ("ours", "theirs", "sentence"),
    [
        (
            {"stats": {"internal": 200, "external": 0}},
            {"stats": {"internal": 0, "external": 150}},
            "n2 has 150 of our 200 (75%)",
        ),
        ({"stats": {"internal": 0, "external": 0}}, {}, "n2 has 200 of our 0"),
        ({"stats": None}, {}, "n2 is in sync (counts not read yet)"),
        ({}, {"bulk": "running"}, "at risk: n2's bulk resync is running"),
        ({}, {"bulk": "not started"}, "at risk: n2's bulk resync is not started"),
        (
            {},
            {"stall": "nothing for 30 s"},
            "at risk: n2's state sync is stalled (nothing for 30 s)",
        ),
        ({}, {"running": False}, "LOST: n2's conntrackd does not answer"),
        ({}, None, "LOST: n2 has no state sync"),
        (None, {}, "no state sync here ([conntrackd] off): they would be lost"),
    ],
)
def test_the_connections_sentence(
    ours: dict[str, Any] | None, theirs: dict[str, Any] | None, sentence: str
) -> None:
    here = node("n1", vhost("MASTER"), state_sync=None if ours is None else {**SYNC_DONE, **ours})
    peer = node(
        "n2", vhost("BACKUP"), state_sync=None if theirs is None else {**SYNC_DONE, **theirs}
    )
    assert failed_now(here, peer)[1] == f"connections: {sentence}"


@pytest.mark.parametrize(
    ("peer", "sentence"),
    [
        ({}, "healthy"),
        ({"maintenance": True}, "in maintenance mode"),
        ({"demotion": {"link": 50, "services": 20}}, "demoted by 70"),
        (
            {"services": {"healthy": False, "failed": ["dns", "vpn"], "results": []}},
            "failing checks: dns, vpn",
        ),
        (
            {
                "maintenance": True,
                "demotion": {"link": 50},
                "services": {"healthy": False, "failed": ["dns"]},
            },
            "in maintenance mode; demoted by 50; failing checks: dns",
        ),
        ({"services": None}, "healthy"),
    ],
)
def test_the_health_sentence(peer: dict[str, Any], sentence: str) -> None:
    out = failed_now(node("n1", vhost("MASTER")), node("n2", vhost("BACKUP"), **peer))
    assert out[2] == f"health: n2 is {sentence}"


@pytest.mark.parametrize(
    ("config_sync", "sentence"),
    [
        (CONFIG_SAME, "the same (checked 2026-12-06T13:00:00+0000)"),
        (None, "never compared (carpctl sync status)"),
        (
            {**CONFIG_SAME, "differ": ["carpd.toml"], "only_here": ["checks/dns"]},
            "DIFFERS: carpd.toml, checks/dns",
        ),
        (
            {**CONFIG_SAME, "differ": [f"f{i}" for i in range(7)]},
            "DIFFERS: f0, f1, f2, f3, f4 ...",
        ),
        ({**CONFIG_SAME, "only_peer": ["hooks/up"]}, "DIFFERS: hooks/up"),
        (
            {**CONFIG_SAME, "error": "peer refused: HTTP 403"},
            "not compared: peer refused: HTTP 403",
        ),
    ],
)
def test_the_config_sentence(config_sync: dict[str, Any] | None, sentence: str) -> None:
    here = node("n1", vhost("MASTER"), config_sync=config_sync)
    assert failed_now(here, node("n2", vhost("BACKUP")))[3] == f"config: {sentence}"


# --- a peer's answer is untrusted input --------------------------------------------------

HOSTILE = "hostile-value-7f3a"


@pytest.mark.parametrize(
    ("answer", "where"),
    [
        (
            {"node": "n2", "vhosts": [vhost("MASTER", name=HOSTILE, vhid=999)]},
            "vhosts.vhid: Input should be less than or equal to 255",
        ),
        (
            {"node": "n2", "vhosts": [{**vhost("MASTER", name=HOSTILE), "state": [HOSTILE]}]},
            "vhosts.state: Input should be a valid string",
        ),
        (
            {"node": "n2", "vhosts": [vhost("BACKUP", name=HOSTILE)] * 10_000},
            "vhosts: Value error, more than 1024 vhids",
        ),
        ({"node": [HOSTILE]}, "node: Input should be a valid string"),
        ({"node": HOSTILE * 20}, "node: String should have at most 256 characters"),
        (
            {"node": "n2", "maintenance": HOSTILE},
            "maintenance: Input should be a valid boolean, unable to interpret input",
        ),
        ({"node": "n2", "vhosts": HOSTILE}, "vhosts: Input should be a valid tuple"),
        ([HOSTILE], "the answer: Input should be a valid dictionary or instance of NodeStatus"),
    ],
)
def test_a_hostile_status_is_refused_without_echoing_its_values(answer: Any, where: str) -> None:
    with pytest.raises(Unreadable) as info:
        read(answer)
    assert str(info.value) == where
    assert HOSTILE not in str(info.value)


def test_a_status_keeps_nothing_but_what_the_view_needs() -> None:
    status = node("n2", vhost("BACKUP", history=[HOSTILE], last_reason=HOSTILE))
    status["services"]["results"] = [{"output": HOSTILE}]
    status["config"] = f"/etc/{HOSTILE}.toml"
    got = read(status)
    assert HOSTILE not in json.dumps(got.model_dump(mode="json"))
    (v,) = got.vhosts
    assert (v.name, v.state, v.advskew_sent) == ("lan", "BACKUP", 0)
    assert v.commit is not None and (v.commit.runs, v.commit.failed) == (1, 0)


# --- PeerClient against a real HTTPS server on loopback ----------------------------------

USER, PASSWORD = "watcher", "peer-pw-never-shown"
TIMEOUT = 0.5  # seconds: [cluster] timeout of these reads
MARGIN = 1.0  # seconds for the event loop and TLS on a loaded 2-core machine

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def certificate(tmp_path: Path, name: str) -> tuple[Path, Path, str]:
    """A self-signed certificate (openssl) and its SHA-256 as openssl prints it."""
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={name}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(cert)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return cert, key, out.strip().split("=", 1)[1]  # "sha256 Fingerprint=AB:CD:..."


@asynccontextmanager
async def https(cert: Path, key: Path, handler: Handler) -> AsyncIterator[int]:
    """An aiohttp server on 127.0.0.1 (a port of its own), TLS with ``cert``,
    ``handler`` for /api/status; its port."""
    app = web.Application()
    app.router.add_get("/api/status", handler)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


def client(port: int, fingerprint: str, tmp_path: Path) -> PeerClient:
    peer = ClusterPeer.model_validate(
        {
            "name": "n2",
            "url": f"https://127.0.0.1:{port}",
            "user": USER,
            "passfile": PassFile(tmp_path / "n2.pass", SecretBytes(PASSWORD.encode())),
            "fingerprint": fingerprint,
        }
    )
    return PeerClient(peer, TIMEOUT)


async def read_once(tmp_path: Path, handler: Handler, pin: str | None = None) -> Seen:
    """One PeerClient.status() against a server with the certificate "n2" (pinned, or
    ``pin`` pinned instead)."""
    cert, key, fingerprint = certificate(tmp_path, "n2")
    async with https(cert, key, handler) as port:
        c = client(port, pin or fingerprint, tmp_path)
        try:
            got = await c.status()
        finally:
            await c.close()
    assert PASSWORD not in json.dumps(got.to_json()) + str(got.error)
    return got


def test_a_good_answer_gives_the_status_and_the_user_is_sent(tmp_path: Path) -> None:
    authorization: list[str] = []

    async def status(request: web.Request) -> web.StreamResponse:
        authorization.append(request.headers.get("Authorization", ""))
        return web.json_response(node("n2", vhost("BACKUP", advskew=100)))

    got = asyncio.run(read_once(tmp_path, status))
    assert got.error is None and got.status is not None, got
    assert got.status.node == "n2"
    states = [(v.name, v.state, v.advskew_sent) for v in got.status.vhosts]
    assert states == [("lan", "BACKUP", 100)]
    assert got.took is not None and 0 <= got.took < TIMEOUT
    assert got.skew is not None and abs(got.skew) <= 1.5  # one clock; Date has whole seconds
    (header,) = authorization
    kind, _, encoded = header.partition(" ")
    assert kind == "Basic"
    assert base64.b64decode(encoded).decode() == f"{USER}:{PASSWORD}"
    shown = got.to_json()
    assert (shown["name"], shown["answering"], shown["status"]["node"]) == ("n2", True, "n2")


def test_a_peer_that_never_answers_is_given_up_within_the_timeout(tmp_path: Path) -> None:
    release = asyncio.Event()
    arrived: list[float] = []

    async def silent(request: web.Request) -> web.StreamResponse:
        arrived.append(time.monotonic())
        await release.wait()  # until the test is done with it
        return web.Response(text="late")

    async def run() -> tuple[Seen, float]:
        cert, key, fingerprint = certificate(tmp_path, "n2")
        async with https(cert, key, silent) as port:
            c = client(port, fingerprint, tmp_path)
            try:
                start = time.monotonic()
                got = await c.status()
                took = time.monotonic() - start
            finally:
                release.set()
                await c.close()
        return got, took

    got, took = asyncio.run(run())
    assert arrived, "the request never reached the server"
    assert got.status is None and got.error == f"no answer within {TIMEOUT:g} s", got
    assert TIMEOUT <= took < TIMEOUT + MARGIN, took
    assert PASSWORD not in json.dumps(got.to_json())


def test_another_certificate_than_the_pinned_one_is_refused(tmp_path: Path) -> None:
    served: list[str] = []

    async def status(request: web.Request) -> web.StreamResponse:
        served.append(request.path)
        return web.json_response(node("n2"))

    *_, other = certificate(tmp_path, "other")
    got = asyncio.run(read_once(tmp_path, status, pin=other))
    assert got.status is None
    assert got.error == "its certificate is not the pinned one (fingerprint)"
    assert served == []  # nothing was sent over the connection, the credential least of all


def test_http_401_shows_the_status_and_the_peers_reason(tmp_path: Path) -> None:
    async def refuse(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": "wrong user or password"}, status=401)

    got = asyncio.run(read_once(tmp_path, refuse))
    assert got.status is None and got.error == "HTTP 401 wrong user or password", got

    async def bare(request: web.Request) -> web.StreamResponse:
        return web.Response(status=401, text="no")

    got = asyncio.run(read_once(tmp_path, bare))
    assert got.error == "HTTP 401 Unauthorized", got


def test_a_hostile_answer_is_shown_as_unreadable_without_its_values(tmp_path: Path) -> None:
    async def hostile(request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"node": "n2", "vhosts": [{**vhost("MASTER", vhid=999), "state": [HOSTILE]}]}
        )

    got = asyncio.run(read_once(tmp_path, hostile))
    assert got.status is None
    assert got.error == "vhosts.vhid: Input should be less than or equal to 255"
    assert HOSTILE not in json.dumps(got.to_json())


def test_an_answer_that_is_not_json_is_shown_as_such(tmp_path: Path) -> None:
    async def html(request: web.Request) -> web.StreamResponse:
        return web.Response(text="<html>login</html>", content_type="text/html")

    got = asyncio.run(read_once(tmp_path, html))
    assert got.status is None and got.error == "Expecting value: line 1 column 1 (char 0)"


# --- the report's metrics ----------------------------------------------------------------


def test_the_report_samples_peer_up_and_each_vhid_master() -> None:
    n2 = node("n2", vhost("MASTER"), vhost("BACKUP", name="wan", vhid=2))
    report = ClusterReport(5.0, (seen("n2", n2), seen("n3", None, "no answer within 2 s")))
    got = {(s.name, s.labels): (s.value, s.kind) for s in report.samples()}
    assert got == {
        ("carpd_cluster_peer_up", (("peer", "n2"),)): (1, "gauge"),
        ("carpd_cluster_peer_clock_skew_seconds", (("peer", "n2"),)): (0.0, "gauge"),
        ("carpd_cluster_peer_master", (("peer", "n2"), ("name", "lan"), ("vhid", "1"))): (
            1,
            "gauge",
        ),
        ("carpd_cluster_peer_master", (("peer", "n2"), ("name", "wan"), ("vhid", "2"))): (
            0,
            "gauge",
        ),
        ("carpd_cluster_peer_up", (("peer", "n3"),)): (0, "gauge"),
    }
    assert report.lines() == [
        "cluster: n2 answering: lan MASTER, wan BACKUP",
        "cluster: n3 not answering: no answer within 2 s",
    ]


def test_a_status_larger_than_one_read_is_read_whole(tmp_path: Path) -> None:
    """client.py _get: r.content.read(MAX_ANSWER + 1) returns what is buffered, not up to n."""
    big = node("n2", *(vhost("BACKUP", name=f"v{i}", vhid=i % 255 + 1) for i in range(300)))

    async def status(request: web.Request) -> web.StreamResponse:
        return web.json_response(big)

    got = asyncio.run(read_once(tmp_path, status))
    assert got.error is None and got.status is not None and len(got.status.vhosts) == 300


def test_an_answer_larger_than_max_answer_is_refused_for_its_size(tmp_path: Path) -> None:
    async def huge(request: web.Request) -> web.StreamResponse:
        return web.Response(text='{"node": "n2"' + " " * MAX_ANSWER + "}")

    got = asyncio.run(read_once(tmp_path, huge))
    assert got.error == f"its answer is larger than {MAX_ANSWER} bytes", got


def test_a_hostile_dict_key_is_not_echoed() -> None:
    """status.py read(): the loc of a dict value's error holds the peer's key."""
    with pytest.raises(Unreadable) as info:
        read({"node": "n2", "demotion": {HOSTILE * 1000: "x"}})
    assert HOSTILE not in str(info.value)


def test_a_redirect_is_not_followed_with_the_credential(tmp_path: Path) -> None:
    got_auth: list[str | None] = []

    async def run() -> object:
        async def plain(request: web.Request) -> web.StreamResponse:
            got_auth.append(request.headers.get("Authorization"))
            return web.json_response({"node": "impostor"})

        app = web.Application()
        app.router.add_get("/{x:.*}", plain)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]

        async def redirect(request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(f"http://127.0.0.1:{port}/")

        try:
            return await read_once(tmp_path, redirect)
        finally:
            await runner.cleanup()

    got = asyncio.run(run())
    assert got_auth == [], "the credential went in clear text to another origin"
    assert got.status is None  # type: ignore[attr-defined]


def test_a_demoted_carp_backup_times_out_after_its_configured_advskew() -> None:
    """carpd.core.machine master_down_interval uses settings.advskew (and deadratio), as
    FreeBSD does; verdict (status.py down_interval) uses advskew_sent (demotion added)."""
    n2 = node("n2", vhost("BACKUP", advskew=0, advskew_sent=100))
    row = lan(view(node("n1", vhost("MASTER")), seen("n2", n2)))
    assert row["if_this_node_failed"][0].startswith("n2 takes over lan after 3.00 s")
