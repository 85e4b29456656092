"""What every CCR backend shares: the clock seam, tombstone policy, input checks, counters.

Tombstones are why "expired" survives a purge. When an entry leaves a store (its TTL ran
out, or it was evicted to honour a size cap) the backend keeps a small record that the key
*was* here. A later ``get`` then answers ``expired`` — a final answer a model should not
retry — instead of ``not_found``, which reads like a typo in the hash. A tombstone holds no
content (tens of bytes) and is itself bounded: it is dropped ``TOMBSTONE_SECONDS`` after the
entry went, or earlier when a backend's tombstone count cap is reached (oldest first). After
that the key reads as ``not_found`` again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from headroom.ccr.markers import content_key

Clock = Callable[[], float]
"""Wall-clock seconds since the epoch; injected so tests can move time by hand."""

SYSTEM_CLOCK: Clock = time.time

TOMBSTONE_SECONDS = 7 * 86_400.0
"""How long "this key expired" is remembered after the entry itself is gone."""

COUNTER_NAMES = ("puts", "hits", "expired", "not_found", "evicted", "purged")


def new_counters() -> dict[str, int]:
    return dict.fromkeys(COUNTER_NAMES, 0)


def check_original(original: object) -> bytes:
    """Stores take bytes only: text must be encoded by the caller (``PendingWrites`` does)."""
    if isinstance(original, bytes):
        return original
    if isinstance(original, bytearray | memoryview):
        return bytes(original)
    raise TypeError(f"CCR originals are bytes, not {type(original).__name__}")


def check_ttl(ttl: float) -> float:
    if not ttl > 0:
        raise ValueError(f"CCR TTL must be positive, got {ttl!r}")
    return float(ttl)


def refresh_slack(ttl: float) -> float:
    """How stale an expiry may get before a read rewrites it.

    Refreshing on every read would turn each read into a write; extending only when the
    expiry would move by more than 1% of the TTL (at most a minute) keeps warm reads pure
    reads while an entry's lifetime still runs from its last use, give or take that slack.
    """
    return min(60.0, ttl / 100.0)


HASH_OFF_LOOP_BYTES = 256 * 1024


async def content_keys(datas: list[bytes]) -> list[str]:
    """Keys for a batch, hashed off the loop once the batch is big enough to matter.

    SHA-256 runs at roughly 1 ms per MB here; ``hashlib`` releases the GIL on large inputs,
    so a worker thread keeps a multi-megabyte flush from stalling every other connection.
    """
    if sum(len(d) for d in datas) < HASH_OFF_LOOP_BYTES:
        return [content_key(d) for d in datas]
    return await asyncio.to_thread(lambda: [content_key(d) for d in datas])
