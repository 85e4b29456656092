"""The seam between the learner and where its evidence lives, and the in-memory backend.

A backend holds two things, both bounded:

* **counters**: name -> (value, time), each decayed on write (``value * 2^-(now-t)/H +
  increment``). At most ``MAX_COUNTERS`` names: an increment to a new name past the cap is
  refused and counted (the learner reports it), and names decayed to nothing are forgotten
  when a snapshot finds them.
* **records**: small byte strings by key, in tables: ``p`` (which tool and kind an
  original came from, by CCR key), ``d`` (what was decided for an output, by its memo
  key) and ``r`` (retrieval rounds the proxy served, ``proxy.round_ledger``). A record is
  written once (a second write of a key keeps the first; in ``LATEST_WINS`` tables it
  replaces it), lives ``ttl`` seconds after its last read, and at most ``max_records`` of
  each table are kept (oldest out first).

Backends sharing one SQLite file or one Redis server share what they learn: every worker
and every host reads the same counters and the same decisions.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Protocol

from headroom.learning.model import decayed

MAX_COUNTERS = 20_000
MAX_RECORDS = 500_000
TABLES = ("p", "d", "r")  # provenance by CCR key, decisions by memo key, served rounds
# Tables where the last write of a key wins: two conversations in the same state (the same
# answer after the same turn) each continue from the rounds served last, not from the first.
LATEST_WINS = frozenset({"r"})


class LearnBackend(Protocol):
    name: str

    async def add(self, increments: Mapping[str, float], now: float) -> int:
        """Decay and add; returns how many new names the cap refused."""
        ...

    async def counts(self) -> dict[str, tuple[float, float]]: ...

    async def forget(self, names: Sequence[str]) -> None: ...

    async def put_records(
        self, table: str, records: Mapping[str, bytes], ttl: float, now: float
    ) -> None: ...

    async def get_records(
        self, table: str, keys: Sequence[str], ttl: float, now: float
    ) -> dict[str, bytes]: ...

    async def reset(self, tables: Sequence[str]) -> None:
        """Forget every counter and the records of ``tables`` (other tables stay: the
        served rounds are not learning)."""
        ...

    async def close(self) -> None: ...


def bump(old: tuple[float, float] | None, increment: float, now: float) -> tuple[float, float]:
    """One counter after an increment at ``now``."""
    if old is None:
        return increment, now
    return decayed(old[0], old[1], now) + increment, now


class MemoryBackend:
    """One process's learning: for tests and for a proxy whose CCR store is in memory."""

    name = "memory"

    def __init__(self, max_counters: int = MAX_COUNTERS, max_records: int = MAX_RECORDS) -> None:
        self.max_counters = max_counters
        self.max_records = max_records
        self._counts: dict[str, tuple[float, float]] = {}
        self._records: dict[str, OrderedDict[str, tuple[bytes, float]]] = {
            t: OrderedDict() for t in TABLES
        }

    async def add(self, increments: Mapping[str, float], now: float) -> int:
        refused = 0
        for name, inc in increments.items():
            old = self._counts.get(name)
            if old is None and len(self._counts) >= self.max_counters:
                refused += 1
                continue
            self._counts[name] = bump(old, inc, now)
        return refused

    async def counts(self) -> dict[str, tuple[float, float]]:
        return dict(self._counts)

    async def forget(self, names: Sequence[str]) -> None:
        for name in names:
            self._counts.pop(name, None)

    async def put_records(
        self, table: str, records: Mapping[str, bytes], ttl: float, now: float
    ) -> None:
        rows = self._records[table]
        for key, value in records.items():
            if key in rows and rows[key][1] > now and table not in LATEST_WINS:
                continue
            rows[key] = (value, now + ttl)
            rows.move_to_end(key)
        while len(rows) > self.max_records:
            rows.popitem(last=False)

    async def get_records(
        self, table: str, keys: Sequence[str], ttl: float, now: float
    ) -> dict[str, bytes]:
        rows = self._records[table]
        found: dict[str, bytes] = {}
        for key in keys:
            row = rows.get(key)
            if row is None:
                continue
            if row[1] <= now:
                del rows[key]
                continue
            rows[key] = (row[0], now + ttl)
            rows.move_to_end(key)
            found[key] = row[0]
        return found

    async def reset(self, tables: Sequence[str]) -> None:
        self._counts.clear()
        for table in tables:
            self._records[table].clear()

    async def close(self) -> None:
        return None
