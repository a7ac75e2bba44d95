"""docs/pair.md's configuration is one carpd accepts: its [web] and [cluster] tables,
with the files it names made in a temporary directory, load as they are written."""

from __future__ import annotations

import re
from pathlib import Path

from carpd.config import load_config

DOC = Path(__file__).parents[2] / "docs" / "pair.md"


def test_the_pair_docs_configuration_loads(tmp_path: Path) -> None:
    (block,) = [
        b for b in re.findall(r"```toml\n(.*?)```", DOC.read_text(), re.S) if "[cluster]" in b
    ]
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "cluster.pass").write_text("the-cluster-password\n")
    for name in ("web.pem", "web.key", "web-users"):
        (etc / name).write_text("")
    text = block.replace("/etc/carpd/", f"{etc}/")
    text += '\n[[carp]]\ncarpdev = "eth0"\nvhid = 1\npass = "x"\naddresses = ["192.0.2.100/24"]\n'
    path = tmp_path / "carpd.toml"
    path.write_text(text)
    config = load_config(path)
    (peer,) = config.cluster.peer
    assert (peer.name, peer.url, peer.user) == ("fw2", "https://203.0.113.2:8473", "cluster")
    assert peer.pin is not None and len(peer.pin) == 32
    assert peer.passfile.secret.get_secret_value() == b"the-cluster-password"
    assert config.web.enabled and config.web.users_file == etc / "web-users"
