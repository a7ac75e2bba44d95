"""carpd.toml loading and validation (carpd.config)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pydantic
import pytest

from carpd.config import CarpConfig, Config, ConfigError, GlobalConfig, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "carpd.toml"
SECRET = "hunter2-do-not-leak"  # 19 characters

MINIMAL = f"""
[[carp]]
vhid = 7
carpdev = "eth0"
pass = "{SECRET}"
addresses = ["192.0.2.100"]
"""


def write(tmp_path: Path, text: str, name: str = "carpd.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value).splitlines()


def test_minimal_config_gets_the_documented_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    config = load_config(path)
    assert isinstance(config, Config)
    assert config.source == str(path)
    assert config.global_ == GlobalConfig()
    g = config.global_
    assert g.control_socket == Path("/run/carpd/carpd.sock")
    assert (g.preempt, g.log_level, g.syslog, g.syslog_facility) == (False, "info", False, "daemon")
    assert g.hook_timeout == 30.0
    assert g.realtime_priority is None  # the policy carpd was started with
    (c,) = config.carp
    assert isinstance(c, CarpConfig)
    assert (c.name, c.vhid, c.carpdev, c.password) == ("carp7", 7, "eth0", SECRET.encode())
    assert (c.advbase, c.advskew, c.deadratio, c.tiebreak) == (1, 0, 3, "ucarp")
    assert (c.preempt, c.neutral) == (False, False)
    assert (c.up, c.down, c.xparam, c.srcip, c.passfile) == (None, None, None, None, None)
    assert c.addresses == (ipaddress.IPv4Interface("192.0.2.100/32"),)


def test_every_key_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [global]
        control_socket = "/run/x.sock"
        preempt = true
        log_level = "debug"
        syslog = true
        syslog_facility = "local3"
        hook_timeout = 2.5
        realtime_priority = 50

        [[carp]]
        name = "web"
        vhid = 9
        carpdev = "bond0.12"
        pass = ""
        advbase = 2
        advskew = 254
        addresses = ["192.0.2.100/24", "2001:db8::100", "2001:db8:1::5/64"]
        up = "hooks/up.sh"
        down = "/usr/local/bin/down"
        xparam = "extra"
        srcip = "192.0.2.2"
        preempt = false
        tiebreak = "bsd"
        deadratio = 5
        neutral = true
        """,
    )
    config = load_config(path)
    g = config.global_
    assert (g.control_socket, g.preempt, g.log_level) == (Path("/run/x.sock"), True, "debug")
    assert (g.syslog, g.syslog_facility, g.hook_timeout) == (True, "local3", 2.5)
    assert g.realtime_priority == 50
    (c,) = config.carp
    assert (c.name, c.vhid, c.carpdev, c.password) == ("web", 9, "bond0.12", b"")
    assert (c.advbase, c.advskew, c.deadratio, c.tiebreak) == (2, 254, 5, "bsd")
    assert c.addresses == (
        ipaddress.IPv4Interface("192.0.2.100/24"),
        ipaddress.IPv6Interface("2001:db8::100/128"),
        ipaddress.IPv6Interface("2001:db8:1::5/64"),
    )
    assert c.up == tmp_path / "hooks/up.sh"  # relative to the config file
    assert c.down == Path("/usr/local/bin/down")
    assert (c.xparam, c.srcip) == ("extra", ipaddress.IPv4Address("192.0.2.2"))
    assert (c.preempt, c.neutral) == (False, True)  # own preempt beats [global]


def test_preempt_comes_from_global_unless_set(tmp_path: Path) -> None:
    text = "[global]\npreempt = true\n" + MINIMAL + MINIMAL.replace("vhid = 7", "vhid = 8")
    text += MINIMAL.replace("vhid = 7", "vhid = 9\npreempt = false")
    assert [c.preempt for c in load_config(write(tmp_path, text)).carp] == [True, True, False]


def test_same_vhid_on_other_carpdev_is_fine(tmp_path: Path) -> None:
    other = MINIMAL.replace('"eth0"', '"eth1"').replace("vhid = 7", 'vhid = 7\nname = "b"')
    config = load_config(write(tmp_path, MINIMAL + other))
    assert [(c.name, c.carpdev) for c in config.carp] == [("carp7", "eth0"), ("b", "eth1")]


