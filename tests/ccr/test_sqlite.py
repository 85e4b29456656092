"""SQLite-only behaviour: the file itself, restarts, sharing, the size cap, purging."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from headroom.ccr.sqlite import SqliteStore
from headroom.ccr.store import Entry, Missing, StoreError
from tests.ccr.conftest import FakeClock, run

REPO = Path(__file__).resolve().parents[2]


async def open_store(path: Path, clock: FakeClock | None = None, **kw: object) -> SqliteStore:
    kw.setdefault("ttl", 3600.0)
    kw.setdefault("max_bytes", 1 << 30)
    return await SqliteStore.open(path, clock=clock or FakeClock(), **kw)  # type: ignore[arg-type]


def test_entries_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ccr.sqlite3"
    clock = FakeClock()

    async def scenario() -> None:
        first = await open_store(path, clock, ttl=100.0)
        key = await first.put(b"outlives the process")
        await first.close()
        clock.advance(50)
        second = await open_store(path, clock, ttl=100.0)
        try:
            got = await second.get(key)
            assert isinstance(got, Entry) and got.original == b"outlives the process"
            assert (await second.stats())["entries"] == 1
        finally:
            await second.close()

    run(scenario())


def test_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "ccr.sqlite3"

    async def scenario() -> None:
        store = await open_store(path)
        await store.put(b"secret tool output")
        await store.close()

    run(scenario())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for sidecar in path.parent.glob("ccr.sqlite3-*"):
        assert stat.S_IMODE(sidecar.stat().st_mode) & 0o077 == 0


def test_existing_file_with_loose_mode_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "ccr.sqlite3"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)

    async def scenario() -> None:
        await (await open_store(path)).close()

    run(scenario())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_two_processes_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    count = 150
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.ccr.sqlite_worker", str(path), name, str(count)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in ("a", "b")
    ]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
        reports.append(json.loads(out))
    for report in reports:
        assert report["read_other"] == count
        assert report["stats"]["entries"] == 2 * count


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "ccr.sqlite3"
    path.write_bytes(b"this is not a database\n" * 200)

    async def scenario() -> None:
        with pytest.raises(StoreError) as info:
            await open_store(path)
        message = str(info.value)
        assert message.startswith("ccr sqlite: ")
        assert "not a database" in message and str(path) in message
        assert "\n" not in message

    run(scenario())


@pytest.mark.parametrize("where", ["schema_pages", "data_pages"])
def test_damaged_database_fails_at_open(tmp_path: Path, where: str) -> None:
    path = tmp_path / "ccr.sqlite3"

    async def fill() -> None:
        store = await open_store(path)
        await store.put_many([os.urandom(3000) for _ in range(50)])
        await store.close()

    run(fill())
    data = bytearray(path.read_bytes())
    start = 4096 if where == "schema_pages" else len(data) - 4096 * 6
    data[start : start + 8192] = os.urandom(8192)
    path.write_bytes(bytes(data))

    async def scenario() -> None:
        with pytest.raises(StoreError) as info:
            await open_store(path)
        message = str(info.value)
        assert message.startswith("ccr sqlite: ") and str(path) in message
        assert "malformed" in message or "damaged" in message
        assert "\n" not in message

    run(scenario())


def test_foreign_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ccr.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 7")

    async def scenario() -> None:
        with pytest.raises(StoreError, match="schema version 7"):
            await open_store(path)

    run(scenario())


@pytest.mark.parametrize("where", ["under_a_file", "is_a_directory"])
def test_unusable_path_is_a_clear_error(tmp_path: Path, where: str) -> None:
    blocker = tmp_path / "blocker"
    if where == "under_a_file":
        blocker.write_text("a file, not a directory")
        path = blocker / "ccr.sqlite3"
    else:
        blocker.mkdir()
        path = blocker

    async def scenario() -> None:
        with pytest.raises(StoreError, match=r"^ccr sqlite: ") as info:
            await open_store(path)
        assert "\n" not in str(info.value)

    run(scenario())


def test_size_cap_evicts_least_recently_used_first(tmp_path: Path) -> None:
    clock = FakeClock()

    async def scenario() -> None:
        store = await open_store(tmp_path / "c.sqlite3", clock, max_bytes=10_000)
        try:
            keys = []
            for i in range(3):
                keys.append(await store.put(bytes([i]) * 3000))
                clock.advance(100)  # more than the refresh slack (36 s for a 1 h TTL)
            assert isinstance(await store.get(keys[0]), Entry)  # 0 is now the most recent
            clock.advance(100)
            newest = await store.put_many([b"n" * 3000, b"m" * 3000])  # 15,000 > cap
            stats = await store.stats()
            assert (stats["bytes"], stats["evicted"]) == (9000, 2)
            assert await store.get(keys[1]) == Missing(keys[1], "expired")
            assert await store.get(keys[2]) == Missing(keys[2], "expired")
            for key in (keys[0], *newest):
                assert isinstance(await store.get(key), Entry)
        finally:
            await store.close()

    run(scenario())


def test_batch_larger_than_the_cap_is_refused_whole(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await open_store(tmp_path / "c.sqlite3", max_bytes=10_000)
        try:
            kept = await store.put(b"k" * 4000)
            with pytest.raises(StoreError, match="exceeds --ccr-max-bytes"):
                await store.put_many([b"a" * 6000, b"b" * 6000])
            stats = await store.stats()
            assert (stats["entries"], stats["bytes"]) == (1, 4000)
            assert isinstance(await store.get(kept), Entry)
        finally:
            await store.close()

    run(scenario())


def test_batch_never_evicts_its_own_members(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await open_store(tmp_path / "c.sqlite3", max_bytes=10_000)
        try:
            old = await store.put(b"o" * 5000)
            batch = await store.put_many([b"a" * 3000, b"b" * 3000, b"c" * 3000])
            assert await store.get(old) == Missing(old, "expired")
            for key in batch:
                assert isinstance(await store.get(key), Entry)
        finally:
            await store.close()

    run(scenario())


def test_purge_turns_expired_rows_into_tombstones(tmp_path: Path) -> None:
    clock = FakeClock()

    async def scenario() -> None:
        store = await open_store(tmp_path / "c.sqlite3", clock, ttl=10.0)
        try:
            keys = await store.put_many([os.urandom(1000) for _ in range(600)])
            clock.advance(11)
            live = await store.put(b"still fresh")
            assert await store.purge() == 600
            stats = await store.stats()
            assert (stats["entries"], stats["bytes"], stats["tombstones"]) == (1, 11, 600)
            assert await store.get(keys[0]) == Missing(keys[0], "expired")
            assert isinstance(await store.get(live), Entry)
        finally:
            await store.close()

    run(scenario())


def test_tombstone_count_is_capped(tmp_path: Path) -> None:
    clock = FakeClock()

    async def scenario() -> None:
        store = await open_store(tmp_path / "c.sqlite3", clock, ttl=10.0, max_tombstones=100)
        try:
            await store.put_many([os.urandom(64) for _ in range(300)])
            clock.advance(11)
            await store.purge()
            await store.purge()
            assert (await store.stats())["tombstones"] <= 100
        finally:
            await store.close()

    run(scenario())


def test_background_purge_runs_without_being_asked(tmp_path: Path) -> None:
    clock = FakeClock()

    async def scenario() -> None:
        store = await open_store(tmp_path / "c.sqlite3", clock, ttl=10.0, purge_interval=0.05)
        try:
            await store.put(b"will be purged in the background")
            clock.advance(11)
            for _ in range(100):
                if (await store.stats())["purged"]:
                    break
                await asyncio.sleep(0.02)
            stats = await store.stats()
            assert (stats["purged"], stats["entries"], stats["tombstones"]) == (1, 0, 1)
        finally:
            await store.close()

    run(scenario())


def test_closed_store_raises_store_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await open_store(tmp_path / "c.sqlite3")
        await store.close()
        with pytest.raises(StoreError, match="closed"):
            await store.get("0" * 24)

    run(scenario())


def test_nothing_runs_on_the_event_loop_thread(tmp_path: Path) -> None:
    """Every statement runs on the store's own thread (the documented threading decision)."""
    import threading

    seen: set[str] = set()

    def clock() -> float:
        seen.add(threading.current_thread().name)
        return 1_800_000_000.0

    async def scenario() -> None:
        store = await SqliteStore.open(
            tmp_path / "c.sqlite3", ttl=60.0, max_bytes=1 << 20, clock=clock
        )
        try:
            await store.get(await store.put(b"x"))
            await store.purge()
        finally:
            await store.close()

    run(scenario())
    assert seen and all(name.startswith("ccr-sqlite") for name in seen)


