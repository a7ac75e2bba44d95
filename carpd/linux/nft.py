"""The `nft` command (Debian package nftables), driven with a script on its standard
input, asynchronously: one script is one transaction, and a slow or hung `nft` never
holds up the adverts. (pyroute2's nftables support is experimental.)"""

from __future__ import annotations

import asyncio
import contextlib
import shutil

NFT = shutil.which("nft") or "/usr/sbin/nft"
NFT_TIMEOUT = 10.0  # seconds; nft answers in milliseconds unless the kernel is stuck


class NftError(Exception):
    pass


async def apply(script: str) -> None:
    """Run ``script`` as one nftables transaction: all of it, or nothing."""
    try:
        proc = await asyncio.create_subprocess_exec(
            NFT,
            "-f",
            "-",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as e:
        raise NftError(f"nft: {e}") from e
    try:
        _, err = await asyncio.wait_for(proc.communicate(script.encode()), NFT_TIMEOUT)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise NftError(f"nft: no answer within {NFT_TIMEOUT:g} s") from None
    if proc.returncode != 0:
        raise NftError(f"nft: {err.decode(errors='replace').strip()}")