def test_settings_compare_and_hash_by_value(tmp_path: Path) -> None:
    a = load_config(write(tmp_path, MINIMAL, "a.toml")).carp[0]
    b = load_config(write(tmp_path, MINIMAL, "b.toml")).carp[0]
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    skew = load_config(write(tmp_path, MINIMAL + "advskew = 1\n", "c.toml")).carp[0]
    password = load_config(write(tmp_path, MINIMAL.replace("hunter2", "hunter3"), "d.toml"))
    assert skew != a and password.carp[0] != a
    preempt = load_config(write(tmp_path, "[global]\npreempt = true\n" + MINIMAL, "e.toml"))
    assert preempt.carp[0] != a  # a changed global default shows in the vhid's settings


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    with pytest.raises(pydantic.ValidationError):
        config.carp[0].vhid = 8


def test_password_never_in_repr_str_or_dump(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.carp[0].password == SECRET.encode()
    for text in (repr(config), str(config), repr(config.carp[0]), str(config.carp[0])):
        assert SECRET not in text
    assert SECRET not in config.model_dump_json()
    assert SECRET not in repr(config.model_dump())


def test_passfile_first_line_relative_to_config(tmp_path: Path) -> None:
    (tmp_path / "vhid7.pass").write_bytes(SECRET.encode() + b"\nsecond line\n")
    text = MINIMAL.replace(f'pass = "{SECRET}"', 'passfile = "vhid7.pass"')
    config = load_config(write(tmp_path, text))
    c = config.carp[0]
    assert c.password == SECRET.encode()
    assert c.passfile is not None and c.passfile.path == tmp_path / "vhid7.pass"
    assert SECRET not in repr(config) and SECRET not in config.model_dump_json()


def test_passfile_without_newline_and_empty(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"abc")
    (tmp_path / "b").write_bytes(b"")
    text = MINIMAL.replace(f'pass = "{SECRET}"', 'passfile = "a"')
    text += MINIMAL.replace(f'pass = "{SECRET}"', 'passfile = "b"').replace("7", "8")
    assert [c.password for c in load_config(write(tmp_path, text)).carp] == [b"abc", b""]


def test_passfile_errors(tmp_path: Path) -> None:
    (tmp_path / "long").write_bytes(b"x" * 20 + b"\n")
    text = MINIMAL.replace(f'pass = "{SECRET}"', 'passfile = "long"')
    text += MINIMAL.replace(f'pass = "{SECRET}"', 'passfile = "absent"').replace("7", "8")
    path = write(tmp_path, text)
    assert problems(path) == [
        f'{path}: carp[0] (vhid 7).passfile = "long": the password in it has 20 characters, '
        "at most 19 are allowed (ucarp and the BSDs use only 19)",
        f'{path}: carp[1] (vhid 8).passfile = "absent": cannot read it: No such file or directory',
    ]


# (what replaces `old` in MINIMAL, or text appended, and the expected problem line)
ERRORS = [
    ("vhid = 7", "vhid = 300", "carp[0].vhid = 300: allowed range is 1-255"),
    ("vhid = 7", "vhid = 0", "carp[0].vhid = 0: allowed range is 1-255"),
    ("vhid = 7", 'vhid = "7"', 'carp[0].vhid = "7": must be an integer'),
    ("vhid = 7", "vhid = true", "carp[0].vhid = true: must be an integer"),
    ("", "advskew = 255", "carp[0] (vhid 7).advskew = 255: allowed range is 0-254"),
    (
        "",
        "advbase = 0",
        "carp[0] (vhid 7).advbase = 0: allowed range is 1-255 (whole seconds) for CARP",
    ),
    ("", "deadratio = 256", "carp[0] (vhid 7).deadratio = 256: allowed range is 1-255"),
    ("", "preempt = 1", "carp[0] (vhid 7).preempt = 1: must be true or false"),
    (
        "",
        'tiebreak = "openbsd"',
        'carp[0] (vhid 7).tiebreak = "openbsd": allowed values: "ucarp", "bsd"',
    ),
    (
        "",
        'srcip = "2001:db8::1"',
        'carp[0] (vhid 7).srcip = "2001:db8::1": not an IPv4 address (e.g. 192.0.2.1)',
    ),
    ("", 'up = ""', 'carp[0] (vhid 7).up = "": must not be empty'),
    (
        "",
        'colour = "red"',
        "carp[0] (vhid 7).colour: unknown key (allowed keys: name, vhid, carpdev, pass, passfile, "
        "protocol, advbase, advskew, priority, accept, vmac, peers, peers_routed, "
        "replay_protection, addresses, up, down, pre_release, pre_release_timeout, xparam, "
        "srcip, preempt, garp_refresh, tiebreak, hmac_variant, deadratio, neutral, groups)",
    ),
    ('carpdev = "eth0"', "", "carp[0] (vhid 7).carpdev: missing required key"),
    (
        'carpdev = "eth0"',
        'carpdev = "a-very-long-ifname"',
        'carp[0] (vhid 7).carpdev = "a-very-long-ifname": allowed length is 1-15 characters',
    ),
    (
        'carpdev = "eth0"',
        'carpdev = "eth0:1"',
        'carp[0] (vhid 7).carpdev = "eth0:1": not an interface name: 1-15 characters, '
        "no '/', ':', whitespace or control characters",
    ),
    (
        'addresses = ["192.0.2.100"]',
        'addresses = ["192.0.2.1/24", "192.0.2.300/24"]',
        'carp[0] (vhid 7).addresses[1] = "192.0.2.300/24": not an address/prefix '
        "(e.g. 192.0.2.100/24 or 2001:db8::100/64)",
    ),
    (
        'addresses = ["192.0.2.100"]',
        'addresses = ["192.0.2.300/24"]',
        'carp[0] (vhid 7).addresses[0] = "192.0.2.300/24": not an address/prefix '
        "(e.g. 192.0.2.100/24 or 2001:db8::100/64)",
    ),
    (
        'addresses = ["192.0.2.100"]',
        "addresses = []",
        "carp[0] (vhid 7).addresses = []: must not be empty",
    ),
    (
        'addresses = ["192.0.2.100"]',
        'addresses = ["192.0.2.1/24", "2001:db8::1", "192.0.2.1/32"]',
        'carp[0] (vhid 7).addresses[2] = "192.0.2.1/32": 192.0.2.1 is listed twice '
        "(also carp[0] (vhid 7).addresses[0])",
    ),
    (
        'addresses = ["192.0.2.100"]',
        "addresses = [3221225985]",
        "carp[0] (vhid 7).addresses[0] = 3221225985: not an address/prefix "
        "(e.g. 192.0.2.100/24 or 2001:db8::100/64)",
    ),
    (
        'addresses = ["192.0.2.100"]',
        'addresses = ["224.0.0.18"]',
        'carp[0] (vhid 7).addresses[0] = "224.0.0.18/32": not a unicast address',
    ),
    # The BSD kernels never hash these (spec 2.2): a peer could not verify our adverts.
    *(
        (
            'addresses = ["192.0.2.100"]',
            f'addresses = ["{address}"]',
            f'carp[0] (vhid 7).addresses[0] = "{address}/{bits}": not a unicast address',
        )
        for address, bits in (("0.0.0.0", 32), ("255.255.255.255", 32), ("::", 128))
    ),
    (
        f'pass = "{SECRET}"',
        f'pass = "{SECRET}"\nhmac_variant = "netbsd"',
        'carp[0] (vhid 7).hmac_variant = "netbsd": allowed values: "openbsd", "freebsd"',
    ),
    (
        'addresses = ["192.0.2.100"]',
        'addresses = "192.0.2.100"',
        'carp[0] (vhid 7).addresses = "192.0.2.100": must be an array',
    ),
    (
        f'pass = "{SECRET}"',
        'pass = "0123456789abcdefghijklmno"',
        "carp[0] (vhid 7).pass = <hidden, 25 characters>: at most 19 characters "
        "(ucarp and the BSDs use only 19)",
    ),
    (
        f'pass = "{SECRET}"',
        "",
        "carp[0] (vhid 7): exactly one of pass or passfile is required (found neither)",
    ),
    (
        "",
        'passfile = "/x"',
        "carp[0] (vhid 7): exactly one of pass or passfile is required (found both)",
    ),
]


@pytest.mark.parametrize(("old", "new", "expected"), ERRORS)
def test_carp_errors_name_file_key_value_and_allowed(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    if old:
        assert old in MINIMAL
        text = MINIMAL.replace(old, new)
    else:
        text = MINIMAL + new + "\n"
    if "passfile" in new:
        (tmp_path / "x").write_text("pw\n")
        text = text.replace('"/x"', f'"{tmp_path / "x"}"')
        expected = expected.replace('"/x"', f'"{tmp_path / "x"}"')
    path = write(tmp_path, text)
    assert problems(path) == [f"{path}: {expected}"]


GLOBAL_ERRORS = [
    ("hook_timeout = 0", "global.hook_timeout = 0: must be greater than 0"),
    ("hook_timeout = inf", "global.hook_timeout = inf: must be a finite number"),
    (
        'log_level = "loud"',
        'global.log_level = "loud": allowed values: "debug", "info", "warning", "error"',
    ),
    ('syslog_facility = "local8"', 'global.syslog_facility = "local8": allowed values: "auth"'),
    ('syslog = "yes"', 'global.syslog = "yes": must be true or false'),
    ("realtime_priority = 0", "global.realtime_priority = 0: allowed range is 1-99"),
    ("garp_refresh = -1", "global.garp_refresh = -1: allowed range is 0-86400"),
    ('garp_refresh = "x"', 'global.garp_refresh = "x": must be a number'),
    ("realtime_priority = 100", "global.realtime_priority = 100: allowed range is 1-99"),
    (
        "color = 1",
        "global.color: unknown key (allowed keys: control_socket, preempt, garp_refresh, log_level",
    ),
]


@pytest.mark.parametrize(("line", "expected"), GLOBAL_ERRORS)
def test_global_errors(tmp_path: Path, line: str, expected: str) -> None:
    path = write(tmp_path, f"[global]\n{line}\n{MINIMAL}")
    (problem,) = problems(path)
    assert problem.startswith(f"{path}: {expected}")


def test_document_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "[global]\n")
    assert problems(path) == [
        f"{path}: carp: missing required key: at least one [[carp]] table is required"
    ]
    path = write(tmp_path, "carp = []\n")
    assert problems(path) == [
        f"{path}: carp: missing required key: at least one [[carp]] table is required"
    ]
    path = write(tmp_path, "[carp]\nvhid = 1\n")
    assert problems(path) == [f"{path}: carp = {{vhid = 1}}: must be an array of tables [[carp]]"]
    path = write(tmp_path, "extra = 1\n" + MINIMAL)
    assert problems(path) == [
        f"{path}: extra: unknown key "
        "(allowed keys: global, conntrackd, web, route, ifstated, sync, cluster, carp, pool, "
        "action, follow, track)"
    ]


def test_errors_name_tables_by_their_name_not_their_place(tmp_path: Path) -> None:
    """In a long file a table is found by its name: ``carp "wan"``, not ``carp[1]``;
    a table without a name keeps its index and the key it is told by."""
    lan = MINIMAL.replace("vhid = 7", 'name = "lan"\nvhid = 7')
    wan = MINIMAL.replace("vhid = 7", 'name = "wan"\nvhid = 8\nadvskew = 300')
    text = (
        lan
        + wan
        + (
            '[[action]]\nname = "notify"\nvhid = "wan"\non = ["master", "soon"]\nrun = ["x"]\n'
            '[[follow]]\ninterface = "wan1"\nvhid = "wan"\nmac = "zz"\n'
            '[sync]\n[[sync.files]]\npath = "/etc/x"\ncheck = []\n'
        )
    )
    assert problems(write(tmp_path, text)) == [
        f'{tmp_path / "carpd.toml"}: sync.files[0] (path "/etc/x").check = []: must not be empty',
        f'{tmp_path / "carpd.toml"}: carp "wan".advskew = 300: allowed range is 0-254',
        f'{tmp_path / "carpd.toml"}: action "notify".on[1] = "soon": allowed values: '
        '"master", "backup", "pre-release"',
        f'{tmp_path / "carpd.toml"}: follow[0] (interface "wan1").mac = "zz": '
        "not a MAC address like 02:00:00:00:00:01",
    ]
    # Cross-checks name both tables the same way.
    second = MINIMAL.replace("vhid = 7", 'name = "lan2"\nvhid = 7')
    assert problems(write(tmp_path, lan + second)) == [
        f'{tmp_path / "carpd.toml"}: carp "lan2".vhid = 7: duplicate vhid 7 on carpdev eth0 '
        '(also carp "lan")'
    ]


def test_cross_checks(tmp_path: Path) -> None:
    second = MINIMAL.replace('addresses = ["192.0.2.100"]', 'addresses = ["192.0.2.101"]')
    path = write(tmp_path, MINIMAL + second)
    assert problems(path) == [
        f"{path}: carp[1].vhid = 7: duplicate vhid 7 on carpdev eth0 (also carp[0] (vhid 7))"
    ]
    named = MINIMAL.replace("vhid = 7", 'vhid = 8\nname = "carp7"')
    path = write(tmp_path, MINIMAL + named)
    # The name at fault does not name its table: index and vhid do.
    assert problems(path) == [
        f'{path}: carp[1] (vhid 8).name = "carp7": duplicate name (also carp[0] (vhid 7))'
    ]
    on_eth1 = MINIMAL.replace('"eth0"', '"eth1"')
    (problem,) = problems(write(tmp_path, MINIMAL + on_eth1))
    assert problem.endswith(
        'carp[1] (vhid 7).name = "carp7": duplicate name (also carp[0] (vhid 7)); '
        "the name defaults to carp<vhid>: set a distinct name"
    )


def test_all_problems_reported_one_per_line(tmp_path: Path) -> None:
    text = MINIMAL.replace("vhid = 7", "vhid = 300") + "advskew = 255\ncolour = 1\n"
    lines = problems(write(tmp_path, text))
    assert len(lines) == 3
    assert [line.split(": ")[1].split(" = ")[0] for line in lines] == [
        "carp[0].vhid",  # the key that tells the table is wrong: no "(vhid 300)" on it
        "carp[0] (vhid 300).advskew",
        "carp[0] (vhid 300).colour",
    ]


def test_password_never_in_error(tmp_path: Path) -> None:
    long_secret = "sw0rdfish-" * 3
    text = MINIMAL.replace(SECRET, long_secret).replace("vhid = 7", "vhid = 300")
    path = write(tmp_path, text + "advskew = 255\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert len(str(err).splitlines()) == 3
    assert long_secret not in str(err) and long_secret not in repr(err)
    assert err.__cause__ is None and err.__suppress_context__  # no pydantic text in tracebacks
    # A misspelt key holding the password is not echoed either.
    wrong_key = MINIMAL.replace(f'pass = "{SECRET}"', f'password = "{SECRET}"')
    assert not any(SECRET in p for p in problems(write(tmp_path, wrong_key)))
    wrong_type = MINIMAL.replace(f'pass = "{SECRET}"', "pass = 1234567")
    assert problems(write(tmp_path, wrong_type)) == [
        f"{tmp_path / 'carpd.toml'}: carp[0] (vhid 7).pass = <hidden>: must be a string"
    ]


def test_toml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "advskew = \n")
    (problem,) = problems(path)
    assert problem == f"{path}: line 7, column 11: TOML syntax error: invalid value"


def test_unreadable_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert problems(missing) == [f"{missing}: no such file (see examples/carpd.toml)"]
    assert problems(tmp_path) == [f"{tmp_path}: cannot read: Is a directory"]
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"# ok\n\xff\xfe\n")
    assert problems(binary) == [f"{binary}: line 2: not UTF-8 text"]


