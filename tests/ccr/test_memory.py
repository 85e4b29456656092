"""Memory-only behaviour: LRU capacity in entries and bytes, and the synchronous API."""

from __future__ import annotations

import pytest

from headroom.ccr.markers import content_key
from headroom.ccr.memory import MemoryStore
from headroom.ccr.store import Entry, Missing, StoreError
from tests.ccr.conftest import FakeClock


def store(clock: FakeClock | None = None, **kw: int) -> MemoryStore:
    kw.setdefault("max_entries", 3)
    kw.setdefault("max_bytes", 1_000_000)
    return MemoryStore(ttl=60.0, clock=clock or FakeClock(), **kw)


def test_entry_cap_evicts_least_recently_used() -> None:
    s = store()
    a, b, c = (s.put_sync(v) for v in (b"a", b"b", b"c"))
    assert isinstance(s.get_sync(a), Entry)  # a becomes the most recent; b is now oldest
    d = s.put_sync(b"d")
    assert s.get_sync(b) == Missing(b, "expired")
    for key in (a, c, d):
        assert isinstance(s.get_sync(key), Entry)
    assert s.stats_sync()["evicted"] == 1


def test_byte_cap_evicts_until_it_fits() -> None:
    s = store(max_entries=100, max_bytes=10)
    first = s.put_sync(b"12345")
    second = s.put_sync(b"6789")
    third = s.put_sync(b"abcdef")  # 15 bytes > 10: the first goes
    assert s.get_sync(first) == Missing(first, "expired")
    assert [isinstance(s.get_sync(k), Entry) for k in (second, third)] == [True, True]
    assert s.stats_sync()["bytes"] == 10


def test_batch_beyond_capacity_is_refused_and_nothing_is_lost() -> None:
    s = store(max_entries=2)
    kept = s.put_sync(b"kept")
    with pytest.raises(StoreError, match="exceeds the store's capacity"):
        s.put_many_sync([b"x", b"y", b"z"])
    assert isinstance(s.get_sync(kept), Entry)
    assert s.stats_sync()["entries"] == 1


def test_same_content_counts_once() -> None:
    s = store(max_entries=100, max_bytes=100)
    for _ in range(5):
        s.put_sync(b"0123456789")
    assert (s.stats_sync()["entries"], s.stats_sync()["bytes"]) == (1, 10)


def test_expired_entries_are_purged_on_write() -> None:
    clock = FakeClock()
    s = store(clock, max_entries=100)
    old = s.put_many_sync([bytes([i]) for i in range(10)])
    clock.advance(61)
    s.put_sync(b"new")
    stats = s.stats_sync()
    assert (stats["entries"], stats["tombstones"], stats["purged"]) == (1, 10, 10)
    assert s.get_sync(old[0]) == Missing(old[0], "expired")


def test_tombstones_are_bounded_by_count() -> None:
    clock = FakeClock()
    s = MemoryStore(ttl=1.0, max_entries=1000, max_bytes=1 << 20, clock=clock, max_tombstones=5)
    keys = s.put_many_sync([bytes([i]) for i in range(20)])
    clock.advance(2)
    s.put_sync(b"trigger purge")
    assert s.stats_sync()["tombstones"] == 5
    assert s.get_sync(keys[0]) == Missing(keys[0], "not_found")  # oldest forgotten
    assert s.get_sync(keys[-1]) == Missing(keys[-1], "expired")


def test_sync_and_async_views_agree() -> None:
    import asyncio

    s = store()
    key = s.put_sync(b"shared")

    async def read() -> Entry | Missing:
        return await s.get(key)

    got = asyncio.run(read())
    assert isinstance(got, Entry) and got.original == b"shared"
    assert key == content_key(b"shared")
