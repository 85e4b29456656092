"""Learning in the CCR store's SQLite file: every proxy process on the host learns together.

Two tables beside the store's own (``CREATE IF NOT EXISTS``; the store's schema version is
not touched): ``learn_counts`` (name, value, t) and ``learn_records`` (tbl, key, value,
expires_at). Its own connection, on its own thread, so a learning write never queues
behind a store read; every write is one ``BEGIN IMMEDIATE`` transaction, so two processes
adding to one counter at once both count (the read-decay-write happens under the lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from headroom.ccr.sqlite_file import (
    connect,
    describe,
    immediate,
    prepare_file,
    statements,
    switch_to_wal,
)
from headroom.ccr.store import StoreError
from headroom.learning.backend import LATEST_WINS, MAX_COUNTERS, MAX_RECORDS, bump

T = TypeVar("T")
_BUSY_TIMEOUT = 5.0
_PRUNE_EVERY = 256  # record writes between two prunes of a table

_SCHEMA = """
CREATE TABLE IF NOT EXISTS learn_counts (
    name TEXT PRIMARY KEY, value REAL NOT NULL, t REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS learn_records (
    tbl TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (tbl, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS learn_records_by_expiry ON learn_records (tbl, expires_at);
"""


class SqliteBackend:
    name = "sqlite"

    def __init__(
        self, path: Path, max_counters: int = MAX_COUNTERS, max_records: int = MAX_RECORDS
    ) -> None:
        self.path = Path(path)
        self.max_counters = max_counters
        self.max_records = max_records
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="learn-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._writes = 0

    @classmethod
    async def open(cls, path: Path, **kw: Any) -> SqliteBackend:
        backend = cls(path, **kw)
        try:
            await backend._call(backend._open)
        except BaseException:
            await backend.close()
            raise
        return backend

    async def add(self, increments: Mapping[str, float], now: float) -> int:
        return await self._call(self._add, dict(increments), now)

    async def counts(self) -> dict[str, tuple[float, float]]:
        rows = await self._call(lambda: self._db.execute("SELECT name, value, t FROM learn_counts"))
        return {name: (value, t) for name, value, t in rows}

    async def forget(self, names: Sequence[str]) -> None:
        await self._call(self._forget, list(names))

    async def put_records(
        self, table: str, records: Mapping[str, bytes], ttl: float, now: float
    ) -> None:
        await self._call(self._put_records, table, dict(records), ttl, now)

    async def get_records(
        self, table: str, keys: Sequence[str], ttl: float, now: float
    ) -> dict[str, bytes]:
        return await self._call(self._get_records, table, list(keys), ttl, now)

    async def reset(self, tables: Sequence[str]) -> None:
        def wipe() -> None:
            with self._write() as db:
                db.execute("DELETE FROM learn_counts")
                db.executemany("DELETE FROM learn_records WHERE tbl = ?", [(t,) for t in tables])

        await self._call(wipe)

    async def close(self) -> None:
        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        with contextlib.suppress(StoreError):
            await self._call(shut)
        self._executor.shutdown(wait=True)

    # ------------------------------------------------------------ plumbing

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, lambda: _rows(fn(*args)))
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"learning sqlite: {describe(exc)} ({self.path})") from exc
        except RuntimeError as exc:
            raise StoreError(f"learning sqlite: closed ({self.path})") from exc

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError("learning store is not open")
        return self._conn

    def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return immediate(self._db)

    # ------------------------------------------------------------ thread only

    def _open(self) -> None:
        prepare_file(self.path)
        db = connect(self.path, _BUSY_TIMEOUT)
        try:
            switch_to_wal(db, _BUSY_TIMEOUT)
            db.execute("PRAGMA synchronous = NORMAL")
            self._conn = db
            with self._write() as w:
                for statement in statements(_SCHEMA):
                    w.execute(statement)
        except BaseException:
            self._conn = None
            db.close()
            raise

    def _add(self, increments: dict[str, float], now: float) -> int:
        refused = 0
        with self._write() as db:
            total: int | None = None  # counted (a full scan) only when a new name comes
            for name, inc in increments.items():
                row = db.execute(
                    "SELECT value, t FROM learn_counts WHERE name = ?", (name,)
                ).fetchone()
                if row is None:
                    if total is None:
                        (total,) = db.execute("SELECT count(*) FROM learn_counts").fetchone()
                    if total >= self.max_counters:
                        refused += 1
                        continue
                    total += 1
                value, t = bump(row, inc, now)
                db.execute(
                    "INSERT INTO learn_counts (name, value, t) VALUES (?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET value = excluded.value, t = excluded.t",
                    (name, value, t),
                )
        return refused

    def _forget(self, names: list[str]) -> None:
        with self._write() as db:
            db.executemany("DELETE FROM learn_counts WHERE name = ?", [(n,) for n in names])

    def _put_records(self, table: str, records: dict[str, bytes], ttl: float, now: float) -> None:
        with self._write() as db:
            db.executemany(
                "INSERT INTO learn_records (tbl, key, value, expires_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value, "
                "expires_at = excluded.expires_at WHERE learn_records.expires_at <= ? OR ?",
                [(table, k, v, now + ttl, now, table in LATEST_WINS) for k, v in records.items()],
            )
            self._writes += len(records)
            if self._writes >= _PRUNE_EVERY:
                self._writes = 0
                self._prune(db, table, now)

    def _prune(self, db: sqlite3.Connection, table: str, now: float) -> None:
        """Expired rows out, then the oldest past the cap (bounded work per call)."""
        db.execute(
            "DELETE FROM learn_records WHERE tbl = ? AND key IN (SELECT key FROM learn_records "
            "WHERE tbl = ? AND expires_at <= ? LIMIT 4096)",
            (table, table, now),
        )
        count = "SELECT count(*) FROM learn_records WHERE tbl = ?"
        (rows,) = db.execute(count, (table,)).fetchone()
        if rows > self.max_records:
            db.execute(
                "DELETE FROM learn_records WHERE tbl = ? AND key IN (SELECT key FROM "
                "learn_records WHERE tbl = ? ORDER BY expires_at LIMIT ?)",
                (table, table, rows - self.max_records),
            )

    def _get_records(self, table: str, keys: list[str], ttl: float, now: float) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        db = self._db
        for key in keys:
            row = db.execute(
                "SELECT value, expires_at FROM learn_records WHERE tbl = ? AND key = ?",
                (table, key),
            ).fetchone()
            if row is not None and row[1] > now:
                found[key] = bytes(row[0])
        if found:
            with self._write() as w:
                w.executemany(
                    "UPDATE learn_records SET expires_at = ? WHERE tbl = ? AND key = ?",
                    [(now + ttl, table, k) for k in found],
                )
        return found


def _rows(value: T) -> T:
    """A cursor is read out on the store thread, never on the loop."""
    if isinstance(value, sqlite3.Cursor):
        return value.fetchall()  # type: ignore[return-value]
    return value
