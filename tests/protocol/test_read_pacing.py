"""A connection reads at most its share of each loop turn: libuv reads a readable socket
up to 32 times per wakeup, so one fast uploader held the loop through all of it (30 uploads
of 21 MB made turns of up to 200 ms and a /healthz waited through several)."""

from __future__ import annotations

import asyncio
import socket
import threading

import uvloop

from headroom.protocol.limits import READ_PER_TURN
from headroom.protocol.reads import ReadPacer
from tests.protocol.memory import connect

HEAD = b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n"


def test_a_connection_pauses_when_its_share_is_read_and_goes_on_next_turn() -> None:
    conn, transport, host, loop = connect()
    try:
        conn.data_received(HEAD + b"x" * (READ_PER_TURN // 2))
        assert not transport.paused
        conn.data_received(b"x" * (READ_PER_TURN // 2))
        assert transport.paused  # the share is read: no more this turn
        loop.run_until_complete(asyncio.sleep(0))
        assert not transport.paused  # a new turn: reading goes on
        conn.data_received(b"x" * READ_PER_TURN)
        assert transport.paused and transport.pauses == 2
        host.exchanges[0].conn.block_reading()  # held back for another reason too
        loop.run_until_complete(asyncio.sleep(0))
        assert transport.paused  # the new turn does not override the other reason
    finally:
        loop.close()


class _Counting(asyncio.Protocol):
    """Counts bytes per loop turn (a call_soon tick ends each turn), paced or not."""

    def __init__(self, loop: asyncio.AbstractEventLoop, paced: bool) -> None:
        self.loop = loop
        self.turn_bytes = self.most = self.total = 0
        self.done: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.pacer = ReadPacer(self._resume, loop) if paced else None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.loop.call_soon(self._tick)

    def _tick(self) -> None:
        self.turn_bytes = 0
        if not self.done.done():
            self.loop.call_soon(self._tick)

    def _resume(self) -> None:
        assert self.transport is not None and self.pacer is not None
        self.pacer.apply(self.transport, held_back=False)

    def data_received(self, data: bytes) -> None:
        self.turn_bytes += len(data)
        self.total += len(data)
        self.most = max(self.most, self.turn_bytes)
        if self.pacer is not None and self.pacer.count(len(data)):
            assert self.transport is not None
            self.pacer.apply(self.transport, held_back=False)

    def eof_received(self) -> bool:
        if not self.done.done():
            self.done.set_result(None)
        return False


BUFFERED = 3 << 20  # what the client sends before the server even accepts
BUFFER = 8 << 20  # socket buffer sizes that hold it


def _most_read_in_one_turn(paced: bool) -> tuple[int, int]:
    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        proto = _Counting(loop, paced)
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)  # accepted inherit
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # the kernel accepts into the backlog before we serve
        server = await loop.create_server(lambda: proto, sock=listener, start_serving=False)
        sent = threading.Event()

        def send() -> None:
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
                sock.settimeout(10)
                sock.connect(listener.getsockname())
                sock.sendall(b"x" * BUFFERED)  # fits the buffers: returns before any read
                sent.set()
                sock.shutdown(socket.SHUT_WR)
                sock.recv(1)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        await asyncio.wait_for(loop.run_in_executor(None, sent.wait, 10), 15)
        await server.start_serving()  # the kernel accepted and buffered all of it
        await asyncio.wait_for(proto.done, 30)
        assert proto.transport is not None
        proto.transport.close()
        server.close()
        await server.wait_closed()
        sender.join(10)
        return proto.most, proto.total

    return uvloop.run(main())


def test_on_uvloop_one_turn_reads_at_most_about_one_share() -> None:
    most, total = _most_read_in_one_turn(paced=True)
    assert total == BUFFERED
    assert most <= 2 * READ_PER_TURN, most  # the share, plus the read that crossed it


def test_on_uvloop_an_unpaced_socket_is_read_many_times_per_turn() -> None:
    """What the pacing is for: without it, one turn reads all the socket holds."""
    most, total = _most_read_in_one_turn(paced=False)
    assert total == BUFFERED
    assert most > 4 * READ_PER_TURN, most
