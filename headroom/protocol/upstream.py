"""The upstream side: one ``asyncio.Protocol`` per connection to the origin.

A connection serves one exchange at a time and goes back to the pool only after both the
request and the response ended cleanly; anything else (a reset, a protocol error, a client
that left mid-exchange) closes it. Events go to a ``ResponseHandler`` the exchange sets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

from headroom.protocol.events import Event, ResponseHandler, to_response_handler
from headroom.protocol.h1 import H1Client, Reset
from headroom.protocol.limits import HIGH_WATER, LOW_WATER
from headroom.protocol.reads import ReadPacer
from headroom.protocol.writes import CorkedWriter


class UpstreamConnection(CorkedWriter, asyncio.Protocol):
    __slots__ = (
        "_h1",
        "_held_back",
        "_pacer",
        "_tunnel",
        "closed",
        "handler",
        "idle_timer",
        "transport",
        "write_paused",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._h1 = H1Client()
        self.handler: ResponseHandler | None = None
        self.closed = False
        self.write_paused = False
        self._held_back = False  # the exchange's backpressure (``set_reading``)
        self._pacer = ReadPacer(self._apply_reading)
        self.idle_timer: asyncio.TimerHandle | None = None
        super().__init__()
        self._tunnel: Callable[[bytes], None] | None = None

    # ------------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=HIGH_WATER, low=LOW_WATER)

    def data_received(self, data: bytes) -> None:
        if self._pacer.count(len(data)):
            self._apply_reading()
        if self._tunnel is not None:
            self._tunnel(data)
            return
        handler = self.handler
        if handler is None:
            # Bytes from an idle pooled connection belong to no request: keeping them would
            # hand them to the next exchange as its response (a desync). Drop the socket.
            self._fail("upstream sent bytes with no request outstanding")
            return
        try:
            events = self._h1.receive(data)
        except Reset as exc:
            self._fail(str(exc))
            return
        handler.on_response_batch(True)
        try:
            self._dispatch(handler, events)
        finally:
            handler.on_response_batch(False)

    def _dispatch(self, handler: ResponseHandler, events: list[Event]) -> None:
        for event in events:
            error = to_response_handler(handler, event)
            if error is not None:
                self._fail(error.message)
                return

    def eof_received(self) -> bool:
        if self._tunnel is not None:
            self._fail("upstream closed the tunnel")
            return False
        try:
            events = self._h1.receive(b"")
        except Reset as exc:
            self._fail(str(exc))
            return False
        self.closed = True  # a close-delimited body ends here; nothing more can follow
        if self.handler is not None:
            self._dispatch(self.handler, events)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        was_closed = self.closed
        self.closed = True
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if not was_closed and self.handler is not None:
            self._fail(f"upstream connection lost: {exc}" if exc else "upstream closed")

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.handler is not None:
            self.handler.on_upstream_writable(False)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.handler is not None:
            self.handler.on_upstream_writable(True)

    # ------------------------------------------------------------------ for the exchange

    def send_head(self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self._write(self._h1.send_head(method, target, headers))

    def send_body(self, data: bytes | bytearray) -> None:
        for part in self._h1.send_body(data):
            self._write(part)

    def send_end(self, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        """Request trailers are dropped on HTTP/1.1 (as nginx does): a Content-Length body
        cannot carry them, and origins ignore them; only an HTTP/2 upstream gets them."""
        self._write(self._h1.send_end())

    @property
    def response_started(self) -> bool:
        return self._h1.response_started

    def start_tunnel(self, sink: Callable[[bytes], None]) -> None:
        """After a 101: raw bytes both ways; the upstream's early bytes go first."""
        early = self._h1.trailing_data
        self._tunnel = sink
        if early:
            sink(early)

    def write_raw(self, data: bytes) -> None:
        self._write(data)

    def release(self) -> bool:
        """Detach the exchange; True when the connection may serve another request."""
        self.handler = None
        self.set_reading(True)
        if self.closed or not self._h1.reusable():
            self.abort()
            return False
        return True

    def set_reading(self, on: bool) -> None:
        self._held_back = not on
        self._apply_reading()

    def _apply_reading(self) -> None:
        """Read unless the exchange holds the answer back or this turn's share of reads
        is used up (``reads.py``)."""
        transport = self.transport
        if transport is None or self.closed:
            return
        self._pacer.apply(transport, self._held_back)

    def close(self) -> None:
        """Close after flushing what was written (a tunnel's last frames)."""
        self.handler = None
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        """Cut the connection now (also a close that is still flushing)."""
        self.handler = None
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # ------------------------------------------------------------------ internals

    def _writable(self) -> bool:
        return not self.closed and self.transport is not None

    def _fail(self, message: str) -> None:
        handler, self.handler = self.handler, None
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        if handler is not None:
            handler.on_upstream_error(message)
