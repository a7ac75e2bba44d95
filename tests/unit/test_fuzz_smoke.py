"""Keep the decoder fuzz target (fuzz/fuzz_decoders.py) working: a few thousand inputs."""

from __future__ import annotations

import importlib.util
import random
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

FUZZ_SCRIPT = Path(__file__).resolve().parents[2] / "fuzz" / "fuzz_decoders.py"


@pytest.fixture(scope="module")
def fuzz() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_decoders", FUZZ_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_seeds_are_accepted_on_their_paths(fuzz: ModuleType) -> None:
    outcomes = Counter(o for seed in fuzz.synthetic_seeds() for o in fuzz.one_input(seed))
    assert outcomes[("ipv4", "ok:carp")] == 1
    assert outcomes[("ipv4", "ok:vrrp")] == 1
    assert outcomes[("ipv6", "ok:vrrp")] == 1
    assert outcomes[("ipv6", "ok:carp")] == 1
    assert outcomes[("vrrp-mixed", "bad_ip_header (BadIpHeader)")] >= 1


def test_2000_mutated_inputs_give_only_packet_errors(fuzz: ModuleType) -> None:
    seeds = fuzz.synthetic_seeds()
    outcomes: Counter[str] = Counter()
    for data in fuzz.mutated_inputs(seeds, random.Random(0), 2000):
        outcomes.update(outcome for _path, outcome in fuzz.one_input(data))
    # Both decoders accept some inputs, and refuse others for many different reasons.
    assert outcomes["ok:carp"] and outcomes["ok:vrrp"]
    assert len([o for o in outcomes if not o.startswith("ok:")]) >= 8


def test_pcap_seeds(fuzz: ModuleType) -> None:
    """The real captures (tests/vectors, in the repository) seed the fuzzer: each of them
    is accepted by its decoder."""
    captures = sorted(p.name for p in fuzz.VECTORS.glob("*.pcap"))
    assert captures == ["keepalived-vrrp3.pcap", "ucarp-v4-vhid7-secret.pcap"], fuzz.VECTORS
    results = [fuzz.one_input(seed) for seed in fuzz.pcap_seeds()]
    accepted = {o for result in results for _path, o in result if o.startswith("ok:")}
    assert accepted == {"ok:carp", "ok:vrrp"}
