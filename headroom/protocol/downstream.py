"""The client side of the proxy: one ``asyncio.Protocol`` per accepted connection.

It owns the transport, the HTTP/1.1 adapter, one timer and the read/write flow flags, and
hands stream events to an ``ExchangeHandler`` made per request by the layer above. It never
interprets a request: routing, headers and upstream work belong to the exchange.

The single timer plays whichever role the connection's phase needs: header deadline while a
request head is arriving (slowloris), keep-alive expiry while idle. During an exchange the
exchange owns timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, cast

from headroom.protocol.events import (
    Body,
    EndBody,
    Event,
    ExchangeHandler,
    ProtocolError,
    RequestHead,
    to_exchange,
)
from headroom.protocol.h1 import H1Server, Reset
from headroom.protocol.h2_server import PREFACE, H2Session
from headroom.protocol.h2_stream import H2Host, H2Stream
from headroom.protocol.limits import HIGH_WATER, LOW_WATER, MAX_HEAD_BYTES
from headroom.protocol.reads import ReadPacer
from headroom.protocol.writes import CorkedWriter

# How long a keep-alive connection may stay idle once the drain began (see ``finish``).
DRAIN_IDLE_GRACE = 0.5


class ConnectionHost(H2Host, Protocol):
    """What a connection needs from the server that accepted it (HTTP/2 needs more)."""

    draining: bool
    header_timeout: float
    keepalive_timeout: float

    def connection_made(self, conn: DownstreamConnection) -> None: ...

    def new_exchange(
        self, conn: DownstreamConnection | H2Stream, head: RequestHead
    ) -> ExchangeHandler: ...

    def protocol_error(self, conn: DownstreamConnection, error: ProtocolError) -> None: ...

    def connection_closed(self, conn: DownstreamConnection) -> None: ...


class DownstreamConnection(CorkedWriter, asyncio.Protocol):
    __slots__ = (
        "_backlog",
        "_closed",
        "_exchange",
        "_h1",
        "_h2",
        "_held",
        "_pacer",
        "_reading_blocked",
        "_sniffing",
        "_streams",
        "_timer",
        "_tunnel",
        "client_ip",
        "host",
        "loop",
        "must_close",
        "scheme",
        "transport",
        "write_paused",
    )

    def __init__(self, host: ConnectionHost, loop: asyncio.AbstractEventLoop) -> None:
        self.host = host
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.client_ip = ""
        self.scheme = "http"  # what X-Forwarded-Proto says: "https" on a TLS listener
        self._h1 = H1Server()
        self._exchange: ExchangeHandler | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._reading_blocked = 0  # reasons to stay paused (exchange backpressure, pipelining)
        self._pacer = ReadPacer(self._set_reading, loop)
        self.write_paused = False
        self.must_close = False  # answer the current request with Connection: close
        self._closed = False
        super().__init__()
        self._held = b""  # pipelined bytes that arrived while an answer was pending
        self._backlog = 0  # pipelined bytes h11 holds unparsed (measured once per cycle)
        self._tunnel: Callable[[bytes], None] | None = None  # after an upgrade: raw bytes
        self._h2: H2Session | None = None
        self._sniffing = True  # the first bytes decide between HTTP/1.1 and h2c
        self._streams = 0  # open HTTP/2 streams

    # ------------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one
        self.transport = cast(asyncio.Transport, transport)
        if self._closed or self.host.draining:
            # Accepted just before the drain began (or closed by it before the transport
            # existed): nothing was asked yet, so nothing is lost by closing now.
            self._closed = True
            transport.close()
            self.host.connection_closed(self)
            return
        self.transport.set_write_buffer_limits(high=HIGH_WATER, low=LOW_WATER)
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if peer else ""
        self.host.connection_made(self)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.scheme = "https"
            self._sniffing = False  # over TLS, ALPN alone decides the protocol
            if ssl_object.selected_alpn_protocol() == "h2":
                self.start_h2()
                return
        self._arm(self.host.header_timeout)

    def data_received(self, data: bytes) -> None:
        if self._pacer.count(len(data)):
            self._set_reading()
        if self._h2 is not None:
            self._h2.receive(data)
            return
        if self._tunnel is not None:
            self._tunnel(data)
            return
        if self._sniffing:
            data = self._sniff(data)
            if not data:
                return
        if self._exchange is not None and self._h1.request_done:
            # Pipelined bytes while the answer is pending: hold them here instead of
            # pausing reads, so a client that leaves is still noticed at once.
            self._held += data
            self._set_reading()
            return
        try:
            events = self._h1.receive(data)
        except Reset:
            self._lost()
            return
        self._dispatch(events)

    def _sniff(self, data: bytes) -> bytes:
        """First bytes of a connection: the HTTP/2 preface means prior-knowledge h2c on this
        same port; anything else is HTTP/1.1. Returns what is left for HTTP/1.1."""
        data = self._held + data
        self._held = b""
        if PREFACE.startswith(data[: len(PREFACE)]):
            if len(data) < len(PREFACE):
                self._held = data  # wait for the whole preface
                return b""
            self.start_h2()
            assert self._h2 is not None
            self._h2.receive(data)
            return b""
        self._sniffing = False
        return data

    def start_h2(self) -> None:
        """Speak HTTP/2 on this connection (preface seen, or ALPN chose h2)."""
        self._sniffing = False
        self._h2 = H2Session(self)
        self._h2.write()
        self._arm(self.host.keepalive_timeout)

    def stream_opened(self) -> None:
        self._streams += 1
        self._cancel_timer()

    def stream_closed(self) -> None:
        self._streams -= 1
        if self._streams <= 0 and not self._closed:
            self._streams = 0
            self._arm(self.host.keepalive_timeout)

    def eof_received(self) -> bool:
        self._lost()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost()

    def pause_writing(self) -> None:
        self.write_paused = True
        if self._h2 is not None:
            self._h2.transport_writable(False)
        if self._exchange is not None:
            self._exchange.on_client_writable(False)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._h2 is not None:
            self._h2.transport_writable(True)
        if self._exchange is not None:
            self._exchange.on_client_writable(True)

    # ------------------------------------------------------------------ events

    def _dispatch(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Body | EndBody):
                if self._exchange is not None:
                    to_exchange(self._exchange, event)
            elif isinstance(event, RequestHead):
                self._cancel_timer()
                self.must_close = self.host.draining or _wants_close(event)
                self._exchange = self.host.new_exchange(self, event)
            elif isinstance(event, ProtocolError):
                self.host.protocol_error(self, event)
                return

    def _lost(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._cancel_timer()
        exchange, self._exchange = self._exchange, None
        if exchange is not None:
            exchange.on_client_gone()
        if self._h2 is not None:
            self._h2.lost()
        if self.transport is not None:
            self.transport.abort()
        self.host.connection_closed(self)

    # ------------------------------------------------------------------ for the exchange

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def waiting_for_100_continue(self) -> bool:
        return self._h1.waiting_for_100_continue

    def send_continue(self) -> None:
        if not self._closed and self._h1.waiting_for_100_continue:
            self._write(self._h1.send_informational(100))

    def send_head(
        self, status: int, headers: list[tuple[bytes, bytes]], reason: bytes = b""
    ) -> None:
        self._write(self._h1.send_head(status, headers, reason))

    def send_body(self, data: bytes | bytearray) -> None:
        for part in self._h1.send_body(data):
            self._write(part)

    def send_end(self, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        self._write(self._h1.send_end(trailers))

    def finish(self, exchange: ExchangeHandler) -> None:
        """The exchange's response is complete: keep the connection alive or close it."""
        if self._exchange is not exchange or self._closed:
            return
        self._exchange = None
        if self.must_close or not self._h1.next_cycle():
            self.close()
            return
        self._reading_blocked = 0
        # Draining, a response that went out before the drain began did not say
        # Connection: close, so the client may already be sending its next request: give it
        # a moment (it is answered with Connection: close) instead of resetting it.
        self._arm(DRAIN_IDLE_GRACE if self.host.draining else self.host.keepalive_timeout)
        held, self._held = self._held, b""
        try:
            # A pipelined request may already be buffered in h11 or held here.
            events = self._h1.receive(held) if held else self._h1.events()
        except Reset:
            self._lost()
            return
        self._backlog = self._h1.unparsed
        self._set_reading()
        self._dispatch(events)

    def accept_upgrade(
        self, headers: list[tuple[bytes, bytes]], sink: Callable[[bytes], None]
    ) -> None:
        """Send 101 and turn the connection into a byte tunnel feeding ``sink``. Bytes the
        client sent after its handshake are handed over first, in order."""
        self._write(self._h1.accept_upgrade(headers))
        early = self._h1.trailing_data + self._held
        self._held = b""
        self._backlog = 0
        self._tunnel = sink
        if early:
            sink(early)
        self._reading_blocked = 0
        self._set_reading()

    def write_raw(self, data: bytes) -> None:
        self._write(data)

    def close(self) -> None:
        """Close after flushing what was written."""
        if self._closed:
            return
        self._closed = True
        self._cancel_timer()
        self._exchange = None
        if self.transport is not None:
            self.transport.close()
        self.host.connection_closed(self)

    def abort(self) -> None:
        """Drop the connection at once (RST): the response in flight must look incomplete."""
        if self._closed:
            if self.transport is not None:
                self.transport.abort()  # a close still flushing: cut it now
            return
        self._exchange = None
        self._lost()

    def shutdown(self) -> None:
        """Drain: close now if idle, else answer the current request with Connection: close.
        HTTP/2: refuse new streams, let open ones finish, then GOAWAY."""
        if self._h2 is not None:
            self._h2.shutdown()
            return
        if self._exchange is None:
            self.close()
        elif not getattr(self._exchange, "response_started", False):
            self.must_close = True  # its head has not gone out: it can still say close

    @property
    def busy(self) -> bool:
        return self._exchange is not None

    @property
    def exchange(self) -> ExchangeHandler | None:
        return self._exchange

    def block_reading(self) -> None:
        self._reading_blocked += 1
        self._set_reading()

    def unblock_reading(self) -> None:
        if self._reading_blocked > 0:
            self._reading_blocked -= 1
        self._set_reading()

    # ------------------------------------------------------------------ internals

    def _set_reading(self) -> None:
        """Read while nothing holds the client back. Pipelined bytes count as a reason
        once more than a head's worth waits (h11's unparsed buffer plus what is held
        here): each answer consumes one request, so without this bound a client that
        pipelines faster than it is answered grows the buffer without limit. So does a
        used-up share of this loop turn's reads (``reads.py``), until the next turn."""
        transport = self.transport
        if transport is None or self._closed:
            return
        held = self._reading_blocked > 0 or self._backlog + len(self._held) > MAX_HEAD_BYTES
        self._pacer.apply(transport, held)

    def _writable(self) -> bool:
        return not self._closed and self.transport is not None

    def _arm(self, delay: float) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(delay, self._expire)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self._h2 is not None:
            if not self._streams:
                self._h2.idle_expired()
            return
        if self._exchange is None:
            # Header deadline or keep-alive expiry; nothing is lost either way.
            self.close()


def _wants_close(head: RequestHead) -> bool:
    if head.http_version == b"1.0":
        return True
    return any(n == b"connection" and b"close" in v.lower() for n, v in head.headers)
