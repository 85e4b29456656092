"""The contract every CCR backend keeps, run against memory, SQLite and a real Redis."""

from __future__ import annotations

import asyncio
import os

import pytest

from headroom.ccr.markers import content_key
from headroom.ccr.store import Entry, Missing
from tests.ccr.conftest import Harness, run

UNKNOWN = "0123456789abcdef01234567"


def entry(result: Entry | Missing) -> Entry:
    assert isinstance(result, Entry), f"expected an entry, got {result}"
    return result


def test_round_trip_is_byte_exact(harness: Harness) -> None:
    values = [
        b"",
        b"plain ascii",
        bytes(range(256)) * 4,
        b"\x00\x00nul inside\x00and at the end\x00",
        "naïve café — 日本語 🚀".encode(),
        b"\xff\xfe not utf-8 \x80",
    ]

    async def scenario() -> None:
        store = await harness.open()
        try:
            keys = await store.put_many(values)
            assert keys == [content_key(v) for v in values]
            for key, value in zip(keys, values, strict=True):
                got = entry(await store.get(key))
                assert got.key == key
                assert got.original == value
                assert type(got.original) is bytes
        finally:
            await store.close()

    run(scenario())


def test_five_megabyte_value(harness: Harness) -> None:
    value = os.urandom(5 * 1024 * 1024)

    async def scenario() -> None:
        store = await harness.open()
        try:
            key = await store.put(value)
            assert entry(await store.get(key)).original == value
        finally:
            await store.close()

    run(scenario())


def test_text_is_refused_with_a_clear_type_error(harness: Harness) -> None:
    async def scenario() -> None:
        store = await harness.open()
        try:
            with pytest.raises(TypeError, match="bytes"):
                await store.put("text must be encoded first")  # type: ignore[arg-type]
        finally:
            await store.close()

    run(scenario())


def test_keys_are_deterministic(harness: Harness) -> None:
    async def scenario() -> None:
        store = await harness.open()
        try:
            first = await store.put(b"same content")
            second = await store.put(b"same content")
            batch = await store.put_many([b"a", b"b", b"a"])
            assert first == second == content_key(b"same content")
            assert batch == [content_key(b"a"), content_key(b"b"), content_key(b"a")]
            assert len(first) == 24 and first == first.lower()
            assert await store.put_many([]) == []
        finally:
            await store.close()

    run(scenario())


def test_unknown_key_is_not_found(harness: Harness) -> None:
    async def scenario() -> None:
        store = await harness.open()
        try:
            assert await store.get(UNKNOWN) == Missing(UNKNOWN, "not_found")
        finally:
            await store.close()

    run(scenario())


def test_created_and_expiry_times(harness: Harness) -> None:
    async def scenario() -> None:
        store = await harness.open(ttl=600.0)
        try:
            put_at = harness.clock()
            key = await store.put(b"timed")
            got = entry(await store.get(key))
            assert got.created_at == pytest.approx(put_at, abs=1.0)
            assert got.expires_at == pytest.approx(harness.clock() + 600.0, abs=1.0)
        finally:
            await store.close()

    run(scenario())


def test_expired_is_distinct_from_not_found_even_after_purge(harness: Harness) -> None:
    async def scenario() -> None:
        store = await harness.open(ttl=0.4)
        try:
            key = await store.put(b"short-lived")
            await harness.advance(0.6)
            assert await store.get(key) == Missing(key, "expired")
            await harness.purge(store)
            assert await store.get(key) == Missing(key, "expired")
            assert await store.get(UNKNOWN) == Missing(UNKNOWN, "not_found")
        finally:
            await store.close()

    run(scenario())


def test_tombstones_are_forgotten_eventually(harness: Harness) -> None:
    async def scenario() -> None:
        store = await harness.open(ttl=0.3, tombstone_seconds=0.3)
        try:
            key = await store.put(b"gone for good")
            await harness.advance(0.4)
            await harness.purge(store)
            assert await store.get(key) == Missing(key, "expired")
            await harness.advance(0.5)
            await harness.purge(store)
            assert await store.get(key) == Missing(key, "not_found")
        finally:
            await store.close()

    run(scenario())


def test_reads_refresh_the_ttl(harness: Harness) -> None:
    async def scenario() -> None:
        store = await harness.open(ttl=0.8)
        try:
            key = await store.put(b"kept alive by use")
            await harness.advance(0.5)
            first = entry(await store.get(key))
            await harness.advance(0.5)  # 1.0 s after the put, 0.5 s after the read
            second = entry(await store.get(key))
            assert second.expires_at > first.expires_at
            await harness.advance(1.0)
            assert await store.get(key) == Missing(key, "expired")
        finally:
            await store.close()

    run(scenario())


def test_put_again_refreshes_and_revives(harness: Harness) -> None:
    async def scenario() -> None:
        store = await harness.open(ttl=0.4)
        try:
            key = await store.put(b"written twice")
            await harness.advance(0.6)
            await harness.purge(store)
            assert await store.get(key) == Missing(key, "expired")
            assert await store.put(b"written twice") == key
            assert entry(await store.get(key)).original == b"written twice"
        finally:
            await store.close()

    run(scenario())


def test_thousand_concurrent_puts_and_gets(harness: Harness) -> None:
    values = [f"value {i} ".encode() * (i % 50 + 1) for i in range(1000)]

    async def scenario() -> None:
        store = await harness.open()
        try:
            keys = await asyncio.gather(*(store.put(v) for v in values))
            assert keys == [content_key(v) for v in values]
            mixed = [store.get(k) for k in keys] + [store.put(v) for v in values[:200]]
            results = await asyncio.gather(*mixed)
            for value, got in zip(values, results[:1000], strict=True):
                assert entry(got).original == value
            stats = await store.stats()
            assert stats["backend"] == store.name
            assert stats["hits"] == 1000
        finally:
            await store.close()

    run(scenario())


def test_stats_count_outcomes(harness: Harness) -> None:
    async def scenario() -> None:
        store = await harness.open(ttl=0.3)
        try:
            key = await store.put(b"counted")
            await store.get(key)
            await store.get(UNKNOWN)
            await harness.advance(0.5)
            await store.get(key)
            stats = await store.stats()
            assert (stats["puts"], stats["hits"], stats["not_found"], stats["expired"]) == (
                1,
                1,
                1,
                1,
            )
            assert stats["ttl_seconds"] == pytest.approx(0.3)
        finally:
            await store.close()

    run(scenario())
