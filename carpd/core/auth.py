"""CARP authentication: HMAC-SHA1 keyed by the password (spec section 2).

The hashed message is: version (0x02), type (0x01), vhid, the vhid's IPv4 addresses in
ascending order (4 bytes each), its non-link-local IPv6 addresses in ascending order
(16 bytes each), then the 8-byte counter as it sits on the wire. With one IPv4 address
this is exactly what ucarp hashes; with more it is what OpenBSD and FreeBSD hash.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable

from carpd.core.errors import BadHMAC

# Both BSD ifconfigs strlcpy the password into a 20-byte key, and ucarp refuses more:
# 19 characters is what every peer really uses.
MAX_PASSWORD_LEN = 19

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def carp_key(password: str | bytes) -> bytes:
    raw = password.encode() if isinstance(password, str) else password
    if len(raw) > MAX_PASSWORD_LEN:
        raise ValueError(f"password longer than {MAX_PASSWORD_LEN} bytes")
    return raw


def hashed_addresses(addresses: Iterable[IPAddress], *, with_link_local: bool = False) -> bytes:
    """The address part of the HMAC input: IPv4 ascending, then IPv6 ascending."""
    v4 = sorted({a for a in addresses if a.version == 4})
    v6 = sorted(
        {a for a in addresses if a.version == 6 and (with_link_local or not a.is_link_local)}
    )
    return b"".join(a.packed for a in v4) + b"".join(a.packed for a in v6)


class Authenticator:
    """Signs and verifies the adverts of one vhid.

    The HMAC state after the fixed prefix is computed once; each packet only adds its
    counter, which keeps verification cheap under a flood of forged adverts.
    """

    __slots__ = ("_variants",)

    def __init__(self, password: str | bytes, vhid: int, addresses: Iterable[IPAddress]) -> None:
        key = carp_key(password)
        addrs = list(addresses)
        prefix = bytes((2, 1, vhid))
        # What we send (OpenBSD's NOV6LL variant, FreeBSD/ucarp when no link-local VIP);
        # OpenBSD also accepts the variant that hashes link-local addresses.
        variants = [hashed_addresses(addrs)]
        if any(a.version == 6 and a.is_link_local for a in addrs):
            variants.append(hashed_addresses(addrs, with_link_local=True))
        self._variants = [hmac.new(key, prefix + v, hashlib.sha1) for v in variants]

    def sign(self, counter: bytes) -> bytes:
        h = self._variants[0].copy()
        h.update(counter)
        return h.digest()

    def verify(self, counter: bytes, digest: bytes) -> None:
        for base in self._variants:
            h = base.copy()
            h.update(counter)
            if hmac.compare_digest(h.digest(), digest):
                return
        raise BadHMAC("incorrect hash")
