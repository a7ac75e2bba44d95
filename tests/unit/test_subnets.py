"""A ucarp command line's -a without a prefix takes the carpdev's subnet's prefix, looked
up when the vhid starts (carpd.daemon.runtime.subnets); what the vhid leaves on leaving MASTER is
tested in the lab (tests/lab/test_ucarp_mode.py)."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import pytest
from fakes import ETH0, FakeNetlink, FakePorts, install

from carpd.config import Config, ConfigError, config_from_ucarp_args, load_config
from carpd.core.model import State
from carpd.daemon.runtime.runtime import Daemon
from carpd.daemon.runtime.subnets import with_carpdev_prefixes
from carpd.daemon.service.main import main as carpd
from carpd.linux import ifaddrs

UCARP = ["-i", "eth0", "-s", "192.0.2.1", "-v", "7", "-p", "secret"]


def ucarp(*addrs: str) -> Config:
    args = [*UCARP]
    for a in addrs:
        args += ["-a", a]
    return config_from_ucarp_args(args)


def resolve(config: Config, *own: str) -> tuple[list[str], list[tuple[bool, str]]]:
    cfg = config.carp[0]
    vips = {a.ip for a in cfg.addresses}
    new, notes = with_carpdev_prefixes(cfg, [ipaddress.ip_interface(a) for a in own], vips)
    assert new.prefix_from_carpdev == ()
    return [str(a) for a in new.addresses], notes


def test_a_bare_address_is_marked_and_one_with_a_prefix_is_not() -> None:
    cfg = ucarp("192.0.2.107", "192.0.2.108/32", "2001:db8::7").carp[0]
    assert [str(a) for a in cfg.prefix_from_carpdev] == ["192.0.2.107", "2001:db8::7"]


def test_a_bare_address_takes_the_prefix_of_the_carpdev_subnet_that_holds_it() -> None:
    addresses, notes = resolve(ucarp("192.0.2.107"), "192.0.2.1/24", "fe80::1/64")
    assert addresses == ["192.0.2.107/24"]
    assert notes == [(False, "carp0: 192.0.2.107 takes /24 from eth0's 192.0.2.1/24")]


def test_the_narrowest_subnet_that_holds_it_wins() -> None:
    addresses, _ = resolve(ucarp("192.0.2.107"), "192.0.2.1/24", "192.0.2.65/26", "10.0.0.1/8")
    assert addresses == ["192.0.2.107/26"]


def test_a_stale_copy_of_the_address_and_host_addresses_are_not_the_subnet() -> None:
    # A leftover 192.0.2.107/16 (an old up-script's) and a /32 say nothing of the subnet.
    addresses, _ = resolve(ucarp("192.0.2.107"), "192.0.2.107/16", "192.0.2.9/32", "192.0.2.1/24")
    assert addresses == ["192.0.2.107/24"]


def test_outside_every_subnet_it_is_a_host_address_with_a_warning_saying_what_to_give() -> None:
    addresses, notes = resolve(ucarp("192.0.2.107"), "198.51.100.1/24")
    assert addresses == ["192.0.2.107/32"]
    assert notes == [
        (
            True,
            "carp0: no subnet of eth0 holds 192.0.2.107: adding it as 192.0.2.107/32; give "
            "the prefix your up-script gives it (-a 192.0.2.107/24)",
        )
    ]


def test_a_given_prefix_is_kept_and_ipv6_takes_its_subnet_too() -> None:
    config = ucarp("192.0.2.108/32", "2001:db8::7")
    addresses, notes = resolve(config, "192.0.2.1/24", "2001:db8::1/64", "fe80::1/64")
    assert addresses == ["192.0.2.108/32", "2001:db8::7/64"]
    assert [warn for warn, _ in notes] == [False]


def test_the_file_cannot_set_it(tmp_path: Path) -> None:
    path = tmp_path / "carpd.toml"
    path.write_text(
        '[[carp]]\nvhid = 1\ncarpdev = "eth0"\npass = "x"\naddresses = ["192.0.2.107"]\n'
        'prefix_from_carpdev = ["192.0.2.107"]\n'
    )
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert "prefix_from_carpdev: unknown key" in str(e.value)


def test_the_node_own_address_cannot_be_a_virtual_one(tmp_path: Path) -> None:
    # Leaving MASTER removes the addresses in any prefix: it would take the node's own.
    with pytest.raises(ConfigError) as e:
        ucarp("192.0.2.1")
    assert str(e.value) == (
        'command line: --srcip = "192.0.2.1": is also in --addr: the node\'s own address '
        "cannot be a virtual one"
    )
    path = tmp_path / "carpd.toml"
    path.write_text(
        '[[carp]]\nvhid = 1\ncarpdev = "eth0"\npass = "x"\nsrcip = "192.0.2.1"\n'
        'addresses = ["192.0.2.100/24", "192.0.2.1/24"]\n'
    )
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert 'srcip = "192.0.2.1": is also in' in str(e.value)


class Spy(FakeNetlink):
    """Remembers how each address was removed."""

    def __init__(self) -> None:
        super().__init__()
        self.any_prefix: list[bool] = []

    async def remove_address(self, index: int, iface: object, *, any_prefix: bool = False) -> bool:
        self.any_prefix.append(any_prefix)
        return await super().remove_address(index, iface)  # type: ignore[arg-type]


def test_the_daemon_adds_it_with_the_carpdev_prefix_and_removes_it_in_any_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    install()
    netlink = Spy()  # eth0 has 192.0.2.1/24 (fakes.OWN)
    config = ucarp("192.0.2.107")
    g = config.global_.model_copy(
        update={"state_dir": tmp_path / "state", "service_checks": tmp_path / "checks"}
    )
    daemon = Daemon(config.model_copy(update={"global_": g}), FakePorts(netlink))

    async def main() -> None:
        await daemon.start()
        await daemon.settle()
        daemon.force_state("carp0", State.MASTER)
        await daemon.settle()
        daemon.force_state("carp0", State.BACKUP)
        await daemon.settle()

    with caplog.at_level("INFO", logger="carpd"):
        asyncio.run(main())
    assert [(verb, a) for verb, index, a in netlink.changes if index == ETH0.index] == [
        ("remove", "192.0.2.107/24"),  # BACKUP at start
        ("add", "192.0.2.107/24"),
        ("remove", "192.0.2.107/24"),
    ]
    assert netlink.any_prefix == [True, True]
    assert "carp0: 192.0.2.107 takes /24 from eth0's 192.0.2.1/24" in caplog.messages
    # Status shows what it holds.
    assert daemon.find("carp0").cfg.addresses == (ipaddress.ip_interface("192.0.2.107/24"),)


def check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *own: str
) -> tuple[int, str]:
    """carpd --check on a node whose eth0 has ``own``."""
    monkeypatch.setattr(ifaddrs, "interfaces", lambda: {"lo": 1, "eth0": 2})
    prefixed = {2: [ipaddress.ip_interface(a) for a in own]}
    monkeypatch.setattr(ifaddrs, "prefixed", lambda: prefixed)
    monkeypatch.setattr(ifaddrs, "addresses", lambda: {2: [a.ip for a in prefixed[2]]})
    rc = carpd(["--check", *UCARP, "-a", "192.0.2.107"])
    return rc, capsys.readouterr().err


def test_check_on_this_node_warns_when_no_subnet_of_the_carpdev_holds_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check(monkeypatch, capsys, "192.0.2.1/24", "fe80::1/64") == (0, "")
    rc, err = check(monkeypatch, capsys, "198.51.100.1/24")
    assert (rc, err) == (
        0,
        'carpd: warning: command line: --addr = "192.0.2.107": no subnet of eth0 holds it: '
        "carpd adds it as 192.0.2.107/32; give the prefix your up-script gives it "
        "(-a 192.0.2.107/24)\n",
    )


def test_the_prefixed_dump_is_the_addresses_with_their_prefixes() -> None:
    """Unfaked: this namespace's addresses, as carpd --check reads them."""
    assert {i: [a.ip for a in found] for i, found in ifaddrs.prefixed().items()} == (
        ifaddrs.addresses()
    )
