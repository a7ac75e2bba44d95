"""Fuzz carpd's packet decoders: any input must give a decoded packet or a PacketError.

Every input goes down each receive path of the daemon:

* ``ipv4``: the bytes as a whole IPv4 datagram (an AF_INET raw socket), through
  ``ipv4_datagram`` and then ``classify``, the daemon's own receive path (by the version
  nibble ``decode_carp`` (2) or ``decode_vrrp`` (3), the vhid lookup, the TTL rule), with
  every vhid configured for the protocol the packet claims;
* ``ipv6``: the bytes as the payload of an AF_INET6 raw socket from ``SRC6`` to ``DST6``,
  through ``ipv6_datagram`` and the same path (so ``decode_vrrp`` with IPv6 addresses);
* ``ipv4-advert`` / ``ipv6-advert``: ``decode_ipv4_advert`` / ``decode_ipv6_advert``;
* ``vrrp-mixed``: ``decode_vrrp`` with an IPv4 source and an IPv6 destination;
* ``ipv4+csum`` / ``ipv6+csum``: the CARP/VRRP payload again with its checksum made valid,
  so that random inputs also reach the code behind the checksum (addresses, intervals).

Anything but a PacketError, and any input that takes longer than 1 s, is a failure: the
input is printed as hex and the script exits 1. With atheris (``pip install -e .[fuzz]``)
the search is coverage-guided; ``--engine random`` is a plain mutation fuzzer without it.

    python fuzz/fuzz_decoders.py --runs 1000000
    python fuzz/fuzz_decoders.py --hex 45000020...   # replay one input
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import ipaddress
import os
import random
import shutil
import struct
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FunctionType, ModuleType
from typing import NoReturn

from carpd.core import checksum, packet, receive, vrrp
from carpd.core.checksum import internet_checksum
from carpd.core.errors import PacketError
from carpd.core.model import IPAddress
from carpd.core.packet import CARP_GROUP_V4, CARP_VERSION, CarpPacket, build_ipv4
from carpd.core.receive import (
    Datagram,
    Member,
    classify,
    decode_ipv4_advert,
    decode_ipv6_advert,
    ipv4_datagram,
    ipv6_datagram,
)
from carpd.core.vrrp import VRRP_VERSION, VrrpPacket, decode_vrrp, pseudo_header

# Adverts of real ucarp and keepalived, captured by python -m carpd_lab.capture_vectors
# (tests/vectors/README.md).
VECTORS = Path(__file__).resolve().parents[1] / "tests" / "vectors"
# keepalived's link-local source and the group in keepalived-vrrp3.pcap, so that the
# captured IPv6 payloads pass the checksum on the ipv6 path.
SRC6 = ipaddress.IPv6Address("fe80::2007:69ff:feb8:d6af")
DST6 = ipaddress.IPv6Address("ff02::12")
SRC4 = ipaddress.IPv4Address("192.0.2.1")
SLOW_SECONDS = 1.0
DEFAULT_MAX_LEN = 4200  # room for 255 IPv6 addresses (8 + 255 * 16) and an IPv4 header

Result = list[tuple[str, str]]
"""(path, outcome) for each decoder call: ``ok:carp``, ``ok:vrrp`` or ``reason (Class)``."""


# -- the target ---------------------------------------------------------------------


# Every vhid configured, for either protocol, with the TTL rule (no unicast peers).
CARP_VHIDS = {vhid: Member(CARP_VERSION, check_ttl=True) for vhid in range(256)}
VRRP_VHIDS = {vhid: Member(VRRP_VERSION, check_ttl=True) for vhid in range(256)}


def _member(member: Member) -> Member:
    return member


def _dispatch(dg: Datagram) -> str:
    """The daemon's receive path (``classify``), the vhid running the protocol the
    packet claims."""
    table = VRRP_VHIDS if dg.version == VRRP_VERSION else CARP_VHIDS
    _, pkt = classify(dg, table, _member)
    return "ok:vrrp" if isinstance(pkt, VrrpPacket) else "ok:carp"


def with_valid_checksum(payload: bytes, src: IPAddress, dst: IPAddress) -> bytes | None:
    """The payload with the checksum a sender would put in (CARP or VRRP by version)."""
    if len(payload) < 8:
        return None
    zeroed = payload[:6] + b"\x00\x00" + payload[8:]
    version = payload[0] >> 4
    if version == CARP_VERSION:
        covered = zeroed
    elif version == VRRP_VERSION:
        covered = pseudo_header(src, dst, len(payload)) + zeroed
    else:
        return None
    return payload[:6] + internet_checksum(covered).to_bytes(2, "big") + payload[8:]


def _reason(err: PacketError) -> str:
    return f"{err.reason} ({type(err).__name__})"


def _call(result: Result, path: str, decode: Callable[[], object]) -> None:
    """Run one decoder call; a PacketError is an outcome, anything else propagates."""
    try:
        value = decode()
    except PacketError as e:
        result.append((path, _reason(e)))
        return
    if isinstance(value, str):
        result.append((path, value))
    elif isinstance(value, VrrpPacket):
        result.append((path, "ok:vrrp"))
    else:  # a CarpPacket, or a Received holding one
        result.append((path, "ok:carp"))


def one_input(data: bytes) -> Result:
    """Feed one input to every decoder path. Raises whatever is not a PacketError."""
    result: Result = []
    try:
        dg4 = ipv4_datagram(data)
    except PacketError as e:
        result.append(("ipv4", _reason(e)))
    else:
        _call(result, "ipv4", lambda: _dispatch(dg4))
        fixed4 = with_valid_checksum(dg4.payload, dg4.src, dg4.dst)
        if fixed4 is not None:
            dg4_fixed = dg4._replace(payload=fixed4)  # a NamedTuple
            _call(result, "ipv4+csum", lambda: _dispatch(dg4_fixed))
    _call(result, "ipv4-advert", lambda: decode_ipv4_advert(data))

    _call(result, "ipv6", lambda: _dispatch(ipv6_datagram(data, SRC6, DST6, 255)))
    fixed6 = with_valid_checksum(data, SRC6, DST6)
    if fixed6 is not None:
        dg6_fixed = ipv6_datagram(fixed6, SRC6, DST6, 255)
        _call(result, "ipv6+csum", lambda: _dispatch(dg6_fixed))
    _call(result, "ipv6-advert", lambda: decode_ipv6_advert(data, SRC6, DST6, 255))
    _call(result, "vrrp-mixed", lambda: decode_vrrp(data, SRC4, DST6))
    return result


# -- seeds --------------------------------------------------------------------------


def read_pcap(path: Path) -> list[bytes]:
    """The frames of a classic libpcap file (either byte order)."""
    data = path.read_bytes()
    if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif data[:4] in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError(f"{path}: not a classic pcap file")
    frames, off = [], 24
    while off + 16 <= len(data):
        incl_len = struct.unpack(endian + "I", data[off + 8 : off + 12])[0]
        frames.append(data[off + 16 : off + 16 + incl_len])
        off += 16 + incl_len
    return frames


def pcap_seeds(vectors: Path = VECTORS) -> list[bytes]:
    """From the real captures: IPv4 datagrams, their payloads, and IPv6 payloads."""
    seeds: list[bytes] = []
    for path in sorted(vectors.glob("*.pcap")):
        for frame in read_pcap(path):
            ethertype = int.from_bytes(frame[12:14], "big")
            ip = frame[14:]
            if ethertype == 0x0800 and len(ip) >= 20:
                total = int.from_bytes(ip[2:4], "big")
                seeds += [ip, ip[(ip[0] & 0x0F) * 4 : total]]
            elif ethertype == 0x86DD and len(ip) >= 40 and ip[6] == 112:
                seeds.append(ip[40 : 40 + int.from_bytes(ip[4:6], "big")])
    return list(dict.fromkeys(seeds))


def synthetic_seeds() -> list[bytes]:
    """Valid adverts built with carpd's own encoders (no captures needed)."""
    carp = CarpPacket(vhid=7, advbase=1, advskew=0, counter=1, hmac=bytes(range(20))).encode()
    vip4 = ipaddress.IPv4Address("192.0.2.100")
    vip6 = ipaddress.IPv6Address("2001:db8::100")
    vrrp4 = VrrpPacket(vrid=9, priority=200, interval_cs=100, addresses=(vip4,))
    vrrp6 = VrrpPacket(vrid=10, priority=200, interval_cs=100, addresses=(vip6, vip6))
    v4 = vrrp4.encode(SRC4, CARP_GROUP_V4)
    return [
        build_ipv4(SRC4, CARP_GROUP_V4, carp, ident=1),
        build_ipv4(SRC4, CARP_GROUP_V4, v4, ident=2, tos=0xC0),
        carp,
        v4,
        vrrp6.encode(SRC6, DST6),
    ]


