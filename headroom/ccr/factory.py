"""Config → an open, checked CCR store, or a one-line reason why not.

Startup is the moment to find out that the store cannot work: an unwritable path, a file
that is not our database, a Redis URL that does not parse or a server that does not answer
all raise ``StoreError("ccr <backend>: <cause>")``, which the CLI prints and turns into exit
code 1. There is deliberately no fallback to the memory store: a proxy that silently kept
its originals in one process's memory would lose them at the next restart or on the next
worker, and every marker it had sent would then retrieve nothing.
"""

from __future__ import annotations

import logging

from headroom.ccr.backend import SYSTEM_CLOCK, Clock
from headroom.ccr.memory import MemoryStore
from headroom.ccr.sqlite import SqliteStore
from headroom.ccr.store import CCRStore, StoreError
from headroom.config import Config

log = logging.getLogger("headroom.ccr")


async def from_config(config: Config, *, clock: Clock = SYSTEM_CLOCK) -> CCRStore:
    store = await _open(config, clock)
    log.info("ccr_backend_ready backend=%s ttl=%.0fs", store.name, config.ccr_ttl)
    return store


async def _open(config: Config, clock: Clock) -> CCRStore:
    backend = config.ccr_backend
    if backend == "memory":
        return MemoryStore(
            ttl=config.ccr_ttl,
            max_entries=config.ccr_max_entries,
            max_bytes=config.ccr_max_bytes,
            clock=clock,
        )
    if backend == "sqlite":
        return await SqliteStore.open(
            config.ccr_path, ttl=config.ccr_ttl, max_bytes=config.ccr_max_bytes, clock=clock
        )
    if backend == "redis":
        if not config.ccr_redis_url:
            raise StoreError("ccr redis: no --ccr-redis-url given")
        try:
            from headroom.ccr.redis_store import RedisStore
        except ImportError as exc:
            raise StoreError(
                f"ccr redis: the redis package is missing ({exc}); install headroom-proxy[redis]"
            ) from None
        return await RedisStore.open(
            config.ccr_redis_url, prefix=config.ccr_redis_prefix, ttl=config.ccr_ttl, clock=clock
        )
    raise StoreError(f"ccr: unknown backend {backend!r} (memory, sqlite or redis)")
