"""What the running carpd's status says about the adverts it hears: refused ones (a
wrong password or address list: bad HMAC) and other speakers on our vhids (a CARP node or
VRRP router on the same vhid, an address not in ``peers``). Read from the status JSON
(``carpctl status --json``): its diagnostics name the source."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from carpd.doctor.report import Finding

# Diagnosis kinds (carpd/daemon/runtime/receiver.py) -> (check, fix).
AUTH = {
    "bad_hmac": "the same pass (or passfile) and the same addresses, in any order, on "
    "every node of the vhid",
}
SPEAKERS = {
    "vhid-clash": "give one of the two groups another vhid (vhid = N) on this segment",
    "not_a_peer": "add the source to peers, or find why it speaks on this vhid",
}


def advert_checks(status: Mapping[str, Any]) -> Iterator[Finding]:
    for name, kinds in (("advert-auth", AUTH), ("vhid-speakers", SPEAKERS)):
        bad = False
        for vh in status.get("vhosts", []):
            dropped = vh.get("counters", {}).get("dropped", {})
            for d in vh.get("diagnostics", []):
                if d.get("kind") in kinds:
                    bad = True
                    count = dropped.get(d["kind"])
                    tally = f" ({count} advert(s) dropped as {d['kind']})" if count else ""
                    saw = f"{d['text']}{tally}, since {d['since']}, last {d['last']}"
                    yield Finding(name, vh["name"], False, saw, kinds[d["kind"]])
        if not bad:
            n = len(status.get("vhosts", []))
            what = "refused by authentication" if name == "advert-auth" else "from another speaker"
            yield Finding(name, None, True, f"no advert {what} in the last minute on {n} vhid(s)")


NEEDS = "needs the running carpd"


def not_running() -> Iterator[Finding]:
    for name in ("advert-auth", "vhid-speakers"):
        yield Finding(name, None, None, NEEDS)
