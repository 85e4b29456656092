"""Config + the open CCR store → the learner that shares it, or none (``--learning off``),
and the backend of records the ledger of served rounds keeps beside it (``records_beside``).

The learner keeps its evidence where the store keeps originals (the same SQLite file, the
same Redis server and prefix, or this process's memory), so whoever shares the store shares
what was learned; a failure to open it stops startup like a store failure does.
"""

from __future__ import annotations

from headroom.ccr.store import CCRStore
from headroom.config import Config
from headroom.learning.backend import MAX_RECORDS, LearnBackend, MemoryBackend
from headroom.learning.learner import Learner
from headroom.learning.sqlite_backend import SqliteBackend


async def learner_for(config: Config, store: CCRStore) -> Learner | None:
    if config.learning == "off":
        return None
    backend = await records_beside(config, store, MAX_RECORDS)
    return Learner(backend, ttl=config.ccr_ttl, readonly=config.learning_readonly)


async def records_beside(config: Config, store: CCRStore, max_records: int) -> LearnBackend:
    """A backend of counters and records where ``store`` keeps originals; ``max_records``
    bounds each table it writes (Redis: TTL and ``maxmemory`` do)."""
    if store.name == "sqlite":
        return await SqliteBackend.open(config.ccr_path, max_records=max_records)
    if store.name == "redis":
        from headroom.ccr.redis_store import RedisStore
        from headroom.learning.redis_backend import RedisBackend

        assert isinstance(store, RedisStore)
        return RedisBackend(store)
    return MemoryBackend(max_records=max_records)
