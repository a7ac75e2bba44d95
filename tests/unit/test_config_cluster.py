"""The [cluster] table and its [[cluster.peer]]s (carpd.config.tables.cluster), loaded
through carpd.config.load_config with real passfiles: what a valid table gives, and each
refusal naming the file, the key, the value and what is allowed, never a password."""

from __future__ import annotations

from pathlib import Path

import pytest

from carpd.config import ConfigError, load_config

PEER_PASSWORD = "peer-pw-do-not-leak"
CARP = '[[carp]]\nvhid = 7\ncarpdev = "eth0"\npass = "carp-pw"\naddresses = ["192.0.2.100"]\n'
# A SHA-256 as `openssl x509 -noout -fingerprint -sha256` prints it.
DIGEST = bytes(range(0xA0, 0xC0))
FINGERPRINT = "sha256:" + ":".join(f"{b:02X}" for b in DIGEST)


def peer(name: str = "n2", url: str = "https://192.0.2.2:8473", **more: str) -> str:
    keys = {"name": name, "url": url, "passfile": "peer.pass", **more}
    return "[[cluster.peer]]\n" + "".join(f'{k} = "{v}"\n' for k, v in keys.items())


def write(tmp_path: Path, cluster: str) -> Path:
    (tmp_path / "peer.pass").write_text(f"{PEER_PASSWORD}\nnot part of it\n")
    path = tmp_path / "carpd.toml"
    path.write_text(cluster + "\n" + CARP)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def test_a_valid_cluster_table_loads_with_its_passfile_read(tmp_path: Path) -> None:
    text = "[cluster]\ninterval = 3.0\ntimeout = 1.5\n" + peer(
        user="watcher", fingerprint=FINGERPRINT
    )
    text += peer("n3", "https://[2001:db8::3]:8473/", ca_file="ca.pem")
    cluster = load_config(write(tmp_path, text)).cluster
    assert (cluster.interval, cluster.timeout) == (3.0, 1.5)
    n2, n3 = cluster.peer
    assert (n2.name, n2.url, n2.user, n2.ca_file) == (
        "n2",
        "https://192.0.2.2:8473",
        "watcher",
        None,
    )
    assert n2.passfile.path == tmp_path / "peer.pass"
    assert n2.passfile.secret.get_secret_value() == PEER_PASSWORD.encode()  # the first line
    assert n2.pin == DIGEST
    assert (n3.name, n3.url, n3.user) == ("n3", "https://[2001:db8::3]:8473/", "cluster")
    assert n3.ca_file == tmp_path / "ca.pem" and n3.pin is None
    # The password is in no repr of the loaded config.
    assert PEER_PASSWORD not in repr(cluster)


def test_the_defaults_and_no_peer(tmp_path: Path) -> None:
    cluster = load_config(write(tmp_path, "")).cluster
    assert (cluster.interval, cluster.timeout, cluster.peer) == (5.0, 2.0, ())


def test_a_bare_hex_fingerprint_pins_the_same_digest(tmp_path: Path) -> None:
    bare = DIGEST.hex()
    (n2,) = load_config(write(tmp_path, peer(fingerprint=bare))).cluster.peer
    assert n2.pin == DIGEST


@pytest.mark.parametrize(
    "url",
    ["https://cluster:hunter2-in-url@192.0.2.2:8473", "https://hunter2-in-url@192.0.2.2"],
)
def test_a_url_with_credentials_is_refused_and_never_shown(tmp_path: Path, url: str) -> None:
    path = write(tmp_path, peer(url=url))
    assert problems(path) == [
        f"{path}: cluster.peer[0].url = <hidden, {len(url)} characters>: a user or password "
        "in the URL: give them as user and passfile"
    ]
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://192.0.2.2:8473/api/status",
        "http://192.0.2.2:8473",
        "https://192.0.2.2:8473?x=1",
    ],
)
def test_a_url_with_a_path_or_another_scheme_is_refused(tmp_path: Path, url: str) -> None:
    path = write(tmp_path, peer(url=url))
    assert problems(path) == [
        f'{path}: cluster.peer[0].url = "{url}": not https:// with a host and an optional '
        "port, nothing else"
    ]


@pytest.mark.parametrize(("interval", "timeout"), [("5.0", "5.0"), ("2.0", "3.5")])
def test_a_timeout_not_less_than_the_interval_is_refused(
    tmp_path: Path, interval: str, timeout: str
) -> None:
    path = write(tmp_path, f"[cluster]\ninterval = {interval}\ntimeout = {timeout}\n" + peer())
    assert problems(path) == [
        f"{path}: cluster.timeout = {timeout}: must be less than cluster.interval"
    ]


def test_interval_and_timeout_out_of_range_name_the_range(tmp_path: Path) -> None:
    path = write(tmp_path, "[cluster]\ninterval = 0.5\ntimeout = 0.0\n" + peer())
    assert problems(path) == [
        f"{path}: cluster.interval = 0.5: allowed range is 1-3600",
        f"{path}: cluster.timeout = 0.0: must be greater than 0 and at most 60",
    ]


def test_two_peers_of_one_name_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, peer() + peer(url="https://192.0.2.3:8473"))
    assert problems(path) == [f'{path}: cluster.peer[1].name = "n2": also cluster.peer[0]']


def test_a_pinned_certificate_and_a_ca_file_are_refused_together(tmp_path: Path) -> None:
    path = write(tmp_path, peer(ca_file="ca.pem", fingerprint=DIGEST.hex()))
    assert problems(path) == [
        f'{path}: cluster.peer[0].fingerprint = "{DIGEST.hex()}": pins the certificate: '
        "cluster.peer[0].ca_file would not be used"
    ]


@pytest.mark.parametrize(
    "fingerprint",
    ["ab:cd", DIGEST.hex()[:-2], DIGEST.hex() + "ab", "sha1:" + DIGEST.hex(), "zz" * 32],
)
def test_a_bad_fingerprint_is_refused(tmp_path: Path, fingerprint: str) -> None:
    path = write(tmp_path, peer(fingerprint=fingerprint))
    assert problems(path) == [
        f'{path}: cluster.peer[0].fingerprint = "{fingerprint}": not a SHA-256 in hex '
        "(64 digits, colons and a sha256: prefix allowed)"
    ]


def test_a_passfile_with_an_empty_first_line_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, peer())
    (tmp_path / "peer.pass").write_text("\nthe second line is no password\n")
    assert problems(path) == [
        f'{path}: cluster.peer[0].passfile = "peer.pass": its first line is empty: no password'
    ]


def test_a_missing_passfile_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = write(tmp_path, peer())
    (tmp_path / "peer.pass").unlink()
    assert problems(path) == [
        f'{path}: cluster.peer[0].passfile = "peer.pass": cannot read it: No such file or directory'
    ]


def test_a_passfile_can_be_a_systemd_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "cluster-n2").write_text(f"{PEER_PASSWORD}-from-systemd\n")
    path = write(tmp_path, peer().replace('"peer.pass"', '"%d/cluster-n2"'))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    (n2,) = load_config(path).cluster.peer
    assert n2.passfile.path == creds / "cluster-n2"
    assert n2.passfile.secret.get_secret_value() == f"{PEER_PASSWORD}-from-systemd".encode()
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    assert problems(path) == [
        f'{path}: cluster.peer[0].passfile = "%d/cluster-n2": %d is systemd\'s credentials '
        "directory, and $CREDENTIALS_DIRECTORY is not set (LoadCredential= in the unit)"
    ]
