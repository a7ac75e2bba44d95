"""The [[track]] table (carpd/config/tables/track.py, document.py's cross-checks): a
tracker of each kind loads, and each refusal names the file, the key, the value and what
is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from carpd.config import ConfigError, load_config
from carpd.config.tables.track import SERVICE_WEIGHT, TARGETS

CARP = """
[[carp]]
name = "web"
vhid = 7
carpdev = "eth0"
pass = "hunter2"
addresses = ["192.0.2.100"]
groups = ["uplinks"]
"""


def write(tmp_path: Path, *tracks: str) -> Path:
    path = tmp_path / "carpd.toml"
    path.write_text(CARP + "".join(f"\n[[track]]\n{t}\n" for t in tracks))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value).splitlines()


# One valid tracker of each kind, with its kind's own keys where it has some.
VALID = {
    "script": ('targets = "test -e /run/ok"', ()),
    "interface": ('targets = ["eth1", "bond0.12"]', ()),
    "file": ('targets = "/run/carpd/maint"', ()),
    "process": ('targets = ["haproxy", "/run/haproxy.pid"]', ()),
    "ping": ('targets = ["192.0.2.1", "2001:db8::1"]\nsource = "192.0.2.10"\nmax_rtt = 50.0', ()),
    "tcp": ('targets = ["192.0.2.1:443", "[2001:db8::1]:80"]\ninterface = "eth1"', ()),
    "http": (
        'targets = "https://192.0.2.1/health"\nstatus = [200, 204]\nbody = "^ok"\n'
        "tls_verify = false",
        (),
    ),
    "dns": ('targets = "192.0.2.53"\nquery = "example.com"\nrecord = "AAAA"', ()),
    "bgp": ('targets = "upstream1"\ncontrol = "/run/bird/other.ctl"', ()),
    "bfd": ('targets = "198.51.100.1"\ndaemon = "frr"', ()),
}


def test_the_valid_tables_cover_every_kind() -> None:
    assert set(VALID) == set(TARGETS)


@pytest.mark.parametrize("kind", sorted(VALID))
def test_a_valid_tracker_of_each_kind_loads(tmp_path: Path, kind: str) -> None:
    keys, _ = VALID[kind]
    config = load_config(write(tmp_path, f'name = "t"\nkind = "{kind}"\n{keys}'))
    (t,) = config.track
    assert (t.name, t.kind) == ("t", kind)
    assert t.targets and all(isinstance(x, str) for x in t.targets)
    # The documented defaults.
    assert (t.quorum, t.interval, t.timeout, t.rise, t.fall) == (1, 1.0, 1.0, 3, 3)
    assert (t.weight, t.vhids, t.groups) == (SERVICE_WEIGHT, (), ())


def test_the_kind_specific_keys_are_read(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            'name = "h"\nkind = "http"\n' + VALID["http"][0],
            'name = "d"\nkind = "dns"\n' + VALID["dns"][0],
            'name = "p"\nkind = "ping"\n' + VALID["ping"][0],
            'name = "c"\nkind = "tcp"\n' + VALID["tcp"][0],
            'name = "b"\nkind = "bgp"\n' + VALID["bgp"][0],
        )
    )
    h, d, p, c, b = config.track
    assert (h.status, h.body, h.tls_verify) == ((200, 204), "^ok", False)
    assert (d.query, d.record) == ("example.com", "AAAA")
    assert (str(p.source), p.max_rtt) == ("192.0.2.10", 50.0)
    assert c.interface == "eth1"
    assert (b.control, b.daemon) == ("/run/bird/other.ctl", "bird")


def test_every_general_key_is_read_with_vhids_and_groups(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            'name = "uplink"\nkind = "ping"\n'
            'targets = ["198.51.100.1", "198.51.100.2", "198.51.100.3"]\n'
            "quorum = 2\ninterval = 0.5\ntimeout = 0.25\nrise = 4\nfall = 2\nweight = 50\n"
            'vhids = ["web"]\ngroups = ["uplinks"]',
        )
    )
    (t,) = config.track
    assert t.targets == ("198.51.100.1", "198.51.100.2", "198.51.100.3")
    assert (t.quorum, t.interval, t.timeout, t.rise, t.fall, t.weight) == (2, 0.5, 0.25, 4, 2, 50)
    assert (t.vhids, t.groups) == (("web",), ("uplinks",))


# (the table's keys, the line expected after "<file>: ")
REFUSED = {
    "timeout over interval": (
        'kind = "file"\ntargets = "/run/x"\ninterval = 1.0\ntimeout = 2.0',
        "track[0].timeout = 2.0: must be at most track[0].interval",
    ),
    "quorum over targets": (
        'kind = "file"\ntargets = ["/run/a", "/run/b"]\nquorum = 3',
        "track[0].quorum = 3: more than its 2 target(s)",
    ),
    "tcp without a port": (
        'kind = "tcp"\ntargets = "192.0.2.1"',
        'track[0].targets = "192.0.2.1": not host:port '
        "(an IPv6 address in brackets: [2001:db8::1]:80)",
    ),
    "tcp port 70000": (
        'kind = "tcp"\ntargets = ["192.0.2.1:80", "192.0.2.2:70000"]',
        'track[0].targets[1] = "192.0.2.2:70000": not host:port '
        "(an IPv6 address in brackets: [2001:db8::1]:80)",
    ),
    "tcp port 0": (
        'kind = "tcp"\ntargets = "192.0.2.1:0"',
        'track[0].targets = "192.0.2.1:0": not host:port '
        "(an IPv6 address in brackets: [2001:db8::1]:80)",
    ),
    "tcp v6 without brackets": (
        'kind = "tcp"\ntargets = "2001:db8::1:80"',
        'track[0].targets = "2001:db8::1:80": not host:port '
        "(an IPv6 address in brackets: [2001:db8::1]:80)",
    ),
    "http without a scheme": (
        'kind = "http"\ntargets = "192.0.2.1/health"',
        'track[0].targets = "192.0.2.1/health": not an http:// or https:// URL',
    ),
    "ping not an address": (
        'kind = "ping"\ntargets = "gateway.example"',
        'track[0].targets = "gateway.example": not an IPv4 or IPv6 address',
    ),
    "dns not an address": (
        'kind = "dns"\ntargets = "ns1.example"\nquery = "example.com"',
        'track[0].targets = "ns1.example": not an IPv4 or IPv6 address',
    ),
    "bfd not an address": (
        'kind = "bfd"\ntargets = "198.51.100.300"',
        'track[0].targets = "198.51.100.300": not an IPv4 or IPv6 address',
    ),
    "file not absolute": (
        'kind = "file"\ntargets = "run/maint"',
        'track[0].targets = "run/maint": not an absolute path',
    ),
    "interface with a slash": (
        'kind = "interface"\ntargets = "eth/0"',
        'track[0].targets = "eth/0": not an interface name',
    ),
    "body on tcp": (
        'kind = "tcp"\ntargets = "192.0.2.1:80"\nbody = "ok"',
        'track[0].body = "ok": only for kind http',
    ),
    "query on ping": (
        'kind = "ping"\ntargets = "192.0.2.1"\nquery = "example.com"',
        'track[0].query = "example.com": only for kind dns',
    ),
    "control on http": (
        'kind = "http"\ntargets = "http://192.0.2.1/"\ncontrol = "/run/bird.ctl"',
        'track[0].control = "/run/bird.ctl": only for kind bgp or bfd',
    ),
    "source on tcp": (
        'kind = "tcp"\ntargets = "192.0.2.1:80"\nsource = "192.0.2.10"',
        'track[0].source = "192.0.2.10": only for kind ping',
    ),
    "interface on ping": (
        'kind = "ping"\ntargets = "192.0.2.1"\ninterface = "eth1"',
        'track[0].interface = "eth1": only for kind tcp',
    ),
    "tls_verify on tcp": (
        'kind = "tcp"\ntargets = "192.0.2.1:80"\ntls_verify = false',
        "track[0].tls_verify = false: only for kind http",
    ),
    "record on ping": (
        'kind = "ping"\ntargets = "192.0.2.1"\nrecord = "AAAA"',
        'track[0].record = "AAAA": only for kind dns',
    ),
    "daemon on file": (
        'kind = "file"\ntargets = "/run/level"\ndaemon = "frr"',
        'track[0].daemon = "frr": only for kind bgp or bfd',
    ),
    "status on tcp, as numbers": (
        'kind = "tcp"\ntargets = "192.0.2.1:80"\nstatus = [200, 204]',
        'track[0].status = "200, 204": only for kind http',
    ),
    "dns without a query": (
        'kind = "dns"\ntargets = "192.0.2.53"',
        "track[0].query = None: required for kind dns",
    ),
    "unknown kind": (
        'kind = "smtp"\ntargets = "192.0.2.25:25"',
        'track[0].kind = "smtp": allowed values: "script", "interface", "file", "process", '
        '"ping", "tcp", "http", "dns", "bgp", "bfd"',
    ),
    "weight 0": (
        'kind = "file"\ntargets = "/run/x"\nweight = 0',
        "track[0].weight = 0: allowed range is 1-16777216",
    ),
    "weight 2^24 + 1": (
        'kind = "file"\ntargets = "/run/x"\nweight = 16777217',
        "track[0].weight = 16777217: allowed range is 1-16777216",
    ),
    "no targets": (
        'kind = "file"\ntargets = []',
        "track[0].targets = []: must not be empty",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_refusal_names_the_file_the_key_the_value_and_what_is_allowed(
    tmp_path: Path, case: str
) -> None:
    keys, expected = REFUSED[case]
    path = write(tmp_path, f'name = "t"\n{keys}')
    assert problems(path) == [f"{path}: {expected}"]


def test_the_largest_weight_is_taken(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, 'name = "t"\nkind = "file"\ntargets = "/x"\nweight = '
                               + str(1 << 24)))  # fmt: skip
    assert config.track[0].weight == 1 << 24


def test_a_timeout_equal_to_the_interval_is_taken(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, 'name = "t"\nkind = "file"\ntargets = "/x"\n'
                               "interval = 0.5\ntimeout = 0.5"))  # fmt: skip
    assert (config.track[0].interval, config.track[0].timeout) == (0.5, 0.5)


def test_a_duplicate_name_names_the_first_one(tmp_path: Path) -> None:
    t = 'name = "uplink"\nkind = "file"\ntargets = "/run/x"'
    path = write(tmp_path, t, 'name = "other"\nkind = "file"\ntargets = "/run/y"', t)
    assert problems(path) == [f'{path}: track[2].name = "uplink": duplicate name (also track[0])']


def test_vhids_and_groups_that_no_carp_has_are_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'name = "t"\nkind = "file"\ntargets = "/run/x"\n'
        'vhids = ["web", "mail"]\ngroups = ["uplinks", "carp", "dmz"]',
    )
    assert problems(path) == [
        f'{path}: track[0].vhids[1] = "mail": no [[carp]] has this name',
        f'{path}: track[0].groups[2] = "dmz": no [[carp]] is in this group',
    ]


def test_a_target_with_a_control_character_is_refused() -> None:
    from pydantic import ValidationError

    from carpd.config.model import TrackConfig

    try:
        TrackConfig.model_validate({"name": "t", "kind": "bgp", "targets": "up1\nrestart all"})
    except ValidationError as e:
        (conflict,) = e.errors()[0]["ctx"]["conflicts"]
        assert "control character" in conflict.message
    else:
        raise AssertionError("a newline in a bgp target was accepted")
