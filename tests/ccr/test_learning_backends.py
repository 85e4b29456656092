"""The learning backends' contract, on all three (memory, one SQLite file, a real
redis-server): decayed counters with a cap, write-once records with a TTL a read extends,
reset, and (SQLite, Redis) two processes' worth of backends on one store counting together."""

from __future__ import annotations

import asyncio

import pytest

from headroom.ccr.redis_store import RedisStore
from headroom.learning.backend import LearnBackend, MemoryBackend
from headroom.learning.learner import Learner, Seen
from headroom.learning.model import HALF_LIFE, counter
from headroom.learning.redis_backend import RedisBackend
from headroom.learning.sqlite_backend import SqliteBackend
from tests.ccr.conftest import Harness, run

NOW = 1_800_000_000.0


async def _open(harness: Harness, **kw: int) -> tuple[LearnBackend, RedisStore | None]:
    if harness.kind == "memory":
        return MemoryBackend(**kw), None
    if harness.kind == "sqlite":
        return await SqliteBackend.open(harness.tmp / "ccr.sqlite3", **kw), None
    store = await harness.open()
    assert isinstance(store, RedisStore)
    return RedisBackend(store, **kw), store


async def _close(backend: LearnBackend, store: RedisStore | None) -> None:
    await backend.close()
    if store is not None:
        await store.close()


def test_counters_decay_by_half_each_half_life_and_add(harness: Harness) -> None:
    async def scenario() -> None:
        backend, store = await _open(harness)
        try:
            await backend.add({"a": 4.0, "b": 1.0}, NOW)
            await backend.add({"a": 1.0}, NOW + HALF_LIFE)
            counts = await backend.counts()
            value, t = counts["a"]
            assert value == pytest.approx(3.0)  # 4 halved, plus 1
            assert t == pytest.approx(NOW + HALF_LIFE)
            assert counts["b"] == (pytest.approx(1.0), pytest.approx(NOW))
            await backend.forget(["b"])
            assert set(await backend.counts()) == {"a"}
        finally:
            await _close(backend, store)

    run(scenario())


def test_the_counter_cap_refuses_new_names_and_keeps_adding_to_old_ones(harness: Harness) -> None:
    async def scenario() -> None:
        backend, store = await _open(harness, max_counters=2)
        try:
            assert await backend.add({"a": 1.0, "b": 1.0}, NOW) == 0
            assert await backend.add({"c": 1.0, "a": 1.0}, NOW) == 1
            counts = await backend.counts()
            assert set(counts) == {"a", "b"}
            assert counts["a"][0] == pytest.approx(2.0)
        finally:
            await _close(backend, store)

    run(scenario())


def test_a_record_is_written_once_and_a_read_extends_its_life(harness: Harness) -> None:
    async def scenario() -> None:
        backend, store = await _open(harness)
        ttl = 0.6 if harness.real_time else 100.0
        try:
            await backend.put_records("d", {"k1": b"first"}, ttl, NOW)
            await backend.put_records("d", {"k1": b"second", "k2": b"two"}, ttl, NOW)
            got = await backend.get_records("d", ["k1", "k2", "nope"], ttl, NOW)
            assert got == {"k1": b"first", "k2": b"two"}
            assert await backend.get_records("p", ["k1"], ttl, NOW) == {}  # tables apart
            await harness.advance(ttl * 0.6)
            later = NOW + ttl * 0.6
            assert await backend.get_records("d", ["k1"], ttl, later) == {"k1": b"first"}
            await harness.advance(ttl * 0.6)
            past = NOW + ttl * 1.2
            # k1 was read at 0.6 ttl, so it lives; k2 was not and is gone
            assert await backend.get_records("d", ["k1", "k2"], ttl, past) == {"k1": b"first"}
            await backend.reset(("p", "d"))
            assert await backend.counts() == {}
            assert await backend.get_records("d", ["k1"], ttl, past) == {}
        finally:
            await _close(backend, store)

    run(scenario())


def test_served_rounds_are_last_write_wins_and_outlive_a_learning_reset(
    harness: Harness,
) -> None:
    """The ``r`` table (``proxy.round_ledger``): a second write of a key replaces the
    first, and ``ccr learned --reset`` (the learner's reset) leaves it alone."""

    async def scenario() -> None:
        backend, store = await _open(harness)
        try:
            await backend.put_records("r", {"k": b"first"}, 100.0, NOW)
            await backend.put_records("r", {"k": b"second"}, 100.0, NOW)
            await backend.put_records("d", {"k": b"decided"}, 100.0, NOW)
            await backend.add({"a": 1.0}, NOW)
            await Learner(backend, ttl=100.0).reset()
            assert await backend.get_records("r", ["k"], 100.0, NOW) == {"k": b"second"}
            assert await backend.get_records("d", ["k"], 100.0, NOW) == {}
            assert await backend.counts() == {}
        finally:
            await _close(backend, store)

    run(scenario())


@pytest.mark.parametrize("harness", ["sqlite", "redis"], indirect=True)
def test_two_backends_on_one_store_count_together(harness: Harness) -> None:
    """Two workers (or hosts) adding to one counter at once: no increment is lost."""

    async def scenario() -> None:
        one, store_one = await _open(harness)
        two, store_two = await _open(harness)
        try:
            name = counter("r", "Bash", "log")
            await asyncio.gather(*(b.add({name: 1.0}, NOW) for _ in range(20) for b in (one, two)))
            assert (await one.counts())[name][0] == pytest.approx(40.0)
            await one.put_records("p", {"key": b"from one"}, 100.0, NOW)
            assert await two.get_records("p", ["key"], 100.0, NOW) == {"key": b"from one"}
        finally:
            await _close(one, store_one)
            await _close(two, store_two)

    run(scenario())


def test_a_learner_on_each_backend_learns_lossless_from_retrievals(harness: Harness) -> None:
    async def scenario() -> None:
        backend, store = await _open(harness)
        learner = Learner(backend, ttl=3600.0, clock=lambda: NOW)
        try:
            for i in range(4):
                key = f"{i:024x}"
                seen = Seen("Bash", "", "log", 1000, 200, (key,), ())
                await learner.record_compressed([seen], {f"d{i}": b"{}"})
                assert await learner.record_retrieval(key, 1000) is not None
            assert await learner.record_retrieval("f" * 24, 1000) is None
            steers = await learner.steers()
            assert steers["Bash"]["log"].lossless
            stats = await learner.stats()
            row = stats["by_tool"][0]
            assert (row["tool"], row["kind"], row["decision"]) == ("Bash", "log", "lossless")
            assert row["why"] == (
                "lossless: 4.0 retrievals of 4.0 compressed outputs cost 4,000 tokens "
                "(originals 4,000, re-sent requests 0) >= the 3,200 the compression saved"
            )
            assert stats["unknown_retrievals"] == 1
            assert await learner.decisions(["d0", "d9"]) == {"d0": b"{}"}
        finally:
            await _close(backend, store)

    run(scenario())
