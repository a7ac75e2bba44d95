"""CARP authentication: HMAC-SHA1 keyed by the password (spec section 2).

The hashed message is: version (0x02), type (0x01), vhid, the vhid's IPv4 addresses in
ascending order (4 bytes each), its IPv6 addresses in ascending byte order (16 bytes
each), then the 8-byte counter as it sits on the wire. Each address is hashed once, and
0.0.0.0, 255.255.255.255, :: and ffff:...:ffff never (the kernels' "next larger than the
last one" loop cannot pick them). The kernels differ only in IPv6 link-local addresses:

- FreeBSD 10 and later hash them, with bytes 2-3 (the scope the kernel embeds there)
  zeroed, and sort on those zeroed bytes. OpenBSD calls this context ORIG.
- OpenBSD signs without them (its NOV6LL context) and accepts either context.
- ucarp hashes its one IPv4 address: with one IPv4 address both are what ucarp hashes.

carpd verifies both, as OpenBSD does, and signs with the one its vhid's ``hmac_variant``
names. Two constructions this does not cover (docs/protocol.md): OpenBSD also hashes the
carp interface's MAC when ``lladdr`` was set by hand, and FreeBSD before 8 hashed the
addresses in interface order.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Literal

from carpd.core.errors import BadHMAC
from carpd.core.model import IPAddress

# Both BSD ifconfigs strlcpy the password into a 20-byte key, and ucarp refuses more:
# 19 characters is what every peer really uses.
MAX_PASSWORD_LEN = 19


# Which kernel's construction a vhid signs with; both are accepted.
HmacVariant = Literal["openbsd", "freebsd"]
HMAC_VARIANTS: tuple[HmacVariant, ...] = ("openbsd", "freebsd")

# What the kernels' ordering loops can never select.
_NEVER_HASHED = frozenset({b"\x00" * 4, b"\xff" * 4, b"\x00" * 16, b"\xff" * 16})


def carp_key(password: str | bytes) -> bytes:
    raw = password.encode() if isinstance(password, str) else password
    if len(raw) > MAX_PASSWORD_LEN:
        raise ValueError(f"password longer than {MAX_PASSWORD_LEN} bytes")
    return raw


def _hashed_form(address: IPAddress) -> bytes:
    """The bytes a kernel hashes: a link-local IPv6 address with its scope bytes zeroed."""
    packed = address.packed
    if address.version == 6 and address.is_link_local:
        return packed[:2] + b"\x00\x00" + packed[4:]
    return packed


def hashed_addresses(addresses: Iterable[IPAddress], *, with_link_local: bool = False) -> bytes:
    """The address part of the HMAC input: IPv4 ascending, then IPv6 ascending.

    ``with_link_local`` selects FreeBSD's construction (OpenBSD's ORIG context); without
    it, OpenBSD's NOV6LL.
    """
    addrs = list(addresses)
    v4 = {_hashed_form(a) for a in addrs if a.version == 4}
    v6 = {
        _hashed_form(a)
        for a in addrs
        if a.version == 6 and (with_link_local or not a.is_link_local)
    }
    return b"".join(sorted(v4 - _NEVER_HASHED)) + b"".join(sorted(v6 - _NEVER_HASHED))


class _Keyed:
    """HMAC-SHA1 (RFC 2104) of one key and message prefix, its two SHA-1 states taken
    after the fixed part: a packet's MAC is then two state copies, two updates and two
    digests, all in C (hmac.HMAC.copy wraps the same in Python objects per packet)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes, prefix: bytes) -> None:
        block = hashlib.sha1().block_size
        if len(key) > block:
            key = hashlib.sha1(key).digest()
        key = key.ljust(block, b"\x00")
        self._inner = hashlib.sha1(bytes(b ^ 0x36 for b in key) + prefix)
        self._outer = hashlib.sha1(bytes(b ^ 0x5C for b in key))

    def digest(self, counter: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(counter)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class Authenticator:
    """Signs and verifies the adverts of one vhid.

    The HMAC state after the fixed prefix is computed once; each packet only adds its
    counter, which keeps verification cheap under a flood of forged adverts.
    """

    __slots__ = ("_sign", "_variants")

    def __init__(
        self,
        password: str | bytes,
        vhid: int,
        addresses: Iterable[IPAddress],
        variant: HmacVariant = "openbsd",
    ) -> None:
        key = carp_key(password)
        addrs = list(addresses)
        prefix = bytes((2, 1, vhid))
        messages = {
            "openbsd": prefix + hashed_addresses(addrs),
            "freebsd": prefix + hashed_addresses(addrs, with_link_local=True),
        }
        ours = messages.pop(variant)
        self._sign = _Keyed(key, ours)
        # The other kernel's construction too, unless it is the same (no link-local).
        self._variants = [self._sign]
        self._variants += [_Keyed(key, m) for m in messages.values() if m != ours]

    def sign(self, counter: bytes) -> bytes:
        return self._sign.digest(counter)

    def valid(self, counter: bytes, digest: bytes) -> bool:
        """Whether ``digest`` is the HMAC of ``counter`` in either construction."""
        for keyed in self._variants:  # noqa: SIM110 (a loop: no generator per packet)
            if hmac.compare_digest(keyed.digest(counter), digest):
                return True
        return False

    def verify(self, counter: bytes, digest: bytes) -> None:
        if not self.valid(counter, digest):
            raise BadHMAC("incorrect hash")
