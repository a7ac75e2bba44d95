"""Unit tests never touch the host's firewall: `nft` is a stub that fails the test that
runs it (a daemon on fake sockets that became a VRRPv3 MASTER with accept = false once
left carpd's accept table in the host's own ruleset). A test that means to see nft's
input points carpd.linux.nft.NFT at its own stand-in (tests/unit/test_acceptmode.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from carpd.linux import nft


@pytest.fixture(autouse=True)
def no_host_nft(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    where = tmp_path_factory.mktemp("nft-stub")
    ran = where / "ran"
    stub = where / "nft"
    stub.write_text(
        f"#!/bin/sh\necho \"$@\" >> {ran}\necho 'unit tests do not run nft' >&2\nexit 1\n"
    )
    stub.chmod(0o755)
    monkeypatch.setattr(nft, "NFT", str(stub))
    yield
    assert not ran.exists(), f"this test ran the host's nft: {ran.read_text()!r}"
