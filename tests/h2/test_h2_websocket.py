"""WebSocket over HTTP/2 (RFC 8441) bridged to an HTTP/1.1 WebSocket upstream."""

from __future__ import annotations

import asyncio
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage

from tests.h2.rfc8441 import H2WebSocket
from tests.support.proxy_process import ProxyProcess


async def _echo(ws: ServerConnection) -> None:
    async for message in ws:
        if message == "close-me":
            await ws.close(4001, "server says bye")
            return
        await ws.send(message)


@pytest.fixture(scope="module")
def ws_upstream() -> Iterator[int]:
    ready = threading.Event()
    stop: list[asyncio.Event] = []
    port: list[int] = []

    async def main() -> None:
        done = asyncio.Event()
        stop.append(done)
        async with serve(
            _echo, "127.0.0.1", 0, subprotocols=["chat"], max_size=32 * 1024 * 1024
        ) as server:
            port.append(server.sockets[0].getsockname()[1])
            ready.set()
            await done.wait()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield port[0]
    loop.call_soon_threadsafe(stop[0].set)
    thread.join(5)


@pytest.fixture(scope="module")
def proxy(ws_upstream: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    proc = ProxyProcess(
        [
            "--upstream",
            f"http://127.0.0.1:{ws_upstream}",
            "--listen",
            "127.0.0.1:0",
            "--ccr-backend",
            "memory",
        ],
        tmp_path_factory.mktemp("h2ws"),
    ).start()
    yield proc
    proc.kill()


def test_messages_ping_and_subprotocol(proxy: ProxyProcess) -> None:
    ws = H2WebSocket(proxy.port, protocols="chat")
    try:
        assert ws.response is not None and ws.response[b":status"] == b"200"
        assert ws.response[b"sec-websocket-protocol"] == b"chat"
        ws.send(TextMessage(data="hello"))
        assert ws.recv() == TextMessage(data="hello")
        ws.send(BytesMessage(data=b"\x00\x01" * 5000))
        got = ws.recv()
        assert isinstance(got, BytesMessage) and got.data == b"\x00\x01" * 5000
        ws.send(Ping(payload=b"p1"))
        assert ws.recv() == Pong(payload=b"p1")
    finally:
        ws.close()


def test_close_code_and_reason_pass_through(proxy: ProxyProcess) -> None:
    ws = H2WebSocket(proxy.port, protocols="chat")
    try:
        ws.send(TextMessage(data="close-me"))
        closed = ws.recv()
        assert isinstance(closed, CloseConnection)
        assert (closed.code, closed.reason) == (4001, "server says bye")
    finally:
        ws.close()


def test_deflate_bomb_is_closed_with_1009(proxy: ProxyProcess) -> None:
    ws = H2WebSocket(proxy.port, protocols="chat", extensions="permessage-deflate")
    try:
        assert ws.response is not None
        assert b"permessage-deflate" in ws.response.get(b"sec-websocket-extensions", b"")
        # 40 MiB of zeros deflate to ~40 KiB; send it as one compressed frame, by hand.
        deflater = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        payload = deflater.compress(b"\x00" * (40 << 20)) + deflater.flush(zlib.Z_SYNC_FLUSH)
        payload = payload[:-4]  # permessage-deflate drops the 00 00 ff ff tail
        frame = bytearray([0xC2])  # FIN, RSV1 (compressed), binary
        mask = b"\x01\x02\x03\x04"
        if len(payload) < 65536:
            frame += bytes([0x80 | 126]) + len(payload).to_bytes(2, "big") + mask
        else:
            frame += bytes([0x80 | 127]) + len(payload).to_bytes(8, "big") + mask
        frame += bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        for i in range(0, len(frame), 16384):  # within h2's frame size
            ws.h2.send_data(1, bytes(frame[i : i + 16384]))
            ws._flush()
        closed = ws.recv(timeout=10)
        assert isinstance(closed, CloseConnection) and closed.code == 1009
    finally:
        ws.close()


def test_plain_connect_is_refused(proxy: ProxyProcess, tmp_path: Path) -> None:
    import h2.config
    import h2.connection
    import h2.events

    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    import socket

    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    sock.sendall(client.data_to_send())
    client.send_headers(1, [(":method", "CONNECT"), (":authority", "example.com:443")])
    sock.sendall(client.data_to_send())
    reset = None
    for _ in range(20):
        for event in client.receive_data(sock.recv(65536)):
            if isinstance(event, h2.events.StreamReset):
                reset = event
        sock.sendall(client.data_to_send())
        if reset is not None:
            break
    sock.close()
    assert reset is not None
