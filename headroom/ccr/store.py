"""The CCR store interface: what the proxy and the retrieval endpoints call.

Two sides, on purpose:

* ``CCRWriter`` is the synchronous seam the compression engine writes through. The engine
  runs in a worker thread and never does I/O; ``PendingWrites`` records what it wants kept
  and computes the content-addressed key at once, so the marker text is known immediately.
* ``CCRStore`` is the asynchronous store the proxy flushes ``PendingWrites`` into before
  the compressed request leaves (durable before visible). A failed flush means the proxy
  forwards the original request instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from headroom.ccr.markers import content_key


@dataclass(frozen=True)
class Entry:
    key: str
    original: bytes
    created_at: float  # unix seconds
    expires_at: float  # unix seconds; refreshed on read


@dataclass(frozen=True)
class Missing:
    """``get`` found nothing. ``"expired"``: the key was stored here and is gone for good
    (its TTL ran out or it was evicted; a bounded tombstone remembers it), so asking again
    is pointless. ``"not_found"``: this store never held it, or forgot even the tombstone."""

    key: str
    status: str


class StoreError(Exception):
    """The backend failed (I/O, corruption, network). The message names backend and cause."""


class CCRWriter(Protocol):
    def put(self, original: bytes | str) -> str:
        """Keep ``original``; return its key. Synchronous and cheap."""
        ...


class CCRStore(Protocol):
    name: str

    async def put(self, original: bytes) -> str: ...

    async def put_many(self, originals: list[bytes]) -> list[str]: ...

    async def get(self, key: str) -> Entry | Missing: ...

    async def stats(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class PendingWrites:
    """A ``CCRWriter`` that only records: keys now, storage when the proxy flushes."""

    def __init__(self) -> None:
        self._items: dict[str, bytes] = {}

    def put(self, original: bytes | str) -> str:
        data = original.encode("utf-8") if isinstance(original, str) else original
        key = content_key(data)
        self._items.setdefault(key, data)
        return key

    @property
    def items(self) -> dict[str, bytes]:
        return self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> bytes | None:
        return self._items.get(key)
