"""Fixtures for the CCR tests: a hand-driven clock, one redis-server per test worker, and a
``harness`` that opens any backend the same way so one contract suite covers all three."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from headroom.ccr.memory import MemoryStore
from headroom.ccr.redis_store import RedisStore
from headroom.ccr.sqlite import SqliteStore
from headroom.ccr.store import CCRStore
from tests.support.redis_server import RedisServer, need_redis_server

T = TypeVar("T")

BACKENDS = ("memory", "sqlite", "redis")


def run(coro: Awaitable[T]) -> T:
    """Run one test scenario on a fresh event loop (no asyncio pytest plugin needed)."""
    return asyncio.run(_wrap(coro))


async def _wrap(coro: Awaitable[T]) -> T:
    return await coro


class FakeClock:
    """Wall-clock seconds that only move when a test says so."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One server per xdist worker (each worker has its own session); tests isolate
    themselves with a unique key prefix."""
    need_redis_server()
    with RedisServer() as server:
        yield server


@dataclass
class Harness:
    """Opens stores of one backend and moves their time: a fake clock for memory and
    SQLite, real sleeping for Redis, whose TTLs run on the server."""

    kind: str
    clock: FakeClock
    tmp: Path
    redis_url: str | None
    prefix: str

    @property
    def real_time(self) -> bool:
        return self.kind == "redis"

    async def open(self, *, ttl: float = 3600.0, max_bytes: int = 1 << 30, **kw: Any) -> CCRStore:
        if self.kind == "memory":
            kw.setdefault("max_entries", 100_000)
            return MemoryStore(ttl=ttl, max_bytes=max_bytes, clock=self.clock, **kw)
        if self.kind == "sqlite":
            kw.setdefault("path", self.tmp / "ccr.sqlite3")
            return await SqliteStore.open(
                kw.pop("path"), ttl=ttl, max_bytes=max_bytes, clock=self.clock, **kw
            )
        assert self.redis_url is not None
        kw.pop("max_entries", None)
        return await RedisStore.open(
            self.redis_url, prefix=self.prefix, ttl=ttl, clock=self.clock, **kw
        )

    async def advance(self, seconds: float) -> None:
        if self.real_time:
            await asyncio.sleep(seconds)
        self.clock.advance(seconds)

    async def purge(self, store: CCRStore) -> None:
        """Make the backend drop what has expired, the way it does in production."""
        if isinstance(store, SqliteStore):
            await store.purge()
        elif isinstance(store, MemoryStore):
            await store.put(b"any write purges the memory store " + uuid.uuid4().bytes)


@pytest.fixture(params=BACKENDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    kind = request.param
    url = None
    if kind == "redis":
        url = request.getfixturevalue("redis_server").url
    return Harness(kind, FakeClock(), tmp_path, url, f"test:{uuid.uuid4().hex}:")
