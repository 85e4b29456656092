"""Config + the open CCR store → the learner that shares it, or none (``--learning off``).

The learner keeps its evidence where the store keeps originals (the same SQLite file, the
same Redis server and prefix, or this process's memory), so whoever shares the store shares
what was learned; a failure to open it stops startup like a store failure does.
"""

from __future__ import annotations

from headroom.ccr.store import CCRStore
from headroom.config import Config
from headroom.learning.backend import LearnBackend, MemoryBackend
from headroom.learning.learner import Learner
from headroom.learning.sqlite_backend import SqliteBackend


async def learner_for(config: Config, store: CCRStore) -> Learner | None:
    if config.learning == "off":
        return None
    backend: LearnBackend
    if store.name == "sqlite":
        backend = await SqliteBackend.open(config.ccr_path)
    elif store.name == "redis":
        from headroom.ccr.redis_store import RedisStore
        from headroom.learning.redis_backend import RedisBackend

        assert isinstance(store, RedisStore)
        backend = RedisBackend(store)
    else:
        backend = MemoryBackend()
    return Learner(backend, ttl=config.ccr_ttl, readonly=config.learning_readonly)
