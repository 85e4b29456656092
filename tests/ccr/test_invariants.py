"""Random operation sequences against memory and SQLite: the bookkeeping always adds up.

The SQLite totals row is kept by triggers and the memory store keeps a running byte count;
both drive eviction, so a drift would silently break the size cap. Every sequence mixes
puts (batches with duplicates), gets, clock moves past the TTL and purges under a small cap
that forces eviction, then checks the counts against the data itself and checks that every
key a put returned is readable right after that put.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headroom.ccr.memory import MemoryStore
from headroom.ccr.sqlite import SqliteStore
from headroom.ccr.store import CCRStore, Entry, StoreError
from tests.ccr.conftest import FakeClock, run

CAP = 2_000
TTL = 100.0
POOL = [bytes([i]) * size for i, size in enumerate((10, 50, 200, 400, 700, 900, 1500, 3))]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.lists(st.sampled_from(POOL), min_size=1, max_size=3)),
        st.tuples(st.just("get"), st.sampled_from(POOL)),
        st.tuples(st.just("advance"), st.sampled_from([1.0, 30.0, 101.0])),
        st.tuples(st.just("purge"), st.none()),
    ),
    max_size=25,
)


async def apply(store: CCRStore, clock: FakeClock, sequence: list[tuple[str, object]]) -> None:
    for op, arg in sequence:
        if op == "put":
            values = arg if isinstance(arg, list) else []
            try:
                keys = await store.put_many(values)
            except StoreError:  # refused whole: only allowed when it could never fit
                assert sum(len(v) for v in set(values)) > CAP
                continue
            for key, value in zip(keys, values, strict=True):
                got = await store.get(key)
                assert isinstance(got, Entry) and got.original == value
        elif op == "get":
            await store.get(content_key_of(arg))
        elif op == "advance":
            clock.advance(float(arg))  # type: ignore[arg-type]
        elif isinstance(store, SqliteStore):
            await store.purge()


def content_key_of(value: object) -> str:
    from headroom.ccr.markers import content_key

    assert isinstance(value, bytes)
    return content_key(value)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_sqlite_totals_match_the_rows(sequence: list[tuple[str, object]]) -> None:
    clock = FakeClock()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.sqlite3"

        async def scenario() -> None:
            store = await SqliteStore.open(
                path, ttl=TTL, max_bytes=CAP, clock=clock, maintain=False
            )
            try:
                await apply(store, clock, sequence)
            finally:
                await store.close()

        run(scenario())
        with sqlite3.connect(path) as db:
            totals = db.execute("SELECT entries, bytes, tombstones FROM ccr_totals").fetchone()
            live = db.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM ccr_meta WHERE gone = 0"
            ).fetchone()
            (tombstones,) = db.execute("SELECT count(*) FROM ccr_meta WHERE gone = 1").fetchone()
            blobs = db.execute(
                "SELECT count(*), coalesce(sum(length(original)), 0) FROM ccr_blob"
            ).fetchone()
        assert totals == (live[0], live[1], tombstones)
        assert blobs == live
        assert live[1] <= CAP


@settings(max_examples=60, deadline=None)
@given(ops)
def test_memory_counts_match_the_entries(sequence: list[tuple[str, object]]) -> None:
    clock = FakeClock()
    store = MemoryStore(ttl=TTL, max_entries=5, max_bytes=CAP, clock=clock)
    run(apply(store, clock, sequence))
    stats = store.stats_sync()
    live = list(store._live.values())
    assert stats["bytes"] == sum(len(item.original) for item in live) <= CAP
    assert stats["entries"] == len(live) <= 5
    assert not set(store._live) & set(store._gone)
