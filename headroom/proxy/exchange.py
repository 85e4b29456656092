"""The exchange core: one request/response between a client stream and an upstream leg.

It owns what every request needs whatever its route: the two legs, the body plumbing
(``request_body.ClientBody``: buffered until a flow decides, then streamed or read whole,
the body timeout, the client's read pause), replay of a body the origin never processed,
backpressure both ways, the upstream timeout, the relay of the answer into a sink, error
answers, and the finish. Which flow runs (forward, buffered,
local, tunnel) is decided above this module (``flows.py``); the core imports no flow.

A request's control flow is one coroutine (it reads top to bottom); body bytes never pass
through it: client chunks go upstream from ``on_body``, response chunks to the sink from
``on_response_body``, a callback each, and backpressure pauses the other side's reads.

No status reaches the client before the upstream answered or the proxy decided an error:
every proxy-made answer goes through ``answer``, and an error after the response head went
out aborts the client connection, so a cut-short response can never look complete.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from headroom.log import loggable_path, redact
from headroom.protocol.events import Informational, RequestHead, ResponseHead
from headroom.proxy.answers import send_local
from headroom.proxy.headers import (
    client_response_headers,
    header_value,
    request_id_for,
    upstream_request_headers,
    upstream_target,
)
from headroom.proxy.local import LocalResponse, error_response
from headroom.proxy.request_body import ClientBody
from headroom.proxy.seams import (
    ClientGone,
    ClientStream,
    Facts,
    Outcome,
    ResponseSink,
    Services,
)
from headroom.proxy.sinks import RELAY
from headroom.proxy.timers import IdleTimer
from headroom.proxy.usage_tap import UsageTap

if TYPE_CHECKING:
    from headroom.protocol.pool import Upstream, UpstreamPool
    from headroom.proxy.origins import Origin
    from headroom.proxy.upgrade import WebSocketUpstream

Flow = Callable[["Exchange"], Awaitable[None]]
_END_TAIL = 32  # longer than any stream-end marker: enough to see one split across chunks


class Exchange:
    __slots__ = (
        "_done",
        "_end_tail",
        "_idle",
        "_relay_trailers",
        "_started",
        "_task",
        "app",
        "body",
        "client_gone",
        "conn",
        "drop_request_headers",
        "facts",
        "failure",
        "failure_retryable",
        "head",
        "origin",
        "path",
        "request_id",
        "response_done",
        "response_started",
        "sink",
        "status",
        "stopped",
        "stream_ends",
        "tunnel",
        "upstream",
        "usage",
    )

    def __init__(self, app: Services, conn: ClientStream, head: RequestHead) -> None:
        self.app = app
        self.conn = conn
        self.head = head
        self.facts = Facts(time.perf_counter())
        self.request_id = request_id_for(head)
        self.path = head.target.partition(b"?")[0]
        self.origin: Origin | None = None  # where it goes; the routing table chooses
        self.upstream: Upstream | None = None
        self.body = ClientBody(app, conn, self)  # its body watch answers to this exchange
        self._done: asyncio.Future[Outcome] | None = None
        # Upstream timeout: no progress (either way) for --upstream-timeout, until the
        # response head and between body chunks, so a stream that keeps talking is never cut.
        self._idle = IdleTimer(app.loop, app.config.upstream_timeout, self._upstream_idle)
        self._relay_trailers = False
        self.client_gone = False
        self.response_started = False
        self.response_done = False
        self.failure = ""
        self.failure_retryable = False
        self.status = 0
        self.stopped = False
        self._started = False
        self.drop_request_headers: frozenset[bytes] = frozenset()
        self.sink: ResponseSink = RELAY  # where the answer goes; flows may install another
        self.tunnel: WebSocketUpstream | None = None  # a WebSocket session
        self.stream_ends: tuple[bytes, ...] = ()  # the API's last-event bytes (flows set it)
        self._end_tail = b""
        self.usage: UsageTap | None = None  # reads the answer's token counts (flows set it)
        self._task: asyncio.Task[None] | None = None  # see launch()

    # ================================================================ control flow

    def launch(self, flow: Flow) -> None:
        """Run ``flow`` (chosen by the routing table above this layer) as this exchange's
        control flow; whatever happens in it, the exchange finishes."""
        self._task = self.app.loop.create_task(self._run(flow))

    async def _run(self, flow: Flow) -> None:
        self._started = True
        try:
            if self.stopped:  # the client left or broke framing before we began
                return
            await flow(self)
        except ClientGone:
            pass
        except Exception as exc:  # a bug must cost one request, never the process
            self.app.log.error(
                "exchange_failed",
                request_id=self.request_id.decode(),
                error=redact(f"{type(exc).__name__}: {exc}"),
            )
            self.fail(500, "internal_error", "the proxy failed to handle this request")
        finally:
            self._finish()

    async def round_trip(self, upstream: Upstream, body: bytes | bytearray | None) -> Outcome:
        """One request to ``upstream`` and its answer into ``self.sink``. ``body`` None
        means stream the client's body as it comes."""
        self.upstream = upstream
        upstream.handler = self
        self._done = self.app.loop.create_future()
        headers = self.upstream_headers(len(body) if body is not None else None)
        target = self.upstream_target
        upstream.cork()
        try:
            upstream.send_head(self.head.method, target, headers)
            if body is not None:
                if body:
                    upstream.send_body(body)
                upstream.send_end()
            else:
                self.body.stream_to(upstream)
        finally:
            upstream.uncork()
        self._idle.start()
        return await self._done

    def upstream_headers(
        self, content_length: int | None, upgrade: bool = False
    ) -> list[tuple[bytes, bytes]]:
        cfg = self.app.config
        return upstream_request_headers(
            self.head,
            client_ip=self.conn.client_ip,
            scheme=self.conn.scheme,
            upstream_authority=self._origin.authority,
            rewrite_host=cfg.rewrite_host,
            request_id=self.request_id,
            content_length=content_length,
            drop=self.drop_request_headers,
            upgrade=upgrade,
        )

    @property
    def upstream_target(self) -> bytes:
        return upstream_target(self._origin.base, self.head.target)

    @property
    def pool(self) -> UpstreamPool:
        return self._origin.pool

    @property
    def _origin(self) -> Origin:
        """Only forwarding flows ask, and the routing table gives each of them an origin."""
        if self.origin is None:
            raise RuntimeError("the request was given no upstream")
        return self.origin

    def release_upstream(self) -> None:
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            self.pool.release(upstream)

    # ================================================================ client callbacks

    def on_body(self, data: bytes) -> None:
        if self.body.sink is not None:
            self.body.sink(data)
            return
        self.facts.bytes_in += len(data)
        self._idle.touch()
        self.body.received(data, self.upstream)

    def on_end(self, trailers: list[tuple[bytes, bytes]]) -> None:
        if self.body.sink is not None and self.tunnel is not None:
            self.tunnel.client_gone()  # the client ended its stream: the session is over
            return
        self.body.end(trailers, self.upstream)

    def on_client_gone(self) -> None:
        self.client_gone = True
        if self.tunnel is not None:
            self.tunnel.client_gone()
        self._stop()

    def on_client_writable(self, writable: bool) -> None:
        if self.tunnel is not None:
            self.tunnel.on_client_writable(writable)
        if self.upstream is not None:
            self.upstream.set_reading(writable)

    # ================================================================ upstream callbacks

    def on_response_head(self, head: ResponseHead) -> None:
        self._idle.touch()
        facts = self.facts
        if facts.t_headers is None:
            facts.t_headers = time.perf_counter()
            facts.upstream_status = head.status
        self.sink.on_head(self, head)

    def relay_head(self, head: ResponseHead) -> None:
        headers, self.facts.upstream_request_id = client_response_headers(
            head, request_id=self.request_id, closing=self.conn.must_close or self.app.draining
        )
        if self.app.draining:
            self.conn.must_close = True
        self._relay_trailers = header_value(head.headers, b"content-length") is None
        if self.stream_ends:
            ctype = (header_value(head.headers, b"content-type") or b"").lower()
            if b"text/event-stream" not in ctype:
                self.stream_ends = ()  # a whole answer: complete when its last byte is out
        self.status = head.status
        self.response_started = True
        if self.usage is not None:
            self.usage.start(head)
        self.conn.send_head(head.status, headers, head.reason)

    def on_response_body(self, data: bytes) -> None:
        self._idle.touch()
        self.sink.on_body(self, data)

    def relay_body(self, data: bytes) -> None:
        self.facts.bytes_out += len(data)
        if self.stream_ends and not self.facts.stream_complete:
            self._see_stream_end(data)
        if self.usage is not None:
            self.usage.feed(data)
        self.conn.send_body(data)

    def _see_stream_end(self, data: bytes) -> None:
        """Note when the stream's last event goes out (it may straddle two chunks)."""
        ends = self.stream_ends
        seam = self._end_tail + data[:_END_TAIL]
        if any(end in data for end in ends) or any(end in seam for end in ends):
            self.facts.stream_complete = True
        self._end_tail = data[-_END_TAIL:]

    @property
    def outcome(self) -> str:
        """How the exchange ended, for the access log and /stats: ``ok`` once the client has
        the whole answer (a client closing right after a stream's last event is a normal
        end), ``client_gone`` when it left before, ``aborted`` when the proxy cut it."""
        if self.response_done or self.facts.stream_complete:
            return "ok"
        return "client_gone" if self.client_gone else "aborted"

    def on_response_end(self, trailers: list[tuple[bytes, bytes]]) -> None:
        self._resolve(self.sink.on_end(self, trailers))

    def end_response(self, trailers: list[tuple[bytes, bytes]]) -> None:
        """The relayed response is complete: its trailers go too where the framing allows."""
        self.conn.send_end(trailers if self._relay_trailers else None)
        self.response_done = True

    def on_upstream_error(self, message: str, retryable: bool = False) -> None:
        self.failure = message
        self.failure_retryable = retryable
        self._resolve(Outcome.FAILED)

    def on_informational(self, event: Informational) -> None:
        """1xx (100, 102, 103) stop here: the proxy answers 100-continue itself."""

    def on_response_batch(self, start: bool) -> None:
        if start:
            self.conn.cork()
        else:
            self.conn.uncork()

    def on_upstream_writable(self, writable: bool) -> None:
        if self.body.streaming and not self.body.ended:
            self.body.hold_client(not writable)

    # ================================================================ helpers

    def _resolve(self, outcome: Outcome) -> None:
        done = self._done
        if done is not None and not done.done():
            done.set_result(outcome)

    def _upstream_idle(self) -> bool:
        if self._done is not None and not self._done.done():
            self._abort_upstream()
            self.failure = "upstream timeout"
            self._resolve(Outcome.TIMEOUT)
        return False

    def _abort_upstream(self) -> None:
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.abort()

    def fail(
        self,
        status: int,
        error_type: str,
        message: str,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        if self.response_started or self.conn.closed:
            self.conn.abort()
            return
        self.app.stats.errors[error_type] += 1
        self.app.log.warning(
            "proxy_error",
            request_id=self.request_id.decode(),
            status=status,
            type=error_type,
            message=message,
            path=loggable_path(self.path.decode("latin-1")),
        )
        self.answer(error_response(status, error_type, message, headers))

    def answer(self, response: LocalResponse) -> None:
        """Send a response the proxy made itself (local route or error)."""
        if self.conn.closed:
            return
        if not self.body.ended:
            self.conn.must_close = True  # unread body bytes: don't reuse the connection
        self.status = response.status
        self.response_started = True
        self.facts.bytes_out += send_local(
            self.conn, response, self.request_id, head_only=self.head.method == b"HEAD"
        )
        self.response_done = True

    @property
    def client_held_back(self) -> bool:
        return self.body.blocked

    def give_up(
        self,
        status: int,
        error_type: str,
        message: str,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        """Answer mid-request (a body timeout, a full buffer budget, broken body framing)
        and end the exchange, cutting the upstream side; the connection closes, since the
        rest of the body would otherwise be read as the next request (smuggling)."""
        self.conn.must_close = True
        self.fail(status, error_type, message, headers)
        self._stop()

    on_protocol_error = give_up  # the client broke body framing mid-request

    def _stop(self) -> None:
        """No more work for this exchange: free the upstream at once (well within the
        second a disconnect may take to propagate) and end the task wherever it waits —
        connecting, reading the body, compressing or relaying."""
        self.stopped = True
        self._abort_upstream()
        if self._started and self._task is not None and not self._task.done():
            self._task.cancel()

    def _finish(self) -> None:
        self.body.stop()
        self._idle.cancel()
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            if self.response_done and not self.client_gone:
                self.pool.release(upstream)
            else:
                self.pool.discard(upstream)
        try:
            self.body.hold_client(False)
            if self.response_done:
                self.conn.finish(self)
            elif not self.conn.closed:
                self.conn.abort()
        finally:
            # Counted whatever the connection's teardown raised: an exchange never counted
            # as finished holds the drain for its whole wait and is missing from /stats.
            self.app.exchange_finished(self)
            # A cancelled task keeps its CancelledError, whose traceback holds the flow's
            # frames and their locals (a whole body, perhaps): without this reference back
            # to the task, refcounting frees them as the task ends.
            self._task = None
