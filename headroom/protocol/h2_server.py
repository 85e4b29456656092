"""HTTP/2 on the client side: one session per connection, one ``H2Stream`` (``h2_stream``)
per request.

h2's events are of two kinds. Those of a request (its headers, DATA, trailers, end) become
the shared vocabulary (``events.py``: a ``RequestHead``, ``Body``, ``EndBody``) and reach
the exchange through ``to_exchange``, as HTTP/1.1's do; those of the connection (windows,
settings, pings, resets, GOAWAY) are the session's own business. ``_HANDLERS`` is the one
table from h2's event types to the session's methods.

Flow control is end to end. Request DATA is acknowledged (credit returned) only while the
stream's exchange is not holding the client back, i.e. after the bytes were handed to the
upstream and its write buffer is below high water; withheld credit is returned when the
exchange unblocks. Response DATA goes out only within the client's windows; what does not
fit waits in a per-stream queue, and a queue above high water pauses that stream's upstream
reads, so one slow reader never stalls the others or grows memory.

Defences (each ends the connection with GOAWAY ENHANCE_YOUR_CALM): rapid reset
(CVE-2023-44487: streams the client resets before any response, counted per connection),
floods of SETTINGS, PING, empty DATA and WINDOW_UPDATE frames per time window, and any
frames beyond the work they carry (``FrameGate``, which also hands h2 bounded batches so
one connection yields the loop between them). Stream count (100) and header list size
(64 KiB) are local settings h2 enforces.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from headroom.protocol.events import Body, EndBody, to_exchange
from headroom.protocol.h2_frames import FrameFlood, FrameGate
from headroom.protocol.h2_request import request_head
from headroom.protocol.h2_stream import H2Carrier, H2Stream
from headroom.protocol.limits import HIGH_WATER, LOW_WATER
from headroom.protocol.writes import H2Calls

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_CONCURRENT_STREAMS = 100
MAX_HEADER_LIST_SIZE = 64 * 1024
# Rapid reset: after this many streams, more than half reset before any response is abuse;
# far past it, so is this absolute number whatever the ratio.
RESET_CHECK_AFTER = 100
MAX_PREMATURE_RESETS = 1000
CONNECTION_WINDOW = 16 * 1024 * 1024
FLOOD_WINDOW = 10.0  # seconds
FLOOD_LIMITS = {"settings": 100, "ping": 100, "empty_data": 100, "window_update": 10_000}


class H2Session(H2Calls):
    """The HTTP/2 state of one client connection (h2 does the framing)."""

    def __init__(self, conn: H2Carrier) -> None:
        self.conn = conn
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config=config)
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: conn.host.h2_max_streams,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_SIZE,
                h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 1,
            },
        )
        self.streams: dict[int, H2Stream] = {}
        self.cork = 0
        self.last_stream_id = 0
        self.draining = False
        self.streams_opened = 0
        self.premature_resets = 0
        self._flood: dict[str, int] = dict.fromkeys(FLOOD_LIMITS, 0)
        self._flood_since = time.monotonic()
        self._transport_paused = False
        # Over TLS the preface arrives like any bytes; on h2c it is in the first read too.
        self._gate = FrameGate(len(PREFACE))
        self._yielded: asyncio.Handle | None = None
        self._yielded_reading = False
        self.h2.initiate_connection()
        # A roomy connection window: per-stream windows (64 KiB) still bound what each
        # stream may have in flight, and a 64 KiB connection window shared by 100 streams
        # would serialise them behind whichever stream's credit is withheld.
        self.h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)

    # ------------------------------------------------------------ input

    def receive(self, data: bytes) -> None:
        self._gate.feed(data)
        if self._yielded is None:
            self._pump()

    def _pump(self) -> None:
        """Hand h2 one batch of frames; if more wait, stop reading and come back on the
        next loop turn, so other connections run in between."""
        self._yielded = None
        if self.conn.closed:
            return
        try:
            chunk = self._gate.take()
        except FrameFlood as exc:
            self._terminate(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, f"frame flood: {exc}")
            return
        if chunk:
            self._receive(chunk)
        if self.conn.closed:
            return
        if self._gate.pending:
            if not self._yielded_reading:
                self._yielded_reading = True
                self.conn.block_reading()
            self._yielded = self.conn.loop.call_soon(self._pump)
        elif self._yielded_reading:
            self._yielded_reading = False
            self.conn.unblock_reading()

    def _receive(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._terminate(_error_code(exc), f"protocol error: {exc}")
            return
        self.cork += 1
        try:
            for event in events:
                handler = _HANDLERS.get(type(event))
                if handler is not None:
                    handler(self, event)
                if self.conn.closed:
                    return
        finally:
            self.cork -= 1
        self.write()

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        self.last_stream_id = max(self.last_stream_id, stream_id)
        self.streams_opened += 1
        if self.draining:
            self.call(self.h2.reset_stream, stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        head = request_head(event.headers, event.stream_ended is not None)
        if head is None:
            self.call(self.h2.reset_stream, stream_id, h2.errors.ErrorCodes.PROTOCOL_ERROR)
            return
        stream = H2Stream(self, stream_id)
        self.streams[stream_id] = stream
        self.conn.stream_opened()
        stream._exchange = self.conn.host.new_exchange(stream, head)

    def _on_data(self, event: h2.events.DataReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if not event.data and not event.stream_ended:
            self._count("empty_data")
        if stream is None or stream._exchange is None:
            self.call(
                self.h2.acknowledge_received_data, event.flow_controlled_length, event.stream_id
            )
            return
        to_exchange(stream._exchange, Body(event.data))
        if stream._blocked:
            stream._unacked += event.flow_controlled_length
        else:
            self.acknowledge(stream, event.flow_controlled_length)

    def _on_stream_ended(self, event: h2.events.StreamEnded) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None and stream._exchange is not None:
            to_exchange(stream._exchange, EndBody(stream._trailers))

    def _on_trailers(self, event: h2.events.TrailersReceived) -> None:
        """Trailers end the stream: h2 reports StreamEnded next, which hands them on (the
        request ends once, with its trailers)."""
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream._trailers = [(n, v) for n, v in event.headers]

    def _on_reset(self, event: h2.events.StreamReset) -> None:
        stream = self.streams.pop(event.stream_id, None)
        if stream is None:
            return
        stream.closed = True
        if not stream.head_sent:
            self.premature_resets += 1
        exchange, stream._exchange = stream._exchange, None
        if exchange is not None:
            exchange.on_client_gone()
        self.conn.stream_closed()
        if self.premature_resets > MAX_PREMATURE_RESETS or (
            self.streams_opened >= RESET_CHECK_AFTER
            and self.premature_resets * 2 > self.streams_opened
        ):
            self._terminate(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, "rapid reset")

    def _on_window(self, event: h2.events.WindowUpdated) -> None:
        self._count("window_update")
        if event.stream_id:
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                self.flush(stream)
        else:
            for stream in list(self.streams.values()):
                self.flush(stream)

    def _on_settings(self, event: h2.events.RemoteSettingsChanged) -> None:
        self._count("settings")
        for stream in list(self.streams.values()):
            self.flush(stream)

    def _on_ping(self, event: h2.events.PingReceived) -> None:
        self._count("ping")

    def _on_terminated(self, event: h2.events.ConnectionTerminated) -> None:
        self.conn.abort()

    # ------------------------------------------------------------ output

    def write(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.conn.write_raw(data)

    def flush(self, stream: H2Stream) -> None:
        """Send what the windows allow; end the stream once its queue is empty."""
        if stream.closed:
            return
        try:
            ended = stream.queue.pump(self.h2, stream.stream_id, self._transport_paused)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            stream.closed = True
            ended = False
        if ended and stream._exchange is None:  # its exchange finished while data waited
            self.stream_done(stream)
        stream.set_paused(
            stream.queued > HIGH_WATER or (stream._paused and stream.queued > LOW_WATER)
        )
        if not self.cork:
            self.write()

    def acknowledge(self, stream: H2Stream, count: int) -> None:
        if count and not stream.closed:
            self.call(self.h2.acknowledge_received_data, count, stream.stream_id)

    def reset(self, stream: H2Stream, code: int) -> None:
        if self.streams.pop(stream.stream_id, None) is None:
            return
        if not stream.closed:
            stream.closed = True
            self.call(self.h2.reset_stream, stream.stream_id, code)
        self.conn.stream_closed()
        self._maybe_finish_drain()

    def stream_done(self, stream: H2Stream) -> None:
        if stream.queue.end or stream.queued:
            return  # finishing after the queue drains; the stream stays registered
        if self.streams.pop(stream.stream_id, None) is not None:
            stream.closed = True
            self.conn.stream_closed()
        self._maybe_finish_drain()

    def transport_writable(self, writable: bool) -> None:
        self._transport_paused = not writable
        for stream in list(self.streams.values()):
            if writable:
                self.flush(stream)
            else:
                stream.set_paused(True)

    # ------------------------------------------------------------ lifecycle

    def shutdown(self) -> None:
        """Drain: advertise MAX_CONCURRENT_STREAMS 0 and refuse new streams; once the open
        ones finish, GOAWAY with the last stream id, and close.

        GOAWAY is not sent first because clients built on the python-hyper h2 state machine
        (httpx among them) treat a received GOAWAY as the end of the connection and fail the
        streams still running, although RFC 9113 lets them finish; the settings change
        stops new streams on every client without that casualty (hypercorn does the same).
        """
        if self.draining:
            return
        self.draining = True
        self.call(self.h2.update_settings, {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 0})
        self._maybe_finish_drain()

    def idle_expired(self) -> None:
        self._terminate(h2.errors.ErrorCodes.NO_ERROR, "idle")

    def lost(self) -> None:
        if self._yielded is not None:
            self._yielded.cancel()
            self._yielded = None
        for stream in list(self.streams.values()):
            stream.closed = True
            exchange, stream._exchange = stream._exchange, None
            if exchange is not None:
                exchange.on_client_gone()
        self.streams.clear()

    def _maybe_finish_drain(self) -> None:
        if self.draining and not self.streams:
            self._terminate(h2.errors.ErrorCodes.NO_ERROR, "drained")

    def _terminate(self, code: int, reason: str) -> None:
        try:
            self.h2.close_connection(code, last_stream_id=self.last_stream_id)
        except h2.exceptions.ProtocolError:
            pass
        self.write()
        if code != h2.errors.ErrorCodes.NO_ERROR:
            self.conn.host.log_h2_error(self.conn, reason)
        self.lost()
        self.conn.close()

    def _count(self, kind: str) -> None:
        now = time.monotonic()
        if now - self._flood_since > FLOOD_WINDOW:
            self._flood = dict.fromkeys(FLOOD_LIMITS, 0)
            self._flood_since = now
        self._flood[kind] += 1
        if self._flood[kind] > FLOOD_LIMITS[kind]:
            self._terminate(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, f"{kind} flood")


def _error_code(exc: Exception) -> int:
    code = getattr(exc, "error_code", None)
    return int(code) if code is not None else h2.errors.ErrorCodes.PROTOCOL_ERROR


_HANDLERS: dict[type[h2.events.Event], Callable[[H2Session, Any], None]] = {
    h2.events.RequestReceived: H2Session._on_request,
    h2.events.DataReceived: H2Session._on_data,
    h2.events.StreamEnded: H2Session._on_stream_ended,
    h2.events.TrailersReceived: H2Session._on_trailers,
    h2.events.StreamReset: H2Session._on_reset,
    h2.events.WindowUpdated: H2Session._on_window,
    h2.events.RemoteSettingsChanged: H2Session._on_settings,
    h2.events.PingReceived: H2Session._on_ping,
    h2.events.ConnectionTerminated: H2Session._on_terminated,
}
