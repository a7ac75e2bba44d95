"""The `nft` command (Debian package nftables), driven with a script on its standard
input, asynchronously: one script is one transaction, and a slow or hung `nft` never
holds up the adverts. (pyroute2's nftables support is experimental.)"""

from __future__ import annotations

import shutil

from carpd.linux import process

NFT = shutil.which("nft") or "/usr/sbin/nft"
NFT_TIMEOUT = 10.0  # seconds; nft answers in milliseconds unless the kernel is stuck
ERROR_BYTES = 65536  # of its stderr: nft's errors quote the script's lines


class NftError(Exception):
    pass


async def apply(script: str) -> None:
    """Run ``script`` as one nftables transaction: all of it, or nothing. Done when nft
    exits, even if something it left running holds its stderr (killed then)."""
    r = await process.run(
        [NFT, "-f", "-"],
        timeout=NFT_TIMEOUT,
        stdin=script.encode(),
        capture="stderr",
        lines=None,
        tail_bytes=ERROR_BYTES,
    )
    if r.timed_out:
        raise NftError(f"nft: no answer within {NFT_TIMEOUT:g} s")
    if r.error is not None:
        raise NftError(f"nft: {r.error}")
    if r.status != 0:
        raise NftError(f"nft: {r.output.strip()}")
