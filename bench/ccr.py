"""CCR store speed: put/get ops per second and latency per backend and value size.

One client, one operation at a time, so the figures are per-operation latency as the
proxy's flush (put) and retrieval (get) see it, not the backend's peak throughput. Gets read
keys written moments before (a warm cache). SQLite also gets a 100 KB row for its target:
get p99 ≤ 1 ms on a warm cache. Redis runs against a private ``redis-server`` on a free
port (skipped with a note on stderr when the binary is missing).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from headroom.ccr.memory import MemoryStore
from headroom.ccr.redis_store import RedisStore
from headroom.ccr.sqlite import SqliteStore
from headroom.ccr.store import CCRStore, Entry
from tests.support.redis_server import RedisServer, RedisUnavailable

KB = 1024
MB = 1024 * 1024
TTL = 86_400.0

# (backend, value size) -> operations per phase; quick runs use a tenth.
PLAN: tuple[tuple[str, int, int], ...] = (
    ("memory", KB, 5000),
    ("memory", MB, 100),
    ("sqlite", KB, 2000),
    ("sqlite", 100 * KB, 1000),
    ("sqlite", MB, 100),
    ("redis", KB, 2000),
    ("redis", MB, 100),
)


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000.0


async def _timed(n: int, op: Callable[[int], Awaitable[Any]]) -> tuple[float, list[float]]:
    samples = []
    started = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        await op(i)
        samples.append(time.perf_counter() - t0)
    return time.perf_counter() - started, samples


async def _measure(store: CCRStore, size: int, n: int) -> dict[str, Any]:
    base = os.urandom(size)
    values = [i.to_bytes(8, "big") + base[8:] for i in range(n)]
    keys: list[str] = [""] * n

    async def put(i: int) -> None:
        keys[i] = await store.put(values[i])

    async def get(i: int) -> None:
        result = await store.get(keys[i])
        if not isinstance(result, Entry):
            raise RuntimeError(f"{store.name}: lost entry {keys[i]}: {result}")

    put_total, put_samples = await _timed(n, put)
    await _timed(min(n, 50), get)  # warm-up
    get_total, get_samples = await _timed(n, get)
    return {
        "backend": store.name,
        "value": f"{size // MB} MB" if size >= MB else f"{size // KB} KB",
        "ops": n,
        "put_ops_s": n / put_total,
        "get_ops_s": n / get_total,
        "put_p50_ms": _pct(put_samples, 0.50),
        "put_p99_ms": _pct(put_samples, 0.99),
        "get_p50_ms": _pct(get_samples, 0.50),
        "get_p99_ms": _pct(get_samples, 0.99),
    }


async def _open(backend: str, workdir: Path, redis_url: str | None) -> CCRStore:
    if backend == "memory":
        return MemoryStore(ttl=TTL, max_entries=1_000_000, max_bytes=4 << 30)
    if backend == "sqlite":
        return await SqliteStore.open(workdir / "bench.sqlite3", ttl=TTL, max_bytes=4 << 30)
    assert redis_url is not None
    return await RedisStore.open(redis_url, prefix="bench:", ttl=TTL)


async def _run(quick: bool, workdir: Path, redis_url: str | None) -> list[dict[str, Any]]:
    rows = []
    for backend, size, n in PLAN:
        if backend == "redis" and redis_url is None:
            continue
        store = await _open(backend, workdir, redis_url)
        try:
            rows.append(await _measure(store, size, max(10, n // 10) if quick else n))
        finally:
            await store.close()
    return rows


def run(quick: bool) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="headroom-bench-ccr-") as tmp:
        try:
            server: RedisServer | None = RedisServer(Path(tmp)).start()
        except RedisUnavailable as exc:
            print(f"bench ccr: redis rows skipped: {exc}", file=sys.stderr)
            server = None
        try:
            return asyncio.run(_run(quick, Path(tmp), server.url if server else None))
        finally:
            if server is not None:
                server.close()


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