_INTERESTING = (0x00, 0x01, 0x02, 0x0F, 0x10, 0x21, 0x31, 0x45, 0x4F, 0x70, 0x7F, 0x80, 0xFF)


def mutate(data: bytes, rng: random.Random, seeds: Sequence[bytes], max_len: int) -> bytes:
    """One to four random edits of data: flips, byte sets, cuts, extensions, splices."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        if op == 0 and buf:  # flip a bit
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:  # set a byte to a random or an interesting value
            value = rng.choice(_INTERESTING) if rng.random() < 0.5 else rng.randrange(256)
            buf[rng.randrange(len(buf))] = value
        elif op == 2 and buf:  # truncate
            del buf[rng.randrange(len(buf)) :]
        elif op == 3:  # extend with random bytes
            buf += rng.randbytes(rng.choice((1, 2, 4, 16, rng.randrange(64))))
        elif op == 4 and buf:  # delete a run
            i = rng.randrange(len(buf))
            del buf[i : i + rng.randint(1, 8)]
        elif op == 5:  # splice: our head, another seed's tail
            other = rng.choice(seeds)
            buf = buf[: rng.randint(0, len(buf))] + other[rng.randint(0, len(other)) :]
        elif op == 6 and len(buf) >= 2:  # a 16-bit field (lengths, checksum) set
            i = rng.randrange(len(buf) - 1)
            buf[i : i + 2] = rng.choice((0, 1, 0xFFFF, len(buf), rng.randrange(65536))).to_bytes(
                2, "big"
            )
        elif op == 7:  # an IPv4 address-count style repeat of a 4- or 16-byte chunk
            chunk = rng.choice((4, 16))
            i = rng.randint(0, len(buf))
            buf[i:i] = rng.randbytes(chunk) * rng.randint(1, 4)
    return bytes(buf[:max_len])


def mutated_inputs(
    seeds: Sequence[bytes], rng: random.Random, count: int, max_len: int = DEFAULT_MAX_LEN
) -> Iterator[bytes]:
    """The seeds themselves, then mutants of them, and 1 in 16 fully random inputs."""
    yield from seeds[:count]
    for _ in range(count - min(count, len(seeds))):
        if rng.random() < 1 / 16:
            yield rng.randbytes(rng.choice((rng.randrange(64), rng.randrange(max_len + 1))))
        else:
            yield mutate(rng.choice(seeds), rng, seeds, max_len)


# -- the runner ---------------------------------------------------------------------


class Runner:
    """Counts, times and checks every input, whichever engine produces them."""

    def __init__(self, engine: str, runs: int) -> None:
        self.engine = engine
        self.runs = runs
        self.executed = 0
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.slowest = 0.0
        self.started = time.perf_counter()
        self.current: tuple[bytes, float] | None = None
        self.lock = threading.Lock()
        self.cleanup: Callable[[], None] | None = None  # on success only

    def __call__(self, data: bytes) -> None:
        start = time.perf_counter()
        self.current = (data, start)
        try:
            result = one_input(data)
        except Exception as e:
            self.fail(f"{type(e).__name__} is not a PacketError", data, traceback.format_exc())
        elapsed = time.perf_counter() - start
        self.current = None
        if elapsed > SLOW_SECONDS:
            self.fail(f"input took {elapsed:.3f} s (limit {SLOW_SECONDS} s)", data)
        self.slowest = max(self.slowest, elapsed)
        self.outcomes.update(result)
        self.executed += 1
        if self.executed >= self.runs:
            self.finish(0)

    def watch(self) -> None:
        """A daemon thread: an input still running after the limit is a hang."""

        def loop() -> None:
            while True:
                time.sleep(0.1)
                current = self.current
                if current is not None and time.perf_counter() - current[1] > SLOW_SECONDS:
                    self.fail(f"hang: input still running after {SLOW_SECONDS} s", current[0])

        threading.Thread(target=loop, daemon=True, name="fuzz-watchdog").start()

    def summary(self) -> str:
        elapsed = time.perf_counter() - self.started
        lines = [
            f"engine: {self.engine}",
            f"inputs executed: {self.executed}",
            f"elapsed: {elapsed:.1f} s ({self.executed / max(elapsed, 1e-9):.0f} inputs/s)",
            f"slowest input: {self.slowest * 1000:.2f} ms",
            "outcomes by path (decoder calls):",
        ]
        for path in sorted({p for p, _ in self.outcomes}):
            for (p, outcome), n in sorted(self.outcomes.items(), key=lambda kv: -kv[1]):
                if p == path:
                    lines.append(f"  {path:<12} {outcome:<36} {n:>9}")
        totals: Counter[str] = Counter()
        for (_path, outcome), n in self.outcomes.items():
            totals[outcome] += n
        lines.append("totals over all paths:")
        lines += [f"  {outcome:<49} {n:>9}" for outcome, n in totals.most_common()]
        return "\n".join(lines)

    def fail(self, why: str, data: bytes, details: str = "") -> NoReturn:
        with self.lock:  # the watchdog and the main thread must not both report
            print(f"FAILURE: {why}", file=sys.stderr)
            if details:
                print(details, file=sys.stderr)
            print(f"input ({len(data)} bytes) hex: {data.hex()}", file=sys.stderr)
            self.finish(1)

    def finish(self, status: int) -> NoReturn:
        if status == 0 and self.cleanup is not None:
            self.cleanup()
        print(self.summary())
        print("result:", "OK" if status == 0 else "FAILED")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)  # atheris/libFuzzer never return; this is the only way out


def _instrument(atheris: ModuleType) -> None:
    """Coverage instrumentation for the decoder modules' functions and methods."""
    for mod in (checksum, packet, receive, vrrp):
        for obj in vars(mod).values():
            if getattr(obj, "__module__", None) != mod.__name__:
                continue
            members = vars(obj).values() if isinstance(obj, type) else [obj]
            for member in members:
                func = member.fget if isinstance(member, property) else member
                if isinstance(func, FunctionType) and func.__code__.co_filename == mod.__file__:
                    atheris.instrument_func(func)


