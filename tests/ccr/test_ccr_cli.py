"""``headroom-proxy ccr get HASH`` / ``ccr stats`` on real stores: a SQLite file the proxy
wrote, and a real ``redis-server``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from headroom.ccr.markers import content_key
from headroom.ccr.redis_store import RedisStore
from headroom.ccr.sqlite import SqliteStore
from tests.ccr.conftest import run
from tests.support.redis_server import RedisServer

ORIGINAL = "line 1\r\n\ttab \u2192 caf\u00e9\n".encode() * 50  # exact bytes, CRLF and UTF-8


def _ccr(*args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADROOM_PROXY_")}
    return subprocess.run(
        [sys.executable, "-m", "headroom.cli", "ccr", *args],
        capture_output=True, timeout=60, env=env,
    )  # fmt: skip


def _sqlite_with(path: Path, data: bytes) -> str:
    async def put() -> str:
        store = await SqliteStore.open(path, ttl=3600, max_bytes=1 << 30, maintain=False)
        try:
            return await store.put(data)
        finally:
            await store.close()

    return run(put())


def test_get_returns_the_exact_bytes_from_the_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "ccr.sqlite3"
    key = _sqlite_with(path, ORIGINAL)
    got = _ccr("get", key, "--ccr-path", str(path))
    assert got.returncode == 0, got.stderr
    assert got.stdout == ORIGINAL
    shown = _ccr("get", f"hash={key.upper()}", "--ccr-path", str(path))  # as a model writes it
    assert shown.stdout == ORIGINAL
    stats = _ccr("stats", "--ccr-path", str(path))
    assert stats.returncode == 0 and json.loads(stats.stdout)["entries"] == 1


def test_what_is_not_stored_is_exit_1_and_bad_input_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "ccr.sqlite3"
    _sqlite_with(path, ORIGINAL)
    other = content_key(b"never stored")
    missing = _ccr("get", other, "--ccr-path", str(path))
    assert missing.returncode == 1 and missing.stdout == b""
    assert missing.stderr.decode() == f"headroom-proxy ccr: {other}: not found\n"
    assert _ccr("get", "nothex", "--ccr-path", str(path)).returncode == 2
    assert _ccr("frob").returncode == 2
    absent = tmp_path / "none.sqlite3"
    gone = _ccr("stats", "--ccr-path", str(absent))
    assert gone.returncode == 1 and b"no store at" in gone.stderr
    assert not absent.exists(), "a read never creates a store"


def test_get_reads_a_redis_store(redis_server: RedisServer) -> None:
    prefix = f"t-{uuid.uuid4().hex[:8]}:"

    async def put() -> str:
        store = await RedisStore.open(redis_server.url, prefix=prefix, ttl=3600)
        try:
            return await store.put(ORIGINAL)
        finally:
            await store.close()

    key = run(put())
    flags = ("--ccr-backend", "redis", "--ccr-redis-url", redis_server.url)
    got = _ccr("get", key, *flags, "--ccr-redis-prefix", prefix)
    assert got.returncode == 0, got.stderr
    assert got.stdout == ORIGINAL


def test_learned_lists_what_retrievals_taught_and_reset_clears_it(tmp_path: Path) -> None:
    from headroom.learning.learner import Learner, Seen
    from headroom.learning.sqlite_backend import SqliteBackend

    path = tmp_path / "ccr.sqlite3"
    _sqlite_with(path, ORIGINAL)

    async def teach() -> None:
        learner = Learner(await SqliteBackend.open(path), ttl=3600)
        try:
            for i in range(3):
                key = f"{i:024x}"
                await learner.record_compressed([Seen("Bash", "", "log", 900, 100, (key,), ())], {})
                await learner.record_retrieval(key, 900, 300)
        finally:
            await learner.backend.close()

    run(teach())
    shown = _ccr("learned", "--ccr-path", str(path))
    assert shown.returncode == 0, shown.stderr
    [row] = json.loads(shown.stdout)
    assert (row["tool"], row["kind"], row["decision"]) == ("Bash", "log", "lossless")
    assert row["why"].startswith("lossless: 3.0 retrievals of 3.0 compressed outputs cost 3,600")
    cleared = _ccr("learned", "--reset", "--ccr-path", str(path))
    assert cleared.returncode == 0 and b"cleared" in cleared.stderr
    assert json.loads(_ccr("learned", "--ccr-path", str(path)).stdout) == []
    assert _ccr("learned", "--ccr-path", str(tmp_path / "none.db")).returncode == 1
