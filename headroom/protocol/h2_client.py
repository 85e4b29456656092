"""HTTP/2 to the upstream: many exchanges multiplexed over few connections.

``H2Upstream`` is one connection; each exchange gets an ``UpstreamStream`` with the same
surface as an HTTP/1.1 ``UpstreamConnection`` (send_head, send_body, send_end, set_reading,
release, abort), so the exchange does not care which protocol the pool chose.

* Capacity follows the peer's MAX_CONCURRENT_STREAMS; the pool opens another connection
  when every one is full.
* GOAWAY retires a connection: it takes no new streams, the streams it accepted (id up to
  the GOAWAY's last stream id) run to completion, later ones fail as "not processed", which
  the exchange may retry on another connection.
* Flow control is end to end here too: response DATA is acknowledged only while the
  stream's client is reading; request DATA leaves within the upstream's windows, and a stream
  whose queue passes high water tells its exchange to hold the client back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from headroom.protocol.events import (
    Body,
    EndBody,
    Event,
    Informational,
    ProtocolError,
    ResponseHandler,
    ResponseHead,
    to_response_handler,
)
from headroom.protocol.limits import HIGH_WATER, LOW_WATER
from headroom.protocol.writes import CONNECTION_SPECIFIC, UNSAFE_VALUE, H2Calls, QueuedStream

# h2 forbids these on requests (Host becomes :authority).
_FORBIDDEN = CONNECTION_SPECIFIC | {b"host"}
DEFAULT_PEER_STREAMS = 100  # until the peer's SETTINGS say otherwise


class UpstreamStream(QueuedStream):
    """One exchange's stream on an ``H2Upstream``."""

    __slots__ = (
        "_ended",
        "_reading",
        "_trailers",
        "_unacked",
        "handler",
        "response_started",
        "write_paused",
    )

    def __init__(self, conn: H2Upstream, stream_id: int) -> None:
        super().__init__(conn, stream_id)  # its queue holds request DATA for the windows
        self.handler: ResponseHandler | None = None
        self.write_paused = False
        self.response_started = False
        self._ended = False  # the response ended
        self._trailers: list[tuple[bytes, bytes]] | None = None  # response trailers
        self._reading = True
        self._unacked = 0

    @property
    def conn(self) -> H2Upstream:
        return cast(H2Upstream, self.owner)

    # ------------------------------------------------------------ exchange side

    def send_head(self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        authority = self.conn.authority
        fields: list[tuple[bytes, bytes]] = []
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"host":
                authority = value
            if lowered in _FORBIDDEN or (lowered == b"te" and value.lower() != b"trailers"):
                continue
            fields.append((lowered, value))
        pseudo = [
            (b":method", method),
            (b":scheme", self.conn.scheme),
            (b":authority", authority),
            (b":path", target),
        ]
        self.conn.call(self.conn.h2.send_headers, self.stream_id, pseudo + fields)

    def set_reading(self, on: bool) -> None:
        self._reading = on
        if on and self._unacked:
            count, self._unacked = self._unacked, 0
            self.conn.call(self.conn.h2.acknowledge_received_data, count, self.stream_id)

    def release(self) -> bool:
        """The exchange is done with this stream; streams are never reused."""
        self.handler = None
        if not (self._ended and self.response_started) and not self.closed:
            self.abort()
        self.conn.forget(self)
        return False

    def abort(self) -> None:
        self.handler = None
        if not self.closed:
            self.closed = True
            self.conn.call(self.conn.h2.reset_stream, self.stream_id, h2.errors.ErrorCodes.CANCEL)
        self.conn.forget(self)

    def close(self) -> None:
        self.abort()

    # ------------------------------------------------------------ connection side

    def refuse(self, message: str) -> None:
        """The response cannot be relayed: reset the stream, and the exchange hears why."""
        handler = self.handler
        self.abort()
        if handler is not None:
            handler.on_upstream_error(message)

    def fail(self, message: str, retryable: bool = False) -> None:
        handler, self.handler = self.handler, None
        self.closed = True
        if handler is not None:
            handler.on_upstream_error(message, retryable)


class H2Upstream(H2Calls, asyncio.Protocol):
    """One HTTP/2 connection to the origin, shared by many exchanges."""

    def __init__(
        self,
        scheme: bytes,
        authority: bytes,
        on_retire: Callable[[H2Upstream], None],
        idle_timeout: float = 30.0,
    ) -> None:
        self.scheme = scheme
        self.authority = authority
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, UpstreamStream] = {}
        self.cork = 0
        self.closed = False
        self.retired = False  # GOAWAY seen or connection lost: no new streams
        self._on_retire = on_retire
        self._paused = False
        self.idle_timeout = idle_timeout
        self.idle_timer: asyncio.TimerHandle | None = None
        self._frames = _GoawayFilter()

    # ------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        # Streams wait for the peer's SETTINGS: its stream limit is unknown until then.
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.h2.initiate_connection()
        self.write()

    def data_received(self, data: bytes) -> None:
        data = self._frames.feed(data)
        notice = self._frames.goaway
        if notice is not None:
            self._frames.goaway = None
            self._graceful_goaway(*notice)
        if not data:
            return
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._lost(f"upstream broke HTTP/2: {exc}")
            return
        self.cork += 1
        try:
            for event in events:
                self._dispatch(event)
        finally:
            self.cork -= 1
        self.write()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(f"upstream connection lost: {exc}" if exc else "upstream closed")

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        for stream in list(self.streams.values()):
            self.flush(stream)

    # ------------------------------------------------------------ events

    def _dispatch(self, event: Any) -> None:
        kind = type(event)
        if kind is h2.events.ConnectionTerminated:
            self._goaway(event)
            return
        if kind is h2.events.RemoteSettingsChanged and not self.ready.done():
            self.ready.set_result(None)
        if kind in (h2.events.RemoteSettingsChanged, h2.events.WindowUpdated):
            for stream in list(self.streams.values()):
                self.flush(stream)
            return
        found = self.streams.get(getattr(event, "stream_id", 0))
        if found is None:
            if kind is h2.events.DataReceived:
                self.call(
                    self.h2.acknowledge_received_data, event.flow_controlled_length, event.stream_id
                )
            return
        if kind is h2.events.StreamReset:
            refused = event.error_code == h2.errors.ErrorCodes.REFUSED_STREAM
            found.fail(
                f"upstream reset the stream ({event.error_code!r})",
                retryable=refused and not found.response_started,
            )
            self.forget(found)
            return
        translated = self._translate(found, event)
        if isinstance(translated, ProtocolError):
            found.refuse(translated.message)
        elif translated is not None and found.handler is not None:
            to_response_handler(found.handler, translated)

    def _translate(self, stream: UpstreamStream, event: Any) -> Event | None:
        """One h2 stream event as the shared vocabulary (None: nothing to hand on), with
        the stream's own bookkeeping (flow control, trailers, response state) done."""
        kind = type(event)
        if kind is h2.events.DataReceived:
            if stream._reading:
                self.h2.acknowledge_received_data(event.flow_controlled_length, stream.stream_id)
            else:
                stream._unacked += event.flow_controlled_length
            return Body(event.data)
        if kind is h2.events.ResponseReceived:
            head = _response_head(event.headers)
            if head is None:
                return ProtocolError(502, "upstream sent a header with CR, LF or NUL")
            stream.response_started = True
            return head
        if kind is h2.events.InformationalResponseReceived:
            head = _response_head(event.headers)
            return (
                None if head is None else Informational(head.status, head.headers, head.raw_names)
            )
        if kind is h2.events.TrailersReceived:
            stream._trailers = [(n, v) for n, v in event.headers]
        elif kind is h2.events.StreamEnded:
            stream._ended = True
            return EndBody(stream._trailers or [])
        return None

    def _goaway(self, event: h2.events.ConnectionTerminated) -> None:
        self._graceful_goaway(event.last_stream_id or 0, int(event.error_code or 0))

    def _graceful_goaway(self, last: int, code: int) -> None:
        self._retire()
        for stream in list(self.streams.values()):
            if stream.stream_id > last:  # never processed: safe to try elsewhere
                stream.fail("upstream sent GOAWAY before processing this stream", retryable=True)
                self.forget(stream)
        if not self.streams:
            self.close()

    # ------------------------------------------------------------ pool side

    @property
    def capacity(self) -> int:
        if self.retired or self.closed:
            return 0
        limit = self.h2.remote_settings.max_concurrent_streams or DEFAULT_PEER_STREAMS
        return max(0, min(limit, DEFAULT_PEER_STREAMS * 10) - len(self.streams))

    def open_stream(self) -> UpstreamStream:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        stream_id = self.h2.get_next_available_stream_id()
        stream = UpstreamStream(self, stream_id)
        self.streams[stream_id] = stream
        return stream

    def forget(self, stream: UpstreamStream) -> None:
        self.streams.pop(stream.stream_id, None)
        if self.streams or self.closed:
            return
        if self.retired:
            self.close()
        elif self.idle_timer is None:  # nobody uses it: close it after the idle timeout
            loop = asyncio.get_running_loop()
            self.idle_timer = loop.call_later(self.idle_timeout, self._idle_expired)

    def _idle_expired(self) -> None:
        self.idle_timer = None
        if not self.streams:
            self.close()

    def flush(self, stream: UpstreamStream) -> None:
        try:
            stream.queue.pump(self.h2, stream.stream_id, self._paused)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass
        queued = stream.queue.size
        paused = queued > HIGH_WATER or (stream.write_paused and queued > LOW_WATER)
        if paused != stream.write_paused:
            stream.write_paused = paused
            if stream.handler is not None:
                stream.handler.on_upstream_writable(not paused)
        if not self.cork:
            self.write()

    def write(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        self._retire()
        if not self.closed:
            self.closed = True
            try:
                self.h2.close_connection()
                data = self.h2.data_to_send()
                if data and self.transport is not None:
                    self.transport.write(data)
            except h2.exceptions.ProtocolError:
                pass
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        self._retire()
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _retire(self) -> None:
        if not self.retired:
            self.retired = True
            self._on_retire(self)

    def _lost(self, message: str) -> None:
        self._retire()
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(message))
            self.ready.exception()
        for stream in list(self.streams.values()):
            stream.fail(message)
        self.streams.clear()
        if self.transport is not None:
            self.transport.abort()