def run_atheris(runner: Runner, seeds: list[bytes], args: argparse.Namespace) -> NoReturn:
    atheris = importlib.import_module("atheris")
    _instrument(atheris)
    workdir = Path(tempfile.mkdtemp(prefix="carpd-fuzz-"))
    corpus = workdir / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(seeds):
        (corpus / f"seed-{i:03d}").write_bytes(seed)
    print(f"corpus: {len(seeds)} seeds in {corpus} (removed unless a failure is found)", flush=True)
    libfuzzer_args = [
        sys.argv[0],
        f"-seed={args.seed}",
        f"-max_len={args.max_len}",
        "-timeout=2",  # backstop for a hang that holds the GIL (no watchdog then)
        f"-artifact_prefix={workdir}/",
        *args.libfuzzer,
        str(corpus),
    ]
    runner.cleanup = lambda: shutil.rmtree(workdir, ignore_errors=True)
    atheris.Setup(libfuzzer_args, runner)
    atheris.Fuzz()
    raise AssertionError("atheris.Fuzz returned")


def run_random(runner: Runner, seeds: list[bytes], args: argparse.Namespace) -> NoReturn:
    rng = random.Random(args.seed)
    while True:  # runner exits after --runs inputs
        for data in mutated_inputs(seeds, rng, 100_000, args.max_len):
            runner(data)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000, help="inputs to execute")
    parser.add_argument("--engine", choices=("atheris", "random"), default=None)
    parser.add_argument("--seed", type=int, default=1, help="random seed (both engines)")
    parser.add_argument("--max-len", type=int, default=DEFAULT_MAX_LEN)
    parser.add_argument("--vectors", type=Path, default=VECTORS, help="dir of seed .pcap files")
    parser.add_argument("--hex", help="run this one input (hex) and print its outcomes")
    parser.add_argument(
        "--libfuzzer", action="append", default=[], help="extra libFuzzer flag, e.g. -jobs=2"
    )
    args = parser.parse_args(argv)

    if args.hex is not None:
        for path, outcome in one_input(bytes.fromhex(args.hex)):
            print(f"{path:<12} {outcome}")
        return
    engine = args.engine
    if engine is None:
        engine = "atheris" if importlib.util.find_spec("atheris") else "random"
    seeds = list(dict.fromkeys(pcap_seeds(args.vectors) + synthetic_seeds()))
    print(f"carpd decoder fuzz: engine {engine}, seed {args.seed}, runs {args.runs}", flush=True)
    runner = Runner(engine, args.runs)
    runner.watch()
    if engine == "atheris":
        run_atheris(runner, seeds, args)
    run_random(runner, seeds, args)


if __name__ == "__main__":
    main()
