"""The ledger of rounds the proxy served, shared by every worker and host that shares the
CCR store (see ``providers.rounds`` for what a record holds and how it is put back).

Records live in the store's backend (a table of the SQLite file, keys on the Redis server,
or this process's memory), the last write of a key winning (two conversations in the same
state each continue from the rounds served last; a worker that cached the earlier one keeps
using it: the same visible answer and results, only the model's hidden turn may differ),
kept ``ttl`` seconds after their last use, at
most ``MAX_RECORDS`` of them (Redis: bounded by TTL and ``maxmemory``), each at most
``MAX_RECORD_BYTES`` (a larger one is not kept: the next turn goes without it). This process
keeps the records it used, originals filled in, in a cache bounded by ``--ledger-max-bytes``,
and remembers for ``ABSENT_SECONDS`` which answers have none, so an old turn costs a store
read once, not on every request that carries it.

The compression thread asks ``find`` for the keys of one body's answers; what the cache
cannot answer is read on the event loop (the thread waits, bounded by ``WAIT_SECONDS``).

Counted in ``Stats``: ``rounds_remembered`` (records written), ``rounds_restored`` (answers
put back: hits), ``rounds_missed`` (a record was found but an original it names is gone
from the store, or a read or write failed), ``rounds_too_large`` (records not kept).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Protocol

import orjson

from headroom.ccr.store import CCRStore, Entry, StoreError
from headroom.config import Config
from headroom.learning.backend import LearnBackend
from headroom.log import Logger
from headroom.providers.rounds import Resolved, originals_of, resolve
from headroom.telemetry.stats import Stats

TABLE = "r"
MAX_RECORDS = 4096
MAX_RECORD_BYTES = 256 * 1024
ABSENT_SECONDS = 600.0
MAX_ABSENT = 65_536
WAIT_SECONDS = 2.0


class _Host(Protocol):
    config: Config
    log: Logger
    loop: asyncio.AbstractEventLoop
    stats: Stats


class RoundLedger:
    def __init__(self, backend: LearnBackend, store: CCRStore, host: _Host, *, ttl: float) -> None:
        self.backend = backend
        self.store = store
        self.loop = host.loop
        self.log = host.log
        self.stats = host.stats
        self.ttl = ttl
        self.max_bytes = host.config.ledger_max_bytes
        self._found: OrderedDict[str, tuple[Resolved, int]] = OrderedDict()
        self._absent: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0

    # ------------------------------------------------------------------ writing (loop)

    async def remember(self, key: str, record: bytes, originals: Mapping[str, str]) -> None:
        """Keep a record (it replaces one of the same key) and this process's resolved copy."""
        if len(record) > MAX_RECORD_BYTES:
            self.stats.rounds_too_large += 1
            return
        try:
            await self.backend.put_records(TABLE, {key: record}, self.ttl, time.time())
        except StoreError as exc:
            self._missed()
            self.log.warning("round_ledger_write_failed", error=str(exc))
            return
        self.stats.rounds_remembered += 1
        resolved = resolve(record, originals)
        if resolved is not None:
            self._keep(key, resolved)

    # ------------------------------------------------------------------ reading

    def find(self, keys: Sequence[str]) -> dict[str, Resolved]:
        """The records of these answers (from a compression thread). Keys this process does
        not know are read from the store on the loop first."""
        unknown = self._unknown(keys)
        if unknown and not self._on_loop():
            future = asyncio.run_coroutine_threadsafe(self.fetch(unknown), self.loop)
            try:
                future.result(WAIT_SECONDS)
            except FutureTimeout:
                future.cancel()
                self._missed()
        return self._cached(keys)

    async def holds(self, keys: Sequence[str]) -> bool:
        """Whether a record is ready for any of these answers (read on the loop)."""
        unknown = self._unknown(keys)
        if unknown:
            await self.fetch(unknown)
        return bool(self._cached(keys))

    def _on_loop(self) -> bool:
        """Whether the caller runs on the loop itself (a test calling the rewrite directly),
        which must not wait for its own loop."""
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    async def fetch(self, keys: Sequence[str]) -> None:
        """Read records and the originals they name; cache what was found and what not."""
        try:
            records = await self.backend.get_records(TABLE, list(keys), self.ttl, time.time())
        except StoreError as exc:
            self._missed()
            self.log.warning("round_ledger_read_failed", error=str(exc))
            return
        for key in keys:
            record = records.get(key)
            resolved = await self._resolved(record) if record is not None else None
            if record is not None and resolved is None:
                self._missed()
            if resolved is None:
                self._mark_absent(key)
            else:
                self._keep(key, resolved)

    async def _resolved(self, record: bytes) -> Resolved | None:
        originals: dict[str, str] = {}
        for ccr_key in originals_of(record):
            try:
                found = await self.store.get(ccr_key)
            except StoreError as exc:
                self.log.warning("round_ledger_original_failed", error=str(exc))
                return None
            if not isinstance(found, Entry):
                return None
            originals[ccr_key] = found.original.decode("utf-8", errors="replace")
        return resolve(record, originals)

    # ------------------------------------------------------------------ the local cache

    def _cached(self, keys: Sequence[str]) -> dict[str, Resolved]:
        with self._lock:
            out: dict[str, Resolved] = {}
            for key in keys:
                entry = self._found.get(key)
                if entry is not None:
                    self._found.move_to_end(key)
                    out[key] = entry[0]
            return out

    def _unknown(self, keys: Sequence[str]) -> list[str]:
        now = time.monotonic()
        with self._lock:
            out = []
            for key in keys:
                if key in self._found:
                    continue
                until = self._absent.get(key)
                if until is not None and until > now:
                    continue
                out.append(key)
            return out

    def _keep(self, key: str, resolved: Resolved) -> None:
        size = len(resolved.run) + len(orjson.dumps(resolved.after))
        if size > self.max_bytes:
            return  # read from the store each time it is needed
        with self._lock:
            self._absent.pop(key, None)
            old = self._found.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._found[key] = (resolved, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, dropped) = self._found.popitem(last=False)
                self.bytes -= dropped

    def _mark_absent(self, key: str) -> None:
        with self._lock:
            self._absent[key] = time.monotonic() + ABSENT_SECONDS
            self._absent.move_to_end(key)
            while len(self._absent) > MAX_ABSENT:
                self._absent.popitem(last=False)

    async def close(self) -> None:
        """Close the backend (its own SQLite connection and thread; the store stays open)."""
        await self.backend.close()

    def _missed(self) -> None:
        with self._lock:  # also counted from compression threads
            self.stats.rounds_missed += 1

    def __len__(self) -> int:
        return len(self._found)
