"""CCR store in Redis, for fleets of proxies on many hosts without sticky sessions.

Keys, under the configured prefix (tenants sharing one server pick different prefixes):

* ``{prefix}{key}`` — the value: 8 bytes big-endian ``created_at`` (float seconds) followed
  by the original bytes. One ``SET … PX`` writes it, one ``GETEX … PX`` reads it and
  refreshes its TTL, so Redis itself expires entries and no purge runs here.
* ``{prefix}{key}:seen`` — the tombstone: an empty string whose TTL is the entry's TTL
  plus ``TOMBSTONE_SECONDS``, refreshed together with the value. When the value is gone but
  this key is still there, the entry existed and expired (or Redis evicted it under
  ``maxmemory``): ``get`` answers ``expired``; with neither, ``not_found``. A get is one
  round trip: a small Lua script runs ``GETEX`` on the value and, on a hit, refreshes the
  tombstone, or on a miss reports whether the tombstone exists.

``--ccr-max-bytes`` does not apply: size is Redis's ``maxmemory`` business. With an
evicting ``maxmemory-policy`` Redis may drop entries early; prefer ``noeviction`` (puts then
fail loudly and the proxy forwards the uncompressed request).

Every call goes through a bounded blocking pool with short socket timeouts and a single
retry, so a dead Redis turns into a ``StoreError`` within seconds, never a hang.
"""

from __future__ import annotations

import struct
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from headroom.ccr.backend import (
    SYSTEM_CLOCK,
    TOMBSTONE_SECONDS,
    Clock,
    check_original,
    check_ttl,
    content_keys,
    new_counters,
)
from headroom.ccr.store import Entry, Missing, StoreError

_HEADER = struct.Struct(">d")
_TOMBSTONE_SUFFIX = ":seen"

# A hit refreshes the value and its tombstone; a miss only looks, so asking about an
# expired key does not keep its tombstone alive (same rule as the other backends).
_GET_SCRIPT = """
local value = redis.call('GETEX', KEYS[1], 'PX', ARGV[1])
if value then
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
    return {value, 1}
end
return {false, redis.call('EXISTS', KEYS[2])}
"""


class RedisStore:
    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        ttl: float,
        clock: Clock = SYSTEM_CLOCK,
        tombstone_seconds: float = TOMBSTONE_SECONDS,
        socket_timeout: float = 2.0,
        max_connections: int = 32,
    ) -> None:
        """Prefer ``await RedisStore.open(...)``, which also checks the server answers."""
        self.url = url
        self.prefix = prefix
        self.ttl = check_ttl(ttl)
        self._ttl_ms = max(1, round(self.ttl * 1000))
        self._tomb_ms = self._ttl_ms + max(1, round(tombstone_seconds * 1000))
        self._clock = clock
        self.counters = new_counters()
        try:
            pool = aioredis.BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=socket_timeout * 2,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                retry=Retry(NoBackoff(), 1),
            )
        except (ValueError, TypeError) as exc:
            raise StoreError(f"ccr redis: bad URL {redact(url)!r}: {exc}") from None
        self._client = aioredis.Redis(connection_pool=pool)
        self._get_script = self._client.register_script(_GET_SCRIPT)

    @classmethod
    async def open(cls, url: str, **kw: Any) -> RedisStore:
        store = cls(url, **kw)
        try:
            await store._guard("cannot reach server", store._client.ping())
        except StoreError:
            await store.close()
            raise
        return store

    # ------------------------------------------------------------ CCRStore

    async def put(self, original: bytes) -> str:
        return (await self.put_many([original]))[0]

    async def put_many(self, originals: list[bytes]) -> list[str]:
        """One ``MULTI`` for the batch: every key is written, or the call raises."""
        datas = [check_original(o) for o in originals]
        keys = await content_keys(datas)
        batch = dict(zip(keys, datas, strict=True))
        header = _HEADER.pack(self._clock())
        pipe = self._client.pipeline(transaction=True)
        for key, data in batch.items():
            value_key = self.prefix + key
            pipe.set(value_key, header + data, px=self._ttl_ms, nx=True)
            pipe.pexpire(value_key, self._ttl_ms)
            pipe.set(value_key + _TOMBSTONE_SUFFIX, b"", px=self._tomb_ms)
        results = await self._guard("put failed", pipe.execute())
        if not all(results[1::3]):
            raise StoreError("ccr redis: put failed: an entry vanished while being written")
        self.counters["puts"] += len(batch)
        return keys

    async def get(self, key: str) -> Entry | Missing:
        value_key = self.prefix + key
        keys = [value_key, value_key + _TOMBSTONE_SUFFIX]
        value, seen = await self._guard(
            "get failed", self._get_script(keys=keys, args=[self._ttl_ms, self._tomb_ms])
        )
        if value is None or len(value) < _HEADER.size:
            status = "expired" if seen else "not_found"
            self.counters[status] += 1
            return Missing(key, status)
        self.counters["hits"] += 1
        (created_at,) = _HEADER.unpack_from(value)
        return Entry(key, value[_HEADER.size :], created_at, self._clock() + self.ttl)

    async def stats(self) -> dict[str, Any]:
        memory = await self._guard("stats failed", self._client.info("memory"))
        keys = await self._guard("stats failed", self._client.dbsize())
        return {
            "backend": self.name,
            "url": redact(self.url),
            "prefix": self.prefix,
            "ttl_seconds": self.ttl,
            "server_used_memory": memory.get("used_memory"),
            "server_maxmemory_policy": memory.get("maxmemory_policy"),
            "server_keys": keys,
            **self.counters,
        }

    async def close(self) -> None:
        try:
            await self._client.aclose()
        except (RedisError, OSError):
            pass

    # ------------------------------------------------------------ plumbing

    @property
    def client(self) -> aioredis.Redis:
        """The pool-backed client, for what shares this store's server (the learner)."""
        return self._client

    async def guard(self, what: str, awaitable: Any) -> Any:
        return await self._guard(what, awaitable)

    async def _guard(self, what: str, awaitable: Any) -> Any:
        """Await a client call, turning every way Redis can fail into one ``StoreError``."""
        started = time.monotonic()
        try:
            return await awaitable
        except (RedisError, OSError) as exc:
            took = time.monotonic() - started
            raise StoreError(
                f"ccr redis: {what} at {redact(self.url)}: {type(exc).__name__}: {exc} "
                f"(after {took:.1f}s)"
            ) from exc


def redact(url: str) -> str:
    """The URL without its password, for messages and ``/stats``."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{parts.username or ''}:***@{host}"
        if parts.port is not None:
            netloc += f":{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparseable URL>"
