"""Learning in the CCR store's Redis server: a fleet of proxies on many hosts learns together.

Under the store's prefix: ``learn:counts`` is one hash of counter name -> ``"value:t"``,
changed only by a Lua script, so the read-decay-write of a counter is atomic however many
proxies add to it; the counter cap is checked in the same script. A record is its own key,
``learn:<table>:<key>``, written with ``SET NX PX`` (the first write stands; plain ``SET PX``
in ``LATEST_WINS`` tables) and read with
``GETEX PX`` (a read extends its life); Redis expires them, so their number is bounded by
their TTL and ``maxmemory``, not by a count here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from headroom.ccr.redis_store import RedisStore
from headroom.learning.backend import LATEST_WINS, MAX_COUNTERS
from headroom.learning.model import HALF_LIFE

_ADD_SCRIPT = """
local refused = 0
local now = tonumber(ARGV[1])
local half_life = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local n = redis.call('HLEN', KEYS[1])
for i = 4, #ARGV, 2 do
    local name = ARGV[i]
    local value = tonumber(ARGV[i + 1])
    local old = redis.call('HGET', KEYS[1], name)
    if old then
        local sep = string.find(old, ':', 1, true)
        local age = now - tonumber(string.sub(old, sep + 1))
        if age < 0 then age = 0 end
        value = tonumber(string.sub(old, 1, sep - 1)) * math.pow(0.5, age / half_life) + value
    elseif n >= cap then
        refused = refused + 1
        value = nil
    else
        n = n + 1
    end
    if value then
        redis.call('HSET', KEYS[1], name, string.format('%.17g:%.17g', value, now))
    end
end
return refused
"""
_SCAN_COUNT = 1000
_MAX_SCAN_ROUNDS = 100_000


class RedisBackend:
    """Shares the store's connection pool (and its timeouts and single retry)."""

    name = "redis"

    def __init__(self, store: RedisStore, max_counters: int = MAX_COUNTERS) -> None:
        self._store = store
        self._client = store.client
        self._counts_key = store.prefix + "learn:counts"
        self._prefix = store.prefix + "learn:"
        self.max_counters = max_counters
        self._add_script = self._client.register_script(_ADD_SCRIPT)

    async def add(self, increments: Mapping[str, float], now: float) -> int:
        if not increments:
            return 0
        args: list[Any] = [repr(now), repr(HALF_LIFE), self.max_counters]
        for name, inc in increments.items():
            args += [name, repr(float(inc))]
        refused = await self._guard("add", self._add_script(keys=[self._counts_key], args=args))
        return int(refused)

    async def counts(self) -> dict[str, tuple[float, float]]:
        raw = await self._guard("counts", self._client.hgetall(self._counts_key))
        out: dict[str, tuple[float, float]] = {}
        for name, packed in raw.items():
            value, _, t = packed.decode().partition(":")
            out[name.decode()] = (float(value), float(t))
        return out

    async def forget(self, names: Sequence[str]) -> None:
        if names:
            await self._guard("forget", self._client.hdel(self._counts_key, *names))

    async def put_records(
        self, table: str, records: Mapping[str, bytes], ttl: float, now: float
    ) -> None:
        if not records:
            return
        pipe = self._client.pipeline(transaction=False)
        for key, value in records.items():
            pipe.set(
                f"{self._prefix}{table}:{key}", value, px=_ms(ttl), nx=table not in LATEST_WINS
            )
        await self._guard("put", pipe.execute())

    async def get_records(
        self, table: str, keys: Sequence[str], ttl: float, now: float
    ) -> dict[str, bytes]:
        if not keys:
            return {}
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.getex(f"{self._prefix}{table}:{key}", px=_ms(ttl))
        values = await self._guard("get", pipe.execute())
        return {k: bytes(v) for k, v in zip(keys, values, strict=True) if v is not None}

    async def reset(self, tables: Sequence[str]) -> None:
        await self._guard("reset", self._client.delete(self._counts_key))
        for table in tables:
            cursor = 0
            match = f"{self._prefix}{table}:*"
            for _ in range(_MAX_SCAN_ROUNDS):
                cursor, found = await self._guard(
                    "reset", self._client.scan(cursor, match=match, count=_SCAN_COUNT)
                )
                if found:
                    await self._guard("reset", self._client.delete(*found))
                if cursor == 0:
                    break

    async def close(self) -> None:
        return None  # the store owns the pool

    async def _guard(self, what: str, awaitable: Any) -> Any:
        return await self._store.guard(f"learning {what} failed", awaitable)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
