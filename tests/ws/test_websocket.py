"""WebSocket through the proxy (HTTP/1.1 Upgrade), with the `websockets` library on both
ends: a real echo upstream and real clients, the proxy as a subprocess in between."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import websockets
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from tests.support.proxy_process import ProxyProcess

FLAGS = ("--ccr-backend", "memory", "--upstream-connect-timeout", "2s")


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))  # type: ignore[arg-type]


async def _echo(ws: ServerConnection) -> None:
    async for message in ws:
        if message == "close-me":
            await ws.close(4001, "server says bye")
            return
        await ws.send(message)


def _refuse(connection: ServerConnection, request: Request) -> Response | None:
    if request.path.startswith("/forbidden"):
        return connection.respond(403, "not for you\n")
    return None


async def _with_proxy(home: Path, body: Callable[[str, list[float]], Awaitable[None]]) -> None:
    closed_at: list[float] = []

    async def handler(ws: ServerConnection) -> None:
        try:
            await _echo(ws)
        finally:
            closed_at.append(time.monotonic())

    async with serve(
        handler, "127.0.0.1", 0, subprotocols=["chat", "v2"], process_request=_refuse
    ) as server:
        port = server.sockets[0].getsockname()[1]
        proxy = await asyncio.to_thread(
            ProxyProcess(
                ["--upstream", f"http://127.0.0.1:{port}", "--listen", "127.0.0.1:0", *FLAGS], home
            ).start
        )
        try:
            await body(f"ws://127.0.0.1:{proxy.port}", closed_at)
        finally:
            proxy.kill()


def test_messages_subprotocol_and_close_code_pass_through(tmp_path: Path) -> None:
    async def body(url: str, _: list[float]) -> None:
        async with websockets.connect(f"{url}/v1/responses", subprotocols=["v2"]) as ws:
            assert ws.subprotocol == "v2"  # the upstream's choice reached the client
            for i in range(5):
                await ws.send(f"hello-{i}")
                assert await ws.recv() == f"hello-{i}"
            blob = bytes(range(32)) * 2048
            await ws.send(blob)
            assert await ws.recv() == blob
            await ws.send("close-me")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "server says bye")

    run(_with_proxy(tmp_path, body))


def test_client_close_code_reaches_the_upstream_and_ends_it_fast(tmp_path: Path) -> None:
    async def body(url: str, closed_at: list[float]) -> None:
        ws = await websockets.connect(f"{url}/ws", subprotocols=["chat"])
        await ws.send("ping")
        assert await ws.recv() == "ping"
        left = time.monotonic()
        await ws.close(1000, "bye")
        assert ws.close_code == 1000
        for _ in range(50):
            if closed_at:
                break
            await asyncio.sleep(0.02)
        assert closed_at and closed_at[0] - left < 1.0

    run(_with_proxy(tmp_path, body))


def test_client_dropping_the_socket_ends_the_upstream_within_a_second(tmp_path: Path) -> None:
    async def body(url: str, closed_at: list[float]) -> None:
        ws = await websockets.connect(f"{url}/ws", subprotocols=["chat"])
        await ws.send("ping")
        await ws.recv()
        left = time.monotonic()
        ws.transport.abort()  # no close frame: the TCP connection just goes
        for _ in range(100):
            if closed_at:
                break
            await asyncio.sleep(0.02)
        assert closed_at and closed_at[0] - left < 1.0

    run(_with_proxy(tmp_path, body))


def test_refusal_is_relayed_with_status_and_body(tmp_path: Path) -> None:
    async def body(url: str, _: list[float]) -> None:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(f"{url}/forbidden")
        response = refused.value.response
        assert response.status_code == 403
        assert response.body == b"not for you\n"
        assert response.headers.get("x-request-id")

    run(_with_proxy(tmp_path, body))


def test_upstream_down_is_a_502_before_any_101(tmp_path: Path) -> None:
    proxy = ProxyProcess(
        ["--upstream", "http://127.0.0.1:1", "--listen", "127.0.0.1:0", *FLAGS], tmp_path
    ).start()
    try:

        async def attempt() -> None:
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(f"ws://127.0.0.1:{proxy.port}/ws")
            response = refused.value.response
            assert response.status_code == 502
            assert json.loads(response.body)["error"]["type"] == "upstream_connect_error"

        run(attempt())
    finally:
        proxy.kill()


def test_headers_of_the_handshake_are_forwarded(tmp_path: Path) -> None:
    seen: list[Headers] = []

    async def handler(ws: ServerConnection) -> None:
        seen.append(ws.request.headers)  # type: ignore[union-attr]
        await ws.close()

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            proxy = await asyncio.to_thread(
                ProxyProcess(
                    ["--upstream", f"http://127.0.0.1:{port}", "--listen", "127.0.0.1:0", *FLAGS],
                    tmp_path,
                ).start
            )
            try:
                async with websockets.connect(
                    f"ws://127.0.0.1:{proxy.port}/ws",
                    additional_headers={"Authorization": "Bearer k", "X-Headroom-Mode": "x"},
                ) as ws:
                    with pytest.raises(websockets.ConnectionClosed):
                        await ws.recv()
            finally:
                proxy.kill()

    run(main())
    headers = seen[0]
    assert headers["authorization"] == "Bearer k"
    assert "x-headroom-mode" not in headers
    assert headers["upgrade"].lower() == "websocket"
    assert "127.0.0.1" in headers["x-forwarded-for"]
