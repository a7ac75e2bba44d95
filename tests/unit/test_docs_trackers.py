"""docs/trackers.md's examples, one per kind, are a configuration carpd accepts."""

from __future__ import annotations

import re
from pathlib import Path

from carpd.config import load_config
from carpd.config.tables.track import TARGETS

DOC = Path(__file__).parents[2] / "docs" / "trackers.md"


def test_the_trackers_docs_examples_load_and_show_every_kind(tmp_path: Path) -> None:
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 2  # one per kind; a service check moved into a [[track]]
    text = "\n".join(blocks) + '\n[[carp]]\nname = "wan"\ncarpdev = "eth0"\nvhid = 1\npass = "x"\n'
    text += 'addresses = ["192.0.2.100/24"]\n'
    text += '\n[[carp]]\nname = "web"\ncarpdev = "eth0"\nvhid = 2\npass = "x"\n'
    text += 'addresses = ["192.0.2.101/24"]\n'
    path = tmp_path / "carpd.toml"
    path.write_text(text)
    config = load_config(path)
    assert {t.kind for t in config.track} == set(TARGETS)
    uplink = next(t for t in config.track if t.name == "uplink")
    assert (uplink.quorum, len(uplink.targets), uplink.weight) == (2, 3, 50)
    haproxy = next(t for t in config.track if t.name == "haproxy-check")
    assert (haproxy.fall, haproxy.weight, haproxy.vhids) == (2, 50, ("web",))
