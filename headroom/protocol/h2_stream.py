"""One HTTP/2 request/response as the exchange sees it (``H2Stream``), and the seams of
the HTTP/2 session: the connection it runs on (``H2Carrier``), the server above it
(``H2Host``) and what a stream asks of its session (``StreamSession``).

``H2Stream`` speaks the same small surface as the HTTP/1.1 connection (send_head,
send_body, send_end, block_reading, finish, abort), so the exchange layer serves both
without knowing which one carried the request.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol, cast

import h2.connection
import h2.errors

from headroom.protocol.events import ExchangeHandler, RequestHead
from headroom.protocol.writes import CONNECTION_SPECIFIC, QueuedStream


class H2Host(Protocol):
    """What an HTTP/2 session needs from the server above it."""

    h2_max_streams: int

    def new_exchange(self, stream: H2Stream, head: RequestHead) -> ExchangeHandler: ...

    def log_h2_error(self, conn: H2Carrier, reason: str) -> None: ...


class H2Carrier(Protocol):
    """The connection an HTTP/2 session runs on (``DownstreamConnection``)."""

    client_ip: str
    scheme: str
    loop: asyncio.AbstractEventLoop

    @property
    def host(self) -> H2Host: ...

    @property
    def closed(self) -> bool: ...

    def write_raw(self, data: bytes) -> None: ...

    def block_reading(self) -> None: ...

    def unblock_reading(self) -> None: ...

    def stream_opened(self) -> None: ...

    def stream_closed(self) -> None: ...

    def abort(self) -> None: ...

    def close(self) -> None: ...


class StreamSession(Protocol):
    """What a stream asks of its session (``H2Session``)."""

    conn: H2Carrier
    h2: h2.connection.H2Connection
    cork: int

    def call(self, method: Any, *args: Any) -> None: ...

    def write(self) -> None: ...

    def flush(self, stream: H2Stream) -> None: ...

    def acknowledge(self, stream: H2Stream, count: int) -> None: ...

    def reset(self, stream: H2Stream, code: int) -> None: ...

    def stream_done(self, stream: H2Stream) -> None: ...


class H2Stream(QueuedStream):
    """One request/response on an HTTP/2 connection, as the exchange sees it."""

    __slots__ = (
        "_blocked",
        "_exchange",
        "_paused",
        "_trailers",
        "_unacked",
        "head_sent",
        "must_close",
    )

    def __init__(self, session: StreamSession, stream_id: int) -> None:
        super().__init__(session, stream_id)
        self.must_close = False
        self.head_sent = False
        self._exchange: ExchangeHandler | None = None
        self._blocked = 0
        self._unacked = 0
        self._paused = False
        self._trailers: list[tuple[bytes, bytes]] = []  # request trailers, until the end

    @property
    def session(self) -> StreamSession:
        return cast(StreamSession, self.owner)

    @property
    def client_ip(self) -> str:
        return self.session.conn.client_ip

    @property
    def scheme(self) -> str:
        return self.session.conn.scheme

    @property
    def waiting_for_100_continue(self) -> bool:
        return False

    @property
    def exchange(self) -> ExchangeHandler | None:
        return self._exchange

    @property
    def busy(self) -> bool:
        return self._exchange is not None

    def send_continue(self) -> None:
        """HTTP/2 clients do not wait for 100-continue before sending DATA."""

    def send_head(
        self, status: int, headers: list[tuple[bytes, bytes]], reason: bytes = b""
    ) -> None:
        if self.closed:
            return
        fields = [(b":status", str(status).encode("ascii"))]
        for name, value in headers:
            lowered = name.lower()
            if lowered in CONNECTION_SPECIFIC:
                continue
            fields.append((lowered, value))
        self.head_sent = True
        self.session.call(self.session.h2.send_headers, self.stream_id, fields)

    def block_reading(self) -> None:
        self._blocked += 1

    def unblock_reading(self) -> None:
        if self._blocked:
            self._blocked -= 1
        if not self._blocked and self._unacked:
            count, self._unacked = self._unacked, 0
            self.session.acknowledge(self, count)

    def finish(self, exchange: ExchangeHandler) -> None:
        self._exchange = None
        self.session.stream_done(self)

    def abort(self) -> None:
        """Reset this stream only; the connection and its other streams carry on."""
        self._exchange = None
        self.session.reset(self, h2.errors.ErrorCodes.CANCEL)

    def close(self) -> None:
        self.abort()

    # ------------------------------------------------------------ session side

    @property
    def queued(self) -> int:
        return self.queue.size

    def set_paused(self, paused: bool) -> None:
        if paused != self._paused:
            self._paused = paused
            if self._exchange is not None:
                self._exchange.on_client_writable(not paused)
