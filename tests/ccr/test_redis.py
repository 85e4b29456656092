"""Redis-only behaviour against a real redis-server: prefixes, failures, server-side TTL."""

from __future__ import annotations

import time
import uuid

import pytest
import redis

from headroom.ccr.redis_store import RedisStore, redact
from headroom.ccr.store import Entry, Missing, StoreError
from tests.ccr.conftest import run
from tests.support.redis_server import RedisServer, need_redis_server


def prefix() -> str:
    return f"test:{uuid.uuid4().hex}:"


def test_entries_live_under_the_prefix_with_a_server_ttl(redis_server: RedisServer) -> None:
    p = prefix()

    async def scenario() -> str:
        store = await RedisStore.open(redis_server.url, prefix=p, ttl=120.0)
        try:
            return await store.put(b"prefixed")
        finally:
            await store.close()

    key = run(scenario())
    raw = redis.Redis.from_url(redis_server.url)
    try:
        assert raw.get(p + key)[8:] == b"prefixed"
        assert 110_000 < raw.pttl(p + key) <= 120_000
        assert raw.pttl(p + key + ":seen") > 120_000
    finally:
        raw.close()


def test_tenants_with_different_prefixes_do_not_see_each_other(
    redis_server: RedisServer,
) -> None:
    async def scenario() -> None:
        one = await RedisStore.open(redis_server.url, prefix=prefix(), ttl=60.0)
        two = await RedisStore.open(redis_server.url, prefix=prefix(), ttl=60.0)
        try:
            key = await one.put(b"tenant one only")
            assert isinstance(await one.get(key), Entry)
            assert await two.get(key) == Missing(key, "not_found")
        finally:
            await one.close()
            await two.close()

    run(scenario())


def test_server_stopped_mid_test_gives_prompt_store_errors() -> None:
    need_redis_server()
    with RedisServer() as server:

        async def scenario() -> None:
            store = await RedisStore.open(server.url, prefix=prefix(), ttl=60.0)
            try:
                key = await store.put(b"before the outage")
                assert isinstance(await store.get(key), Entry)
                server.stop()
                for call in (lambda: store.put(b"during"), lambda: store.get(key), store.stats):
                    started = time.monotonic()
                    with pytest.raises(StoreError, match=r"^ccr redis: ") as info:
                        await call()
                    assert time.monotonic() - started < 5.0
                    assert "\n" not in str(info.value)
            finally:
                await store.close()

        run(scenario())


def test_unreachable_server_fails_at_open() -> None:
    from tests.support.redis_server import _free_port

    url = f"redis://127.0.0.1:{_free_port()}/0"

    async def scenario() -> None:
        with pytest.raises(StoreError, match=r"^ccr redis: cannot reach server at redis://"):
            await RedisStore.open(url, prefix="x:", ttl=60.0)

    run(scenario())


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "redis://127.0.0.1:notaport", "nope"])
def test_bad_url_fails_at_open(url: str) -> None:
    async def scenario() -> None:
        with pytest.raises(StoreError, match=r"^ccr redis: bad URL"):
            await RedisStore.open(url, prefix="x:", ttl=60.0)

    run(scenario())


def test_password_never_appears_in_messages() -> None:
    assert redact("redis://user:hunter2@10.0.0.1:6380/1") == "redis://user:***@10.0.0.1:6380/1"
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_stats_report_the_server(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        store = await RedisStore.open(redis_server.url, prefix=prefix(), ttl=60.0)
        try:
            await store.put(b"x")
            stats = await store.stats()
            assert stats["backend"] == "redis" and stats["server_keys"] >= 2
            assert stats["server_used_memory"] > 0
        finally:
            await store.close()

    run(scenario())


def test_value_dropped_by_the_server_reads_as_expired(redis_server: RedisServer) -> None:
    """Redis may evict a value under maxmemory; its tombstone still says it existed."""
    p = prefix()

    async def scenario() -> None:
        store = await RedisStore.open(redis_server.url, prefix=p, ttl=60.0)
        try:
            key = await store.put(b"evicted by the server")
            raw = redis.Redis.from_url(redis_server.url)
            try:
                raw.delete(p + key)
            finally:
                raw.close()
            assert await store.get(key) == Missing(key, "expired")
            assert await store.put(b"evicted by the server") == key
            assert isinstance(await store.get(key), Entry)
        finally:
            await store.close()

    run(scenario())
