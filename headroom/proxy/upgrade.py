"""WebSocket over an HTTP/1.1 Upgrade: handshake with the upstream first, then splice bytes.

The client gets a status only once the upstream has answered (a 101 sent at once would leave
nothing true to say when the upstream then refuses): the upstream's 101 — with its
``Sec-WebSocket-Accept``, ``-Protocol`` and ``-Extensions`` — is relayed, or its refusal
status, headers and body are. After 101 the proxy does not parse frames: bytes go both ways
as they come (close frames and codes included), each direction paused while the other
side's write buffer is above its high-water mark. When either side closes or drops, the other
is closed after its buffered bytes are flushed, and aborted if that takes over a second.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

from headroom.log import loggable_path
from headroom.protocol.events import Informational, RequestHead, ResponseHead
from headroom.protocol.pool import ConnectFailed
from headroom.proxy.headers import client_response_headers, header_value
from headroom.proxy.seams import ExchangeView, UpgradableStream

if TYPE_CHECKING:
    from headroom.protocol.upstream import UpstreamConnection

CLOSE_GRACE = 1.0  # seconds a closing side gets to flush before it is cut


def is_websocket_upgrade(head: RequestHead) -> bool:
    if head.method != b"GET":
        return False
    upgrade = header_value(head.headers, b"upgrade") or b""
    if b"websocket" not in upgrade.lower():
        return False
    return any(
        name == b"connection" and b"upgrade" in [t.strip().lower() for t in value.split(b",")]
        for name, value in head.headers
    )


def has_body(head: RequestHead) -> bool:
    """A WebSocket handshake is a GET with no body: any body framing makes it a request
    whose bytes after the head could never be told apart from the first frames."""
    for name, value in head.headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


class WebSocketUpstream:
    """The upstream side of one WebSocket session: the HTTP/1.1 handshake, its answer, and
    the session's end. What the client side does once switched is the subclass's."""

    def __init__(self, ex: ExchangeView) -> None:
        self.ex = ex
        self.upstream: UpstreamConnection | None = None
        self.outcome: asyncio.Future[str] = ex.app.loop.create_future()
        self.switch: Informational | None = None
        self.open = False

    async def run(self) -> None:
        ex = self.ex
        try:
            upstream = await ex.pool.connect(http1=True)
        except ConnectFailed as exc:
            ex.fail(exc.status, exc.error_type, str(exc))
            return
        self.upstream = upstream
        try:
            await self._handshake(upstream)
        except BaseException:
            upstream.abort()  # whatever went wrong, the upstream socket is not left open
            raise

    async def _handshake(self, upstream: UpstreamConnection) -> None:
        ex = self.ex
        upstream.handler = self
        upstream.cork()
        upstream.send_head(b"GET", ex.upstream_target, self.handshake_headers())
        upstream.send_end()
        upstream.uncork()
        timeout = ex.app.config.upstream_timeout
        try:
            async with asyncio.timeout(timeout):
                outcome = await self.outcome
        except TimeoutError:
            upstream.abort()
            ex.fail(504, "upstream_timeout", f"no WebSocket handshake answer within {timeout:g}s")
            return
        if outcome == "switched":
            await self.after_switch(upstream)
        elif outcome != "answered":
            ex.fail(502, "upstream_error", outcome)
        else:
            upstream.abort()  # a refusal was relayed; this socket served its one purpose

    def handshake_headers(self) -> list[tuple[bytes, bytes]]:
        return self.ex.upstream_headers(None, upgrade=True)

    async def after_switch(self, upstream: UpstreamConnection) -> None:
        raise NotImplementedError

    def client_gone(self) -> None:
        """The client closed or dropped: let the upstream flush what it was sent, then go."""
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            _close_soon(self.ex.app.loop, upstream)
        if not self.outcome.done():
            self.outcome.set_result("client closed")

    # ---------------------------------------------------------- upstream callbacks

    def on_informational(self, event: Informational) -> None:
        if event.status == 101 and not self.outcome.done():
            self.switch = event
            self.outcome.set_result("switched")

    def on_response_head(self, head: ResponseHead) -> None:
        self.ex.relay_head(head)  # the upstream refused the upgrade: the client sees why

    def on_response_body(self, data: bytes) -> None:
        self.ex.relay_body(data)

    def on_response_end(self, trailers: list[tuple[bytes, bytes]]) -> None:
        self.ex.conn.send_end()
        self.ex.response_done = True
        if not self.outcome.done():
            self.outcome.set_result("answered")

    def on_upstream_error(self, message: str, retryable: bool = False) -> None:
        if not self.outcome.done():
            self.outcome.set_result(message if not self.open else "upstream closed")

    def on_upstream_writable(self, writable: bool) -> None:
        if self.open:
            self.ex.body.hold_client(not writable)

    def on_response_batch(self, start: bool) -> None:
        if start:
            self.ex.conn.cork()
        else:
            self.ex.conn.uncork()

    def on_client_writable(self, writable: bool) -> None:
        if self.upstream is not None:
            self.upstream.set_reading(writable)


class Tunnel(WebSocketUpstream):
    """An HTTP/1.1 client's WebSocket: relay the 101, then splice bytes both ways."""

    def __init__(self, ex: ExchangeView, client: UpgradableStream) -> None:
        super().__init__(ex)
        self.client = client

    async def after_switch(self, upstream: UpstreamConnection) -> None:
        ex = self.ex
        assert self.switch is not None
        head = ResponseHead(101, self.switch.headers, b"", self.switch.raw_names)
        headers, _ = client_response_headers(head, request_id=ex.request_id, closing=False)
        headers += [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")]
        self.outcome = ex.app.loop.create_future()
        self.open = True
        ex.status = 101
        ex.response_started = True
        self.client.accept_upgrade(headers, self._to_upstream)
        upstream.start_tunnel(self._to_client)
        ex.app.log.info(
            "ws_open",
            request_id=ex.request_id.decode(),
            path=loggable_path(ex.path.decode("latin-1")),
        )
        try:
            reason = await self.outcome
        finally:
            self.open = False
        ex.app.log.info(
            "ws_closed",
            request_id=ex.request_id.decode(),
            reason=reason,
            bytes_in=ex.facts.bytes_in,
            bytes_out=ex.facts.bytes_out,
        )
        ex.response_done = True
        _close_soon(ex.app.loop, self.client)

    def _to_upstream(self, data: bytes) -> None:
        self.ex.facts.bytes_in += len(data)
        if self.upstream is not None:
            self.upstream.write_raw(data)

    def _to_client(self, data: bytes) -> None:
        self.ex.facts.bytes_out += len(data)
        self.client.write_raw(data)


class Closable(Protocol):
    def close(self) -> None: ...

    def abort(self) -> None: ...


def _close_soon(loop: asyncio.AbstractEventLoop, side: Closable) -> None:
    """Close after flushing; cut the connection if the flush takes longer than the grace."""
    side.close()
    loop.call_later(CLOSE_GRACE, side.abort)