def _rows_in_main_file(path: Path, tmp: Path) -> int:
    """Rows readable from the database file alone, as if the WAL were lost."""
    copy = tmp / "main-file-only.sqlite3"
    copy.write_bytes(path.read_bytes())
    with sqlite3.connect(copy) as db:
        try:
            return int(db.execute("SELECT count(*) FROM ccr_meta").fetchone()[0])
        except sqlite3.OperationalError:  # not even the schema has been checkpointed yet
            return 0


def test_background_checkpoint_moves_writes_into_the_main_file(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"

    async def scenario() -> int:
        store = await open_store(path)
        try:
            await store.put_many([os.urandom(2000) for _ in range(20)])
            for _ in range(100):  # the checkpoint tick is 0.2 s
                if _rows_in_main_file(path, tmp_path) == 20:
                    break
                await asyncio.sleep(0.05)
            return _rows_in_main_file(path, tmp_path)
        finally:
            await store.close()

    assert run(scenario()) == 20


def test_another_process_holding_the_lock(tmp_path: Path) -> None:
    """A writer blocked past busy_timeout fails cleanly; reads keep being served."""
    path = tmp_path / "c.sqlite3"
    clock = FakeClock()

    async def scenario() -> None:
        store = await open_store(path, clock, ttl=3600.0, busy_timeout=0.2)
        try:
            key = await store.put(b"readable while locked")
            clock.advance(600)  # so the next read wants to refresh the TTL (a write)
            other = sqlite3.connect(path, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            try:
                with pytest.raises(StoreError, match="database is locked"):
                    await store.put(b"must wait for the lock")
                got = await store.get(key)
                assert isinstance(got, Entry) and got.original == b"readable while locked"
            finally:
                other.execute("ROLLBACK")
                other.close()
            assert isinstance(await store.get(await store.put(b"after")), Entry)
        finally:
            await store.close()

    run(scenario())
