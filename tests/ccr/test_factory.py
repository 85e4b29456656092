"""``from_config``: the right backend, open and checked, or one line naming backend and cause."""

from __future__ import annotations

from pathlib import Path

import pytest

from headroom.ccr.factory import from_config
from headroom.ccr.memory import MemoryStore
from headroom.ccr.redis_store import RedisStore
from headroom.ccr.sqlite import SqliteStore
from headroom.ccr.store import Entry, StoreError
from headroom.config import Config, load
from tests.ccr.conftest import run
from tests.support.redis_server import RedisServer, _free_port


def config(*flags: str) -> Config:
    return load(["--upstream", "http://127.0.0.1:9", *flags], {})


def test_default_backend_is_sqlite_at_the_configured_path(tmp_path: Path) -> None:
    path = tmp_path / "state" / "ccr.sqlite3"

    async def scenario() -> None:
        store = await from_config(config("--ccr-path", str(path), "--ccr-ttl", "2h"))
        try:
            assert isinstance(store, SqliteStore) and store.ttl == 7200.0
            key = await store.put(b"default backend")
            assert isinstance(await store.get(key), Entry)
        finally:
            await store.close()

    run(scenario())
    assert path.exists()


def test_memory_backend_takes_its_caps_from_config() -> None:
    async def scenario() -> None:
        store = await from_config(
            config("--ccr-backend", "memory", "--ccr-max-entries", "7", "--ccr-max-bytes", "1KB")
        )
        assert isinstance(store, MemoryStore)
        assert (store.max_entries, store.max_bytes) == (7, 1000)
        await store.close()

    run(scenario())


def test_redis_backend(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        store = await from_config(
            config(
                "--ccr-backend",
                "redis",
                "--ccr-redis-url",
                redis_server.url,
                "--ccr-redis-prefix",
                "factory-test:",
            )
        )
        try:
            assert isinstance(store, RedisStore) and store.prefix == "factory-test:"
            assert isinstance(await store.get(await store.put(b"via redis")), Entry)
        finally:
            await store.close()

    run(scenario())


def _startup_error(cfg: Config) -> str:
    async def scenario() -> str:
        with pytest.raises(StoreError) as info:
            await from_config(cfg)
        return str(info.value)

    message = run(scenario())
    assert "\n" not in message
    return message


def test_unwritable_path_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    message = _startup_error(config("--ccr-path", str(tmp_path / "file" / "ccr.sqlite3")))
    assert message.startswith("ccr sqlite: ") and "Not a directory" in message


def test_corrupt_database_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "ccr.sqlite3"
    path.write_bytes(b"\x00garbage" * 1000)
    message = _startup_error(config("--ccr-path", str(path)))
    assert message.startswith("ccr sqlite: ") and "not a database" in message


def test_bad_redis_url_is_one_line() -> None:
    cfg = config("--ccr-backend", "redis", "--ccr-redis-url", "redis://127.0.0.1:99999999/0")
    assert _startup_error(cfg).startswith("ccr redis: bad URL")


def test_unreachable_redis_is_one_line() -> None:
    url = f"redis://127.0.0.1:{_free_port()}/0"
    message = _startup_error(config("--ccr-backend", "redis", "--ccr-redis-url", url))
    assert message.startswith("ccr redis: cannot reach server at " + url)