def test_example_config_loads() -> None:
    config = load_config(EXAMPLE)
    assert len(config.carp) == 3
    v4, dual, vrrp = config.carp
    assert {a.version for a in v4.addresses} == {4}
    assert {a.version for a in dual.addresses} == {4, 6}
    assert (v4.hmac_variant, dual.hmac_variant) == ("openbsd", "freebsd")
    assert (vrrp.protocol, vrrp.interval_cs, vrrp.vmac, vrrp.password) == ("vrrp3", 10, True, b"")
    for c in config.carp:
        assert c.passfile is None
        for a in c.addresses:
            doc = ("192.0.2.0/24", "198.51.100.0/24", "2001:db8::/32")
            assert any(a.ip in ipaddress.ip_network(n) for n in doc)


def test_the_conntrackd_table_is_read_and_checked(tmp_path: Path) -> None:
    table = (
        '[conntrackd]\nenabled = true\nconfig = "ct.conf"\nexpectations = true\n'
        "commit_timeout = 1.5\ndemotion_factor = 100\n\n"
    )
    cfg = load_config(write(tmp_path, table + MINIMAL))
    ct = cfg.conntrackd
    assert (ct.enabled, ct.expectations, ct.commit_timeout, ct.demotion_factor) == (
        True,
        True,
        1.5,
        100,
    )
    assert ct.config == tmp_path / "ct.conf"  # relative to the config file
    assert load_config(write(tmp_path, MINIMAL)).conntrackd.enabled is False
    bad = write(tmp_path, "[conntrackd]\ncommit_timeout = 0\nbulk_timeout = 9999\n\n" + MINIMAL)
    assert problems(bad) == [
        f"{bad}: conntrackd.commit_timeout = 0: must be greater than 0 and at most 60",
        f"{bad}: conntrackd.bulk_timeout = 9999: must be greater than 0 and at most 3600",
    ]