def _response_head(headers: list[tuple[bytes, bytes]]) -> ResponseHead | None:
    """The HTTP/1.1-shaped head, or None when a value could split an HTTP/1.1 header line
    on the client's side (CR, LF, NUL)."""
    status = 0
    fields: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if name == b":status":
            status = int(value)
        elif not name.startswith(b":"):
            if UNSAFE_VALUE.search(value):
                return None
            fields.append((name, value))
    return ResponseHead(status, fields, b"", [n for n, _ in fields])


class _GoawayFilter:
    """Takes graceful GOAWAY frames out of the byte stream before h2 sees them.

    h2's state machine treats a received GOAWAY as the end of the connection and then
    rejects the HEADERS and DATA of the streams the peer promised to finish (RFC 9113
    §6.8), so the proxy reads GOAWAY itself: frames are split on their 9-byte headers, a
    NO_ERROR GOAWAY is kept back as ``goaway = (last_stream_id, 0)``, everything else
    passes through unchanged. A GOAWAY carrying an error goes to h2, which ends the
    connection as it should.
    """

    def __init__(self) -> None:
        self._buf = b""
        self.goaway: tuple[int, int] | None = None

    def feed(self, data: bytes) -> bytes:
        buf = self._buf + data if self._buf else data
        out: list[bytes] = []
        pos = 0
        start = 0
        while len(buf) - pos >= 9:
            end = pos + 9 + int.from_bytes(buf[pos : pos + 3], "big")
            if end > len(buf):
                break
            if buf[pos + 3] == 0x7 and end - pos >= 17:
                code = int.from_bytes(buf[pos + 13 : pos + 17], "big")
                if code == 0:
                    out.append(buf[start:pos])
                    last = int.from_bytes(buf[pos + 9 : pos + 13], "big") & 0x7FFFFFFF
                    self.goaway = (last, 0)
                    start = end
            pos = end
        out.append(buf[start:pos])
        self._buf = buf[pos:]
        return b"".join(out)
