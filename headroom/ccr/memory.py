"""In-process CCR store: for tests and for a single proxy process that may lose its entries.

Entries sit in one ``OrderedDict`` kept in least-recently-used order (a put or a hit moves a
key to the end). Because the TTL is the same for every entry and is refreshed on each use,
that order is also expiry order, so purging expired entries and evicting for capacity both
pop from the front: no scan, no heap.

Everything here is synchronous and never blocks (no I/O), so the ``*_sync`` methods are safe
from the event loop or from a test; the async methods only satisfy ``CCRStore``. Not
thread-safe: use it from one thread (the loop).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from headroom.ccr.backend import (
    SYSTEM_CLOCK,
    TOMBSTONE_SECONDS,
    Clock,
    check_original,
    check_ttl,
    new_counters,
)
from headroom.ccr.markers import content_key
from headroom.ccr.store import Entry, Missing, StoreError

_PURGE_STEP = 256  # most expired entries / tombstones dropped per operation


@dataclass(slots=True)
class _Item:
    original: bytes
    created_at: float
    expires_at: float


class MemoryStore:
    name = "memory"

    def __init__(
        self,
        *,
        ttl: float,
        max_entries: int,
        max_bytes: int,
        clock: Clock = SYSTEM_CLOCK,
        tombstone_seconds: float = TOMBSTONE_SECONDS,
        max_tombstones: int | None = None,
    ) -> None:
        if max_entries <= 0 or max_bytes <= 0:
            raise ValueError("memory CCR store needs positive max_entries and max_bytes")
        self.ttl = check_ttl(ttl)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._tombstone_seconds = tombstone_seconds
        self._max_tombstones = max_entries if max_tombstones is None else max_tombstones
        self._live: OrderedDict[str, _Item] = OrderedDict()
        self._gone: OrderedDict[str, float] = OrderedDict()  # key -> when it left
        self._bytes = 0
        self.counters = new_counters()

    # ------------------------------------------------------------ synchronous API

    def put_sync(self, original: bytes) -> str:
        return self.put_many_sync([original])[0]

    def put_many_sync(self, originals: list[bytes]) -> list[str]:
        """Store a batch so that every key returned is live when this returns.

        A batch that could not fit even in an empty store is refused whole (``StoreError``)
        rather than evicting its own first members to make room for its last ones.
        """
        datas = [check_original(o) for o in originals]
        keys = [content_key(d) for d in datas]
        batch = dict(zip(keys, datas, strict=True))
        # The whole batch must fit at once: its members are never evicted for each other,
        # so one already stored still counts against the cap.
        batch_bytes = sum(len(d) for d in batch.values())
        if len(batch) > self.max_entries or batch_bytes > self.max_bytes:
            raise StoreError(
                f"ccr memory: batch of {len(batch)} entries / {batch_bytes} bytes exceeds the "
                f"store's capacity ({self.max_entries} entries / {self.max_bytes} bytes)"
            )
        now = self._clock()
        self._purge(now)
        for key, data in batch.items():
            self._insert(key, data, now)
        self._evict(now)
        self.counters["puts"] += len(batch)
        return keys

    def get_sync(self, key: str) -> Entry | Missing:
        now = self._clock()
        item = self._live.get(key)
        if item is not None and item.expires_at <= now:
            self._bury(key, item.expires_at)
            item = None
        if item is None:
            status = "expired" if key in self._gone else "not_found"
            self.counters[status] += 1
            return Missing(key, status)
        item.expires_at = now + self.ttl
        self._live.move_to_end(key)
        self.counters["hits"] += 1
        return Entry(key, item.original, item.created_at, item.expires_at)

    def stats_sync(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "entries": len(self._live),
            "bytes": self._bytes,
            "tombstones": len(self._gone),
            "max_entries": self.max_entries,
            "max_bytes": self.max_bytes,
            "ttl_seconds": self.ttl,
            **self.counters,
        }

    # ------------------------------------------------------------ CCRStore

    async def put(self, original: bytes) -> str:
        return self.put_sync(original)

    async def put_many(self, originals: list[bytes]) -> list[str]:
        return self.put_many_sync(originals)

    async def get(self, key: str) -> Entry | Missing:
        return self.get_sync(key)

    async def stats(self) -> dict[str, Any]:
        return self.stats_sync()

    async def close(self) -> None:
        self._live.clear()
        self._gone.clear()
        self._bytes = 0

    # ------------------------------------------------------------ internals

    def _insert(self, key: str, data: bytes, now: float) -> None:
        item = self._live.get(key)
        if item is None:
            self._gone.pop(key, None)
            self._live[key] = _Item(data, now, now + self.ttl)
            self._bytes += len(data)
        else:  # same key, same content: only its lifetime moves
            item.expires_at = now + self.ttl
            self._live.move_to_end(key)

    def _bury(self, key: str, when: float) -> None:
        item = self._live.pop(key)
        self._bytes -= len(item.original)
        self._gone[key] = when
        self._gone.move_to_end(key)

    def _purge(self, now: float) -> None:
        """Drop a bounded number of expired entries and stale tombstones from the front."""
        for _ in range(_PURGE_STEP):
            if not self._live:
                break
            key, item = next(iter(self._live.items()))
            if item.expires_at > now:
                break
            self._bury(key, item.expires_at)
            self.counters["purged"] += 1
        horizon = now - self._tombstone_seconds
        for _ in range(_PURGE_STEP):
            if not self._gone:
                break
            key, when = next(iter(self._gone.items()))
            if when > horizon and len(self._gone) <= self._max_tombstones:
                break
            del self._gone[key]

    def _evict(self, now: float) -> None:
        """Least recently used first; the batch just written sits at the end, so it stays."""
        while len(self._live) > self.max_entries or self._bytes > self.max_bytes:
            key = next(iter(self._live))
            self._bury(key, now)
            self.counters["evicted"] += 1