def test_a_passfile_can_be_a_systemd_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``%d`` is systemd's credentials directory (LoadCredential=carp-lan:... in the unit),
    so the password need not be readable outside the service."""
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "carp-lan").write_text(f"{SECRET}\n")
    text = MINIMAL.replace(f'pass = "{SECRET}"', 'passfile = "%d/carp-lan"')
    path = write(tmp_path, text)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    c = load_config(path).carp[0]
    assert c.password == SECRET.encode() and c.passfile is not None
    assert c.passfile.path == creds / "carp-lan"
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == (
        f'{path}: carp[0] (vhid 7).passfile = "%d/carp-lan": %d is systemd\'s credentials '
        "directory, and $CREDENTIALS_DIRECTORY is not set (LoadCredential= in the unit)"
    )


def test_role_following_tables_name_real_targets_and_one_command(tmp_path: Path) -> None:
    text = MINIMAL + (
        '[[action]]\nname = "a"\nvhid = "carp7"\non = ["master"]\nrun = ["/bin/true"]\n'
        '[[action]]\nname = "a"\ngroup = "nope"\non = ["master", "later"]\n'
        'run = ["x"]\nshell = "y"\n'
        '[[follow]]\ninterface = "eth0"\nvhid = "carp8"\nmac = "zz"\n'
    )
    path = write(tmp_path, text)
    assert problems(path) == [
        f'{path}: action[1].on[1] = "later": allowed values: "master", "backup", "pre-release"',
        f'{path}: follow[0] (interface "eth0").mac = "zz": not a MAC address like '
        "02:00:00:00:00:01",
    ]
    text = text.replace(', "later"', "").replace('"zz"', '"02:00:00:00:00:01"')
    assert problems(write(tmp_path, text)) == [
        f"{path}: action[1]: exactly one of run or shell is required (found both)"
    ]
    assert problems(write(tmp_path, text.replace('shell = "y"\n', ""))) == [
        # Two actions named "a": neither name tells them apart, so they go by index.
        f'{path}: action[1].group = "nope": no [[carp]] is in this group',
        f'{path}: follow[0] (interface "eth0").vhid = "carp8": no [[carp]] has this name',
        f'{path}: action[1].name = "a": duplicate name (also action[0])',
        f'{path}: follow[0].interface = "eth0": a carpdev cannot follow a role: '
        "its link carries the adverts",
    ]


def test_a_bad_ifstated_file_is_refused_with_its_line_and_column(tmp_path: Path) -> None:
    conf = write(tmp_path, "state a {\n\tif carp7.link.up\n\t\tset-state b\n}\n", "ifstated.conf")
    # Relative to the config's directory: the value shown is short whatever tmp_path is
    # (a value over 80 characters is shortened in the message).
    path = write(tmp_path, '[ifstated]\nfile = "ifstated.conf"\n' + MINIMAL)
    assert problems(path) == [
        f"{path}: ifstated.file = \"ifstated.conf\": {conf}:3:3: state 'b' not declared"
    ]
    conf.write_text("state a {\n\tif carp7.link.up\n\t\tset-state $where\n}\n")
    path = write(tmp_path, f'[ifstated]\nfile = "{conf}"\ndefines = {{where = "a"}}\n' + MINIMAL)
    assert load_config(path).ifstated.defines == {"where": "a"}  # -D macro=value


def test_peers_routed_needs_peers(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "peers_routed = true\n")
    assert problems(path) == [
        f"{path}: carp[0] (vhid 7).peers_routed = true: only with unicast "
        "carp[0] (vhid 7).peers: multicast adverts never cross a router"
    ]


# -- names and paths that end up in generated text (issue 26, item 11) ----------------

CONNTRACKD = """
[conntrackd]
interface = "sync0"
address = "203.0.113.1"
peer = "203.0.113.2"
"""


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text)


def test_a_newline_in_conntrackd_run_dir_is_refused(tmp_path: Path) -> None:
    """The review's run_dir would have added a LogFile line of its own to conntrackd.conf."""
    run_dir = "/run/ctd\n}\nGeneral {\n\tLogFile /etc/cron.d/evil\n"
    path = write(tmp_path, MINIMAL + CONNTRACKD + f"run_dir = {toml_string(run_dir)}\n")
    assert problems(path) == [
        f"{path}: conntrackd.run_dir = {toml_string(run_dir)}: contains the control "
        "character \\n: a path may hold none"
    ]


