"""``--stats-redis``: the hosts of a fleet publish their totals to one Redis, and
``/stats?scope=fleet`` on any of them adds the fleet up.

Each host instance (a supervisor and its workers, or one process) has one key,
``headroom:stats:<host>:<instance>``, rewritten every ``PUBLISH_EVERY`` with the host's
totals (all its workers, exited ones included) and a short TTL, so a host that stops
publishing leaves the fleet view within ``TTL`` seconds. Every worker of a host writes the
same key with the same totals, each from its own consistent read, so nothing has to decide
which worker publishes. Fleet totals therefore count live hosts; lasting totals are what
Prometheus keeps from each host's ``/metrics``.

Redis trouble never touches traffic: a failed publish is logged once per outage, a failed
read answers ``/stats?scope=fleet`` with 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from headroom.log import Logger
from headroom.telemetry.stats import Stats

KEY_PREFIX = "headroom:stats:"
PUBLISH_EVERY = 1.0
TTL = 15
MAX_HOSTS = 1024
TIMEOUT = 2.0

Gather = Callable[[], tuple[Stats, dict[str, int], dict[str, Any]]]


class FleetError(Exception):
    """Redis for fleet stats is unusable (bad URL, no answer)."""


class FleetStats:
    def __init__(
        self, client: Any, instance: str, gather: Gather, log: Logger, owner: bool
    ) -> None:
        self.client = client
        self.owner = owner  # the only publisher of its key: may delete it on a clean stop
        self.key = KEY_PREFIX + instance
        self.instance = instance
        self.gather = gather
        self.log = log
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    @classmethod
    async def open(
        cls, url: str, instance: str, gather: Gather, log: Logger, *, owner: bool
    ) -> FleetStats:
        try:
            import redis.asyncio as aioredis
        except ImportError as exc:
            raise FleetError(f"--stats-redis: the redis package is missing ({exc})") from None
        try:
            client = aioredis.Redis.from_url(
                url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
            )
            await client.ping()
        except Exception as exc:  # redis raises many types; all mean "not usable"
            raise FleetError(f"--stats-redis: {type(exc).__name__}: {exc}") from None
        return cls(client, instance, gather, log, owner)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self.publish()
            await asyncio.sleep(PUBLISH_EVERY)

    async def publish(self) -> None:
        total, endpoints, workers = self.gather()
        record = {
            "instance": self.instance,
            "published": time.time(),
            "workers": workers.get("count", 1),
            "stats": total.to_data(),
            "ccr_endpoints": endpoints,
        }
        try:
            await self.client.set(self.key, json.dumps(record, separators=(",", ":")), ex=TTL)
        except Exception as exc:
            if not self._failing:
                self.log.warning("fleet_stats_publish_failed", error=f"{type(exc).__name__}")
            self._failing = True
            return
        if self._failing:
            self.log.info("fleet_stats_publish_recovered")
        self._failing = False

    async def read(self) -> tuple[Stats, dict[str, int], list[dict[str, Any]]]:
        """Every live host's last totals, added up (raises on Redis trouble)."""
        keys: list[bytes] = []
        async for key in self.client.scan_iter(match=KEY_PREFIX + "*", count=256):
            keys.append(key)
            if len(keys) >= MAX_HOSTS:
                break
        values = await self.client.mget(keys) if keys else []
        parts, hosts = [], []
        endpoints: Counter[str] = Counter()
        now = time.time()
        for raw in values:
            if raw is None:
                continue  # expired between SCAN and MGET
            record = json.loads(raw)
            parts.append(record["stats"])
            endpoints.update(record.get("ccr_endpoints", {}))
            hosts.append(
                {
                    "instance": record["instance"],
                    "workers": record["workers"],
                    "requests": record["stats"]["requests"],
                    "age_s": round(max(0.0, now - float(record["published"])), 3),
                }
            )
        hosts.sort(key=lambda h: h["instance"])
        return Stats.merged(parts), dict(endpoints), hosts

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.owner:  # a worker leaves the key to its siblings (and the TTL)
            with contextlib.suppress(Exception):
                await self.client.delete(self.key)
        with contextlib.suppress(Exception):
            await self.client.aclose()


def instance_name(supervised: bool) -> str:
    """``host:pid`` of the supervisor (shared by its workers) or of the lone process."""
    return f"{socket.gethostname()}:{os.getppid() if supervised else os.getpid()}"
