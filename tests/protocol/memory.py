"""An in-memory host and transport for the connection layer: bytes in, writes and read
pauses recorded, no sockets and no event loop running. Exchanges are recorded handlers the
test finishes when it chooses, so pipelining and backpressure can be scripted exactly."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from headroom.protocol.downstream import DownstreamConnection
from headroom.protocol.events import ProtocolError, RequestHead


@dataclass
class MemoryTransport:
    written: list[bytes] = field(default_factory=list)
    paused: bool = False
    pauses: int = 0
    closed: bool = False
    aborted: bool = False
    extra: dict[str, Any] = field(default_factory=lambda: {"peername": ("127.0.0.1", 5)})

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def pause_reading(self) -> None:
        assert not self.paused
        self.paused = True
        self.pauses += 1

    def resume_reading(self) -> None:
        assert self.paused
        self.paused = False

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True


@dataclass
class RecordedExchange:
    conn: Any
    head: RequestHead
    body: list[bytes] = field(default_factory=list)
    ended: bool = False
    gone: bool = False
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def on_body(self, data: bytes) -> None:
        self.body.append(data)

    def on_end(self, trailers: list[tuple[bytes, bytes]]) -> None:
        self.ended = True
        self.trailers = trailers

    def on_client_gone(self) -> None:
        self.gone = True

    def on_client_writable(self, writable: bool) -> None:
        pass

    def on_protocol_error(self, status: int, error_type: str, message: str) -> None:
        pass

    def answer(self, status: int = 200, body: bytes = b"ok") -> None:
        self.conn.send_head(status, [(b"content-length", str(len(body)).encode())])
        self.conn.send_body(body)
        self.conn.send_end()
        self.conn.finish(self)


@dataclass
class MemoryHost:
    draining: bool = False
    header_timeout: float = 10.0
    keepalive_timeout: float = 60.0
    h2_max_streams: int = 100
    exchanges: list[RecordedExchange] = field(default_factory=list)
    errors: list[ProtocolError] = field(default_factory=list)

    def connection_made(self, conn: Any) -> None:
        pass

    def new_exchange(self, conn: Any, head: RequestHead) -> RecordedExchange:
        exchange = RecordedExchange(conn, head)
        self.exchanges.append(exchange)
        return exchange

    def protocol_error(self, conn: Any, error: ProtocolError) -> None:
        self.errors.append(error)
        conn.close()

    def connection_closed(self, conn: Any) -> None:
        pass

    def log_h2_error(self, conn: Any, reason: str) -> None:
        self.errors.append(ProtocolError(0, reason))


def connect(
    host: MemoryHost | None = None,
) -> tuple[DownstreamConnection, MemoryTransport, MemoryHost, asyncio.AbstractEventLoop]:
    """A connection made on a fresh (never run) loop: timers are scheduled, not fired."""
    host = host or MemoryHost()
    loop = asyncio.new_event_loop()
    conn = DownstreamConnection(host, loop)  # type: ignore[arg-type]
    transport = MemoryTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport, host, loop