def test_a_blank_in_conntrackd_run_dir_is_refused(tmp_path: Path) -> None:
    """conntrackd's lexer ends a path at a blank: the rest would be read as the file."""
    run_dir = "/run/ctd } General { LogFile /etc/cron.d/evil"
    path = write(tmp_path, MINIMAL + CONNTRACKD + f"run_dir = {toml_string(run_dir)}\n")
    assert problems(path) == [
        f"{path}: conntrackd.run_dir = {toml_string(run_dir)}: conntrackd.conf cannot hold "
        "a path with whitespace or '\"'"
    ]


@pytest.mark.parametrize("key", ["up", "passfile", "control_socket", "users_file"])
def test_control_characters_are_refused_in_every_path(tmp_path: Path, key: str) -> None:
    value = toml_string("/etc/carpd/x\x1b]0;owned\x07")
    table, text = {
        "up": ("carp[0] (vhid 7).", MINIMAL + f"up = {value}\n"),
        "passfile": (
            "carp[0] (vhid 7).",
            MINIMAL.replace(f'pass = "{SECRET}"', f"passfile = {value}"),
        ),
        "control_socket": ("global.", f"[global]\ncontrol_socket = {value}\n" + MINIMAL),
        "users_file": ("web.", f"[web]\nusers_file = {value}\n" + MINIMAL),
    }[key]
    path = write(tmp_path, text)
    assert problems(path) == [
        f"{path}: {table}{key} = {value}: contains the control character \\x1b: a path may "
        "hold none"
    ]


