"""WebSocket over HTTP/2 (RFC 8441 extended CONNECT) bridged to an HTTP/1.1 WebSocket upstream.

The two legs frame differently (WebSocket frames inside h2 DATA on one side, on a raw TCP
stream on the other), so frames cannot be spliced: wsproto parses both legs and messages are
relayed — text, binary, ping, pong, close code and reason — each as what it was.

Bounds: a message is capped at 16 MiB, fragments and permessage-deflate included. Deflate is
negotiated with the client only through ``CappedDeflate``, which decompresses at most what
the cap leaves, so a small compressed bomb ends with close code 1009 instead of gigabytes.
No extension is offered upstream, so the upstream leg is never compressed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from typing import TYPE_CHECKING, Any

from wsproto.connection import Connection, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason

from headroom.protocol.events import RequestHead
from headroom.proxy.headers import header_value
from headroom.proxy.seams import ExchangeView
from headroom.proxy.upgrade import WebSocketUpstream, _close_soon

if TYPE_CHECKING:
    from headroom.protocol.upstream import UpstreamConnection

MAX_MESSAGE = 16 * 1024 * 1024
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def is_h2_websocket(head: RequestHead) -> bool:
    return head.method == b"CONNECT" and header_value(head.headers, b":protocol") == b"websocket"


class CappedDeflate(PerMessageDeflate):
    """permessage-deflate whose inflater stops once a message passes ``cap`` bytes."""

    def __init__(self, cap: int = MAX_MESSAGE) -> None:
        super().__init__()
        self._cap = cap
        self._seen = 0

    def frame_inbound_payload_data(self, proto: Any, data: bytes) -> bytes | CloseReason:
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        assert self._decompressor is not None
        try:
            out = self._decompressor.decompress(bytes(data), self._cap - self._seen + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._seen += len(out)
        if self._seen > self._cap:
            return CloseReason.MESSAGE_TOO_BIG
        return out

    def frame_inbound_complete(self, proto: Any, fin: bool) -> bytes | CloseReason | None:
        result = super().frame_inbound_complete(proto, fin)
        if isinstance(result, bytes):
            self._seen += len(result)
            if self._seen > self._cap:
                return CloseReason.MESSAGE_TOO_BIG
        if fin:
            self._seen = 0
        return result


class _Leg:
    """One side's wsproto connection plus the size of the message it is receiving."""

    def __init__(self, kind: ConnectionType, extensions: list[Any]) -> None:
        self.ws = Connection(kind, extensions=extensions)
        self.message_bytes = 0
        self.closed = False


