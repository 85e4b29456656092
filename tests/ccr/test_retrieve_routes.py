"""``/v1/retrieve`` routes over real memory and SQLite stores: statuses, bodies, access."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path
from typing import Any

import orjson
import pytest

from headroom.ccr.memory import MemoryStore
from headroom.ccr.sqlite import SqliteStore
from headroom.ccr.store import CCRStore
from headroom.config import Config, load
from headroom.proxy.local import LocalRequest, LocalResponse
from headroom.proxy.retrieve import RetrieveRoutes
from tests.ccr.conftest import FakeClock, run

TOKEN = "s3cret-token"


def config(**changes: Any) -> Config:
    base = load(["--upstream", "http://127.0.0.1:9"], {})
    return dataclasses.replace(base, ccr_ttl=60.0, **changes)


def request(
    method: str,
    path: str,
    body: bytes = b"",
    client: str = "127.0.0.1",
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> LocalRequest:
    return LocalRequest(method, path, "", headers, body, client)


def body(response: LocalResponse) -> Any:
    assert response.content_type == b"application/json"
    return orjson.loads(response.body)


async def open_store(kind: str, tmp: Path, clock: FakeClock) -> CCRStore:
    if kind == "memory":
        return MemoryStore(ttl=60.0, max_entries=100, max_bytes=1 << 20, clock=clock)
    return await SqliteStore.open(tmp / "ccr.sqlite3", ttl=60.0, max_bytes=1 << 20, clock=clock)


@pytest.fixture(params=["memory", "sqlite"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_statuses(kind: str, tmp_path: Path) -> None:
    clock = FakeClock()

    async def scenario() -> None:
        store = await open_store(kind, tmp_path, clock)
        routes = RetrieveRoutes(store, config())
        try:
            text_key = await store.put("héllo wörld".encode())
            bin_key = await store.put(b"\x00\xff\xfe binary")
            old_key = await store.put(b"will expire")

            ok = await routes.handle(request("GET", f"/v1/retrieve/{text_key}"))
            assert ok.status == 200
            doc = body(ok)
            assert (doc["hash"], doc["original"], doc["encoding"]) == (
                text_key,
                "héllo wörld",
                "utf-8",
            )
            assert doc["size"] == len("héllo wörld".encode())
            assert doc["created_at"] == clock.now and doc["expires_at"] == clock.now + 60

            quoted = await routes.handle(request("GET", f"/v1/retrieve/hash%3D{text_key}"))
            assert quoted.status == 200 and body(quoted)["hash"] == text_key

            post = await routes.handle(
                request("POST", "/v1/retrieve", orjson.dumps({"hash": f" hash={bin_key.upper()}"}))
            )
            doc = body(post)
            assert post.status == 200 and doc["original"] is None
            assert base64.b64decode(doc["original_base64"]) == b"\x00\xff\xfe binary"

            clock.advance(120)
            await store.put(b"keeps the clock honest")
            gone = await routes.handle(request("GET", f"/v1/retrieve/{old_key}"))
            assert gone.status == 410 and body(gone)["error"]["type"] == "expired"

            missing = await routes.handle(request("GET", "/v1/retrieve/" + "ab" * 12))
            assert missing.status == 404 and body(missing)["error"]["type"] == "not_found"

            for bad in (
                request("GET", "/v1/retrieve/abc123"),
                request("POST", "/v1/retrieve", b'{"hash": 42}'),
                request("POST", "/v1/retrieve", b"not json"),
                request("POST", "/v1/retrieve", b'["' + text_key.encode() + b'"]'),
            ):
                response = await routes.handle(bad)
                assert response.status == 400, bad
                assert body(response)["error"]["type"] == "invalid_request"

            assert routes.counters["retrievals_ok"] == 3
            assert routes.counters["retrievals_expired"] == 1
            assert routes.counters["retrievals_not_found"] == 1
            assert routes.counters["bad_requests"] == 4
        finally:
            await store.close()

    run(scenario())


def test_other_methods_get_405_with_allow(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await open_store("memory", tmp_path, FakeClock())
        routes = RetrieveRoutes(store, config())
        cases = [
            ("GET", "/v1/retrieve", b"POST"),
            ("DELETE", "/v1/retrieve/" + "ab" * 12, b"GET"),
            ("POST", "/v1/retrieve/stats", b"GET"),
        ]
        for method, path, allow in cases:
            response = await routes.handle(request(method, path))
            assert response.status == 405
            assert (b"allow", allow) in response.headers

    run(scenario())


def test_handles_only_its_own_paths(tmp_path: Path) -> None:
    routes = RetrieveRoutes(MemoryStore(ttl=1, max_entries=1, max_bytes=1), config())
    assert routes.handles("/v1/retrieve")
    assert routes.handles("/v1/retrieve/stats")
    assert routes.handles("/v1/retrieve/" + "ab" * 12)
    assert not routes.handles("/v1/retrieved")
    assert not routes.handles("/v1/messages")

    async def scenario() -> None:
        nested = await routes.handle(request("GET", "/v1/retrieve/a/b"))
        assert nested.status == 404

    run(scenario())


def test_stats_route(kind: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await open_store(kind, tmp_path, FakeClock())
        routes = RetrieveRoutes(store, config())
        try:
            key = await store.put(b"for stats")
            await routes.handle(request("GET", f"/v1/retrieve/{key}"))
            response = await routes.handle(request("GET", "/v1/retrieve/stats"))
            doc = body(response)
            assert response.status == 200
            assert doc["store"]["backend"] == kind and doc["store"]["entries"] == 1
            assert doc["retrieve"]["retrievals_ok"] == 1
        finally:
            await store.close()

    run(scenario())


def test_remote_clients_see_nothing_by_default(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await open_store("memory", tmp_path, FakeClock())
        key = await store.put(b"private")
        routes = RetrieveRoutes(store, config(proxy_token=TOKEN))
        auth = ((b"authorization", f"Bearer {TOKEN}".encode()),)
        for client in ("10.0.0.5", "192.168.1.20", "2001:db8::1"):
            for req in (
                request("GET", f"/v1/retrieve/{key}", client=client, headers=auth),
                request("GET", "/v1/retrieve/stats", client=client),
                request("POST", "/v1/retrieve", b"{}", client=client),
            ):
                response = await routes.handle(req)
                assert response.status == 404
                assert body(response) == {"error": {"type": "not_found", "message": "not found"}}
        for client in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
            response = await routes.handle(request("GET", f"/v1/retrieve/{key}", client=client))
            assert response.status == 200
        assert routes.counters["denied"] == 9

    run(scenario())


def test_remote_clients_need_the_token_when_allowed(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await open_store("memory", tmp_path, FakeClock())
        key = await store.put(b"shared with the private network")
        routes = RetrieveRoutes(store, config(ccr_allow_remote=True, proxy_token=TOKEN))
        path = f"/v1/retrieve/{key}"
        good = [
            ((b"authorization", f"Bearer {TOKEN}".encode()),),
            ((b"authorization", f"bearer {TOKEN}".encode()),),
            ((b"x-headroom-proxy-token", TOKEN.encode()),),
        ]
        bad = [
            (),
            ((b"authorization", b"Bearer wrong"),),
            ((b"authorization", f"Basic {TOKEN}".encode()),),
            ((b"authorization", f"Bearer {TOKEN}x".encode()),),
        ]
        for headers in good:
            response = await routes.handle(request("GET", path, client="10.1.2.3", headers=headers))
            assert response.status == 200, headers
        for headers in bad:
            response = await routes.handle(request("GET", path, client="10.1.2.3", headers=headers))
            assert response.status == 401, headers
            assert body(response)["error"]["type"] == "unauthorized"
        local = await routes.handle(request("GET", path))
        assert local.status == 200  # loopback needs no token

    run(scenario())


def test_store_failure_is_a_503_with_the_reason(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await open_store("sqlite", tmp_path, FakeClock())
        routes = RetrieveRoutes(store, config())
        await store.close()
        for req in (
            request("GET", "/v1/retrieve/" + "ab" * 12),
            request("GET", "/v1/retrieve/stats"),
        ):
            response = await routes.handle(req)
            assert response.status == 503
            error = body(response)["error"]
            assert error["type"] == "store_unavailable"
            assert error["message"].startswith("ccr sqlite: ")
        assert routes.counters["store_errors"] == 2

    run(scenario())