@pytest.mark.parametrize("name", ['x";drop#', "x{y}", "a;b", "p q"])
def test_a_pool_name_that_would_break_the_nft_script_is_refused(tmp_path: Path, name: str) -> None:
    """`{ } " ; #` passed --check and made the pool's nft script fail at run time."""
    pool = f"""
[[pool]]
name = {toml_string(name)}
carpdev = "eth0"
address = "192.0.2.50/24"
nodes = ["1:0", "2:100"]
pass = "pool-secret"
"""
    path = write(tmp_path, pool)
    assert problems(path) == [
        f"{path}: pool[0].name = {toml_string(name)}: not a pool name of 1-11 characters: "
        "letters, digits, '.' and '_'"
    ]


@pytest.mark.parametrize(
    ("key", "value", "table"),
    [
        ("name", 'lan";#', "carp[0] (vhid 7)"),
        ("name", "lan\x1b[2J", "carp[0] (vhid 7)"),
    ],
)
def test_names_are_limited_to_safe_characters(
    tmp_path: Path, key: str, value: str, table: str
) -> None:
    path = write(tmp_path, MINIMAL + f"{key} = {toml_string(value)}\n")
    assert problems(path) == [
        f"{path}: {table}.{key} = {toml_string(value)}: not a name of 1-15 characters: "
        "letters, digits, '.', '_' and '-'"
    ]


def test_a_conntrackd_interface_with_conntrackd_syntax_is_refused(tmp_path: Path) -> None:
    text = MINIMAL + CONNTRACKD.replace('"sync0"', '"s}{0"')
    path = write(tmp_path, text)
    assert problems(path) == [
        f'{path}: conntrackd.interface = "s}}{{0": not an interface name of 1-15 '
        "characters: letters, digits, '.', '_' and '-'"
    ]