class WebSocketBridge(WebSocketUpstream):
    """RFC 8441 stream on the client side, HTTP/1.1 WebSocket on the upstream side."""

    def __init__(self, ex: ExchangeView) -> None:
        super().__init__(ex)
        self.key = base64.b64encode(os.urandom(16))
        offer = header_value(ex.head.headers, b"sec-websocket-extensions") or b""
        self.deflate = CappedDeflate() if b"permessage-deflate" in offer.lower() else None
        self.client_leg = _Leg(ConnectionType.SERVER, [])
        self.upstream_leg = _Leg(ConnectionType.CLIENT, [])
        ex.drop_request_headers = ex.drop_request_headers | {
            b":protocol",
            b"sec-websocket-extensions",
            b"sec-websocket-key",
            b"sec-websocket-version",
        }

    def handshake_headers(self) -> list[tuple[bytes, bytes]]:
        extra = [
            (b"Upgrade", b"websocket"),
            (b"Sec-WebSocket-Key", self.key),
            (b"Sec-WebSocket-Version", b"13"),
        ]
        return self.ex.upstream_headers(None, upgrade=True) + extra

    async def after_switch(self, upstream: UpstreamConnection) -> None:
        ex = self.ex
        assert self.switch is not None
        accept = header_value(self.switch.headers, b"sec-websocket-accept")
        expected = base64.b64encode(hashlib.sha1(self.key + _GUID).digest())
        if accept != expected:
            upstream.abort()
            ex.fail(502, "upstream_error", "upstream's WebSocket handshake has a wrong accept key")
            return
        headers = [(b"x-request-id", ex.request_id)]
        protocol = header_value(self.switch.headers, b"sec-websocket-protocol")
        if protocol is not None:
            headers.append((b"sec-websocket-protocol", protocol))
        if self.deflate is not None:
            offer = (header_value(ex.head.headers, b"sec-websocket-extensions") or b"").decode()
            agreed = self.deflate.accept(offer.split(",")[0])
            if agreed is not None and agreed is not False:
                params = agreed if isinstance(agreed, str) else ""
                value = "permessage-deflate" + (f"; {params}" if params else "")
                headers.append((b"sec-websocket-extensions", value.encode()))
                # wsproto takes only extensions already enabled when a connection is made
                self.client_leg = _Leg(ConnectionType.SERVER, [self.deflate])
        ex.status = 200
        ex.response_started = True
        ex.conn.send_head(200, headers)
        self.outcome = ex.app.loop.create_future()
        self.open = True
        ex.body.sink = self._from_client
        upstream.start_tunnel(self._from_upstream)
        try:
            reason = await self.outcome
        finally:
            self.open = False
        ex.app.log.info(
            "ws_closed", request_id=ex.request_id.decode(), reason=reason, protocol="h2"
        )
        ex.conn.send_end()
        ex.response_done = True
        if self.upstream is not None:
            _close_soon(ex.app.loop, self.upstream)

    # ---------------------------------------------------------- relaying

    def _from_client(self, data: bytes) -> None:
        self.ex.facts.bytes_in += len(data)
        self._pump(self.client_leg, self.upstream_leg, data)

    def _from_upstream(self, data: bytes) -> None:
        self.ex.facts.bytes_out += len(data)
        self._pump(self.upstream_leg, self.client_leg, data)

    def _pump(self, src: _Leg, dst: _Leg, data: bytes) -> None:
        src.ws.receive_data(data)
        for event in src.ws.events():
            if isinstance(event, Message):
                src.message_bytes += len(event.data)
                if src.message_bytes > MAX_MESSAGE:
                    self._close_both(CloseReason.MESSAGE_TOO_BIG, "message over 16 MiB")
                    return
                if event.message_finished:
                    src.message_bytes = 0
                kind = TextMessage if isinstance(event, TextMessage) else BytesMessage
                self._send(
                    dst,
                    kind(
                        data=event.data,
                        frame_finished=event.frame_finished,
                        message_finished=event.message_finished,
                    ),
                )
            elif isinstance(event, Ping):
                self._send(dst, Ping(payload=event.payload))
            elif isinstance(event, Pong):
                self._send(dst, Pong(payload=event.payload))
            elif isinstance(event, CloseConnection):
                src.closed = True
                if not dst.closed:
                    self._send(dst, CloseConnection(code=event.code, reason=event.reason))
                    dst.closed = True
                if src.ws.state.name == "REMOTE_CLOSING":  # answer the closer's frame
                    self._write(src, src.ws.send(event.response()))
                else:  # wsproto refused a frame (too big, malformed): tell that side why
                    self._send(src, CloseConnection(code=event.code, reason=event.reason))
                self._finish(f"closed {event.code}")
                return

    def _send(self, leg: _Leg, event: Any) -> None:
        try:
            self._write(leg, leg.ws.send(event))
        except Exception:  # the leg is closing or closed: nothing more may go to it
            pass

    def _write(self, leg: _Leg, data: bytes) -> None:
        if not data:
            return
        if leg is self.client_leg:
            self.ex.conn.send_body(data)
        elif self.upstream is not None:
            self.upstream.write_raw(data)

    def _close_both(self, code: int, reason: str) -> None:
        for leg in (self.client_leg, self.upstream_leg):
            if not leg.closed:
                self._send(leg, CloseConnection(code=code, reason=reason))
                leg.closed = True
        self._finish(f"closed {code}: {reason}")

    def _finish(self, reason: str) -> None:
        if not self.outcome.done():
            self.outcome.set_result(reason)

    def on_upstream_error(self, message: str, retryable: bool = False) -> None:
        if self.open:
            if not self.client_leg.closed:
                self._send(
                    self.client_leg, CloseConnection(code=1011, reason="upstream connection lost")
                )
                self.client_leg.closed = True
            self._finish("upstream closed")
        else:
            super().on_upstream_error(message, retryable)
