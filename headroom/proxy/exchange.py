"""One request/response through the proxy.

Control flow (route, buffer, connect, retry, map errors) runs in one coroutine per request,
because it reads top to bottom; the body bytes themselves never pass through it. Once the
upstream is attached, client body chunks are written upstream from ``on_body`` and response
chunks are written to the client from ``on_response_body``: a callback each, no queue, no
task switch, and backpressure is a pause of the other side's reads.

No status reaches the client before the upstream answered or the proxy decided an error
(invariant 2): every proxy-made answer goes through ``_answer``, and an error after the
response head went out aborts the client connection so the response can't look complete.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, cast

import orjson

from headroom.log import loggable_path, redact
from headroom.protocol.events import Informational, RequestHead, ResponseHead
from headroom.protocol.limits import MAX_PENDING_BODY
from headroom.protocol.pool import ConnectError, ConnectTimeout
from headroom.providers.apis import provider_for
from headroom.providers.base import Provider
from headroom.providers.retrieval import follow_up
from headroom.proxy import retrieval_loop
from headroom.proxy.buffering import BodyWatch
from headroom.proxy.encoding import DecodedTooLarge
from headroom.proxy.headers import (
    client_response_headers,
    header_value,
    request_id_for,
    request_trailers,
    upstream_request_headers,
    upstream_target,
)
from headroom.proxy.local import LocalRequest, LocalResponse
from headroom.proxy.seams import ClientStream, Outcome, Services, UpgradableStream
from headroom.proxy.upgrade import Tunnel, WebSocketUpstream, has_body, is_websocket_upgrade
from headroom.proxy.ws_bridge import WebSocketBridge, is_h2_websocket

if TYPE_CHECKING:
    from headroom.protocol.pool import Upstream

# Bodies of requests the proxy answers itself (retrieval lookups) are small JSON.
LOCAL_BODY_LIMIT = 1 << 20
# A streamed request body up to this size is kept until the answer starts, so a request the
# origin provably never processed (refused stream, GOAWAY, stale pooled socket) can be
# retried once; larger bodies are not replayable.
REPLAY_LIMIT = 64 * 1024
# Tries per request when the origin provably did not process it (bounded: a peer that
# refuses everything still gets an answer quickly).
MAX_TRIES = 3


class ClientGone(Exception):
    pass


class BodyTooLarge(Exception):
    pass


class Exchange:
    __slots__ = (
        "_blocked_client",
        "_body",
        "_body_sink",
        "_body_waiter",
        "_done",
        "_limit",
        "_pending",
        "_pending_bytes",
        "_relay_trailers",
        "_replay",
        "_replay_bytes",
        "_started",
        "_task",
        "_timer",
        "app",
        "bytes_in",
        "bytes_out",
        "client_gone",
        "conn",
        "drop_request_headers",
        "failure",
        "failure_retryable",
        "head",
        "held",
        "last_progress",
        "path",
        "req_ended",
        "req_trailers",
        "request_id",
        "response_done",
        "response_started",
        "retrieval",
        "start",
        "status",
        "stopped",
        "stream_retrieval",
        "streaming",
        "t_headers",
        "tunnel",
        "upstream",
        "upstream_request_id",
        "upstream_status",
    )

    def __init__(self, app: Services, conn: ClientStream, head: RequestHead) -> None:
        self.app = app
        self.conn = conn
        self.head = head
        self.start = time.perf_counter()
        self.request_id = request_id_for(head)
        self.path = head.target.partition(b"?")[0]
        self.upstream: Upstream | None = None
        self.streaming = False  # body chunks go straight upstream
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._limit: int | None = None  # cap while buffering, None while streaming
        self._blocked_client = False
        self._body_sink: Callable[[bytes], None] | None = None
        self._replay: list[bytes] | None = []  # streamed body kept for one safe retry
        self._replay_bytes = 0
        self._body_waiter: asyncio.Future[None] | None = None
        self._body = BodyWatch(app.loop, app.budget, app.config.body_timeout, conn, self)
        self._done: asyncio.Future[Outcome] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._relay_trailers = False
        self.req_ended = False
        self.req_trailers: list[tuple[bytes, bytes]] = []
        self.client_gone = False
        self.response_started = False
        self.response_done = False
        self.failure = ""
        self.failure_retryable = False
        self.status = 0
        self.upstream_status: int | None = None
        self.upstream_request_id: bytes | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.t_headers: float | None = None
        self.last_progress = self.start
        self.stopped = False
        self._started = False
        self.drop_request_headers: frozenset[bytes] = frozenset()
        # Set when the forwarded body carries markers and the answer is not streamed: the
        # answer is held so the model's headroom_retrieve calls can be served here.
        self.retrieval: Provider | None = None
        self.held: tuple[ResponseHead | None, list[bytes]] = (None, [])
        self.stream_retrieval: retrieval_loop.StreamRetrieval | None = None
        self.tunnel: WebSocketUpstream | None = None  # a WebSocket session
        self._task = app.loop.create_task(self._run())

    # ================================================================ control flow

    async def _run(self) -> None:
        self._started = True
        try:
            if self.stopped:  # the client left or broke framing before we began
                return
            handler = self.app.routes.match(self.path)
            if self.head.method == b"CONNECT" and not is_h2_websocket(self.head):
                # A reverse proxy opens no tunnels; what follows the head may be anything.
                self.conn.must_close = True
                self.fail(405, "method_not_allowed", "CONNECT is not served by a reverse proxy")
            elif handler is not None:
                self._watch_body()
                await self._serve_local(handler)
            elif is_websocket_upgrade(self.head) and has_body(self.head):
                self.conn.must_close = True
                self.fail(400, "bad_request", "a WebSocket upgrade request carries no body")
            elif is_websocket_upgrade(self.head):
                # HTTP/2 forbids Upgrade and Connection headers (h2 refuses them), so an
                # upgrade request always came on an HTTP/1.1 connection.
                self.tunnel = Tunnel(self, cast(UpgradableStream, self.conn))
                await self.tunnel.run()
            elif is_h2_websocket(self.head):
                self.tunnel = WebSocketBridge(self)
                await self.tunnel.run()
            elif self._is_buffered_route():
                self._watch_body()
                await self._forward_buffered()
            else:
                self._watch_body()
                await self._forward(None)
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

    def _watch_body(self) -> None:
        """Time the body's silences (not a WebSocket's: its stream is a session)."""
        if not self.req_ended:
            self._body.watch()

    def _is_buffered_route(self) -> bool:
        if self.head.method != b"POST" or provider_for(self.path.decode("latin-1")) is None:
            return False
        ctype = header_value(self.head.headers, b"content-type") or b""
        mime = ctype.partition(b";")[0].strip().lower()
        return mime == b"application/json" or mime.endswith(b"+json")

    async def _serve_local(self, handler) -> None:  # type: ignore[no-untyped-def]
        try:
            body = await self._read_body(LOCAL_BODY_LIMIT)
        except BodyTooLarge:
            self._too_large(LOCAL_BODY_LIMIT, "local routes take")
            return
        target = self.head.target
        request = LocalRequest(
            method=self.head.method.decode("latin-1").upper(),
            path=self.path.decode("latin-1"),
            query=target.partition(b"?")[2].decode("latin-1"),
            headers=tuple(self.head.headers),
            body=body,
            client_ip=self.conn.client_ip,
        )
        self._answer(await handler(request))

    async def _forward_buffered(self) -> None:
        limit = self.app.config.max_body_bytes
        declared = header_value(self.head.headers, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            self._too_large(limit, "--max-body-bytes is")
            return
        try:
            body = await self._read_body(limit)
        except BodyTooLarge:
            self._too_large(limit, "--max-body-bytes is")
            return
        try:
            decision = await self.app.transform_request(self, body)
        except DecodedTooLarge:
            self._too_large(limit, "--max-body-bytes is")
            return
        self.drop_request_headers = decision.drop_headers
        self.retrieval = decision.retrieval
        if decision.retrieval is not None and decision.streamed:
            self.stream_retrieval = retrieval_loop.StreamRetrieval(decision.retrieval)
        await self._forward(decision.body)

    def _too_large(self, limit: int, bound: str) -> None:
        self.conn.must_close = True  # the unread body must not be parsed as a request
        self.fail(413, "request_too_large", f"request body too large ({bound} {limit} bytes)")

    async def _read_body(self, limit: int) -> bytes:
        self._limit = limit
        if self._pending_bytes > limit:
            raise BodyTooLarge
        self._block_client(False)  # held back while the route was undecided; read on now
        if not self.req_ended:
            self.conn.send_continue()
            self._body_waiter = self.app.loop.create_future()
            await self._body_waiter
        body = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        return body

    async def _forward(self, body: bytes | None) -> None:
        """Send the request upstream and relay the answer. ``body`` None means stream it."""
        for attempt in range(MAX_TRIES):
            try:
                upstream, reused = await self.app.pool.acquire()
            except ConnectTimeout as exc:
                self.fail(504, "upstream_connect_timeout", str(exc))
                return
            except ConnectError as exc:
                self.fail(502, "upstream_connect_error", str(exc))
                return
            if self.client_gone:
                self.app.pool.discard(upstream)
                raise ClientGone
            outcome = await self._exchange_with(upstream, body)
            if outcome is Outcome.FOLLOW_UP and body is not None:
                await self._continue_stream(body)
                return
            if outcome is Outcome.OK:
                if self.retrieval is not None and self.stream_retrieval is None and body:
                    await self._answer_held(body)
                elif self.stream_retrieval is not None and self.retrieval is not None:
                    answer = self.stream_retrieval.stream.follow_up_response()
                    await retrieval_loop.remember_mixed(self, self.retrieval, answer)
                return
            replayable = body is not None or self._replay is not None
            retry_ok = self.failure_retryable or (reused and attempt == 0)
            if outcome is Outcome.FAILED and retry_ok and replayable and not self.response_started:
                # A pooled socket the origin closed while idle, or an HTTP/2 stream it
                # refused or never processed (GOAWAY): nothing was answered and the request
                # is still in hand, so one more try is safe.
                self.upstream = None
                continue
            break
        if self.client_gone:
            raise ClientGone
        if self.response_started:
            self.conn.abort()  # never let a cut-short response look complete
        elif outcome is Outcome.TIMEOUT:
            self.fail(
                504,
                "upstream_timeout",
                f"no response from upstream within {self.app.config.upstream_timeout:g}s",
            )
        else:
            self.fail(502, "upstream_error", self.failure or "upstream failed")

    async def _exchange_with(self, upstream: Upstream, body: bytes | None) -> Outcome:
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
                self._start_streaming(upstream)
        finally:
            upstream.uncork()
        self.last_progress = time.perf_counter()
        self._arm_timer()
        return await self._done

    def upstream_headers(
        self, content_length: int | None, upgrade: bool = False
    ) -> list[tuple[bytes, bytes]]:
        cfg = self.app.config
        return upstream_request_headers(
            self.head,
            client_ip=self.conn.client_ip,
            scheme=self.conn.scheme,
            upstream_authority=self.app.upstream_authority,
            rewrite_host=cfg.rewrite_host,
            request_id=self.request_id,
            content_length=content_length,
            drop=self.drop_request_headers,
            upgrade=upgrade,
        )

    @property
    def upstream_target(self) -> bytes:
        return upstream_target(self.app.upstream_base, self.head.target)

    async def _continue_stream(self, body: bytes) -> None:
        """Serve the held headroom_retrieve calls and continue the client's stream with the
        follow-up answer, as many rounds as the model needs (bounded)."""
        stream = self.stream_retrieval
        assert stream is not None and self.retrieval is not None
        message: str | None = None
        for _ in range(retrieval_loop.MAX_ROUNDS):
            results = await retrieval_loop.lookup_all(self, stream.stream.calls)
            answer = stream.stream.follow_up_response()
            body = follow_up(self.retrieval, body, answer, results)
            stream.next_round()
            self._release_upstream()
            try:
                upstream, _ = await self.app.pool.acquire()
            except (ConnectError, ConnectTimeout) as exc:
                message = f"follow-up for headroom_retrieve failed: {exc}"
                break
            outcome = await self._exchange_with(upstream, body)
            if outcome is Outcome.OK:
                answer = stream.stream.follow_up_response()
                await retrieval_loop.remember_mixed(self, self.retrieval, answer)
                return
            if outcome is not Outcome.FOLLOW_UP:
                message = stream.error or self.failure or f"follow-up {outcome.value}"
                break
        else:
            message = None  # rounds used up: end the message as it stands
        if self.client_gone:
            raise ClientGone
        self.relay_body(stream.stream.close_events(message or stream.error))
        self.conn.send_end()
        self.response_done = True

    def _release_upstream(self) -> None:
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            self.app.pool.release(upstream)

    async def _answer_held(self, body: bytes) -> None:
        """Serve the model's retrieval calls, then relay the final answer in one piece."""
        head, chunks = self.held
        assert head is not None and self.retrieval is not None
        try:
            head, raw = await retrieval_loop.complete(
                self, self.retrieval, body, head, b"".join(chunks)
            )
        except (ConnectError, ConnectTimeout, ConnectionError, TimeoutError, ValueError) as exc:
            self.fail(502, "retrieval_failed", f"answering headroom_retrieve failed: {exc}")
            return
        self.upstream_status = head.status
        self.conn.cork()
        try:
            self.relay_head(head)
            if raw and self.head.method != b"HEAD":
                self.conn.send_body(raw)
                self.bytes_out += len(raw)
            self.conn.send_end()
        finally:
            self.conn.uncork()
        self.response_done = True

    def _start_streaming(self, upstream: Upstream) -> None:
        self.streaming = True
        self._limit = None
        if self._replay is not None and not self._pending:
            self._pending = list(self._replay)  # a retry: what the first try already sent
        elif self._replay is not None:
            self._remember(self._pending)
        for chunk in self._pending:
            upstream.send_body(chunk)
        self._pending.clear()
        self._pending_bytes = 0
        self._body.release()  # streamed from here on: nothing is held for the budget
        if self.req_ended:
            upstream.send_end(self.req_trailers)
        else:
            self.conn.send_continue()
            if upstream.write_paused:
                self._block_client(True)
            else:
                self._block_client(False)

    def _remember(self, chunks: list[bytes]) -> None:
        """Keep the start of a streamed body, so a request the origin never processed can
        be sent again; past ``REPLAY_LIMIT`` the body is no longer replayable."""
        assert self._replay is not None
        self._replay.extend(chunks)
        self._replay_bytes += sum(len(c) for c in chunks)
        if self._replay_bytes > REPLAY_LIMIT:
            self._replay = None

    # ================================================================ client callbacks

    def set_body_sink(self, sink: Callable[[bytes], None]) -> None:
        """From now on the client's body bytes go to ``sink`` (a WebSocket bridge)."""
        self._body_sink = sink

    def on_body(self, data: bytes) -> None:
        if self._body_sink is not None:
            self._body_sink(data)
            return
        self.bytes_in += len(data)
        self.last_progress = time.perf_counter()
        if self.streaming:
            upstream = self.upstream
            if upstream is not None:
                upstream.send_body(data)
            if self._replay is not None:
                self._remember([data])
            return
        self._pending.append(data)
        self._pending_bytes += len(data)
        self._body.received(len(data))
        limit = self._limit
        if limit is not None and self._pending_bytes > limit:
            self._block_client(True)
            waiter = self._body_waiter
            if waiter is not None and not waiter.done():
                waiter.set_exception(BodyTooLarge())
        elif limit is None and self._pending_bytes > MAX_PENDING_BODY:
            self._block_client(True)  # upstream not attached yet: hold the client back

    def on_end(self, trailers: list[tuple[bytes, bytes]]) -> None:
        if self._body_sink is not None and self.tunnel is not None:
            self.tunnel.client_gone()  # the client ended its stream: the session is over
            return
        self.req_ended = True
        self.req_trailers = request_trailers(trailers) if trailers else trailers
        self._body.ended()
        if self.streaming:
            if self.upstream is not None:
                self.upstream.send_end(self.req_trailers)
            return
        waiter = self._body_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

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
        now = time.perf_counter()
        self.last_progress = now
        if self.t_headers is None:
            self.t_headers = now
            self.upstream_status = head.status
        if self.stream_retrieval is not None:
            self.stream_retrieval.on_head(self, head)
        elif self.retrieval is not None:
            self.held = (head, [])
        else:
            self.relay_head(head)

    def relay_head(self, head: ResponseHead) -> None:
        headers, self.upstream_request_id = client_response_headers(
            head, request_id=self.request_id, closing=self.conn.must_close or self.app.draining
        )
        if self.app.draining:
            self.conn.must_close = True
        self._relay_trailers = header_value(head.headers, b"content-length") is None
        self.status = head.status
        self.response_started = True
        self.conn.send_head(head.status, headers, head.reason)

    def on_response_body(self, data: bytes) -> None:
        self.last_progress = time.perf_counter()
        if self.stream_retrieval is not None:
            self.stream_retrieval.on_body(self, data)
        elif self.retrieval is not None:
            self.held[1].append(data)
        else:
            self.bytes_out += len(data)
            self.conn.send_body(data)

    def relay_body(self, data: bytes) -> None:
        self.bytes_out += len(data)
        self.conn.send_body(data)

    def on_response_end(self, trailers: list[tuple[bytes, bytes]]) -> None:
        stream = self.stream_retrieval
        if stream is not None and stream.wants_follow_up():
            self._resolve(Outcome.FOLLOW_UP)
            return
        if stream is not None and stream.round and stream.error is not None:
            self._resolve(Outcome.FAILED)  # a follow-up went wrong: the stream ends with an error
            return
        if stream is not None or self.retrieval is None:
            self.conn.send_end(trailers if self._relay_trailers else None)
            self.response_done = True
        self._resolve(Outcome.OK)

    def on_upstream_error(self, message: str, retryable: bool = False) -> None:
        self.failure = message
        self.failure_retryable = retryable
        self._resolve(Outcome.FAILED)

    def on_informational(self, event: Informational) -> None:
        """1xx from the upstream (100, 102, 103): the client gets the final answer only;
        the proxy answers 100-continue itself."""

    def on_response_batch(self, start: bool) -> None:
        if start:
            self.conn.cork()
        else:
            self.conn.uncork()

    def on_upstream_writable(self, writable: bool) -> None:
        if self.streaming and not self.req_ended:
            self._block_client(not writable)

    # ================================================================ helpers

    def _resolve(self, outcome: Outcome) -> None:
        done = self._done
        if done is not None and not done.done():
            done.set_result(outcome)

    def set_client_blocked(self, block: bool) -> None:
        self._block_client(block)

    def _block_client(self, block: bool) -> None:
        if block and not self._blocked_client:
            self._blocked_client = True
            self.conn.block_reading()
        elif not block and self._blocked_client:
            self._blocked_client = False
            self.conn.unblock_reading()

    def _arm_timer(self) -> None:
        timeout = self.app.config.upstream_timeout
        self._timer = self.app.loop.call_at(self.app.loop.time() + timeout, self._check_timeout)

    def _check_timeout(self) -> None:
        """Upstream timeout = no progress for ``--upstream-timeout``: until the response
        headers, and between body chunks, so a stream that keeps talking is never cut."""
        self._timer = None
        if self._done is None or self._done.done():
            return
        idle = time.perf_counter() - self.last_progress
        timeout = self.app.config.upstream_timeout
        if idle < timeout:
            self._timer = self.app.loop.call_later(timeout - idle, self._check_timeout)
            return
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.abort()
        self.failure = "upstream timeout"
        self._resolve(Outcome.TIMEOUT)

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
        log = self.app.log
        log.warning(
            "proxy_error",
            request_id=self.request_id.decode(),
            status=status,
            type=error_type,
            message=message,
            path=loggable_path(self.path.decode("latin-1")),
        )
        body = orjson.dumps({"error": {"type": error_type, "message": message}})
        self._answer(LocalResponse(status, body, headers=headers))

    def _answer(self, response: LocalResponse) -> None:
        """Send a response the proxy made itself (local route or error)."""
        if self.conn.closed:
            return
        if not self.req_ended:
            self.conn.must_close = True  # unread body bytes: don't reuse the connection
        self.status = response.status
        self.response_started = True
        self.bytes_out += send_local(
            self.conn, response, self.request_id, head_only=self.head.method == b"HEAD"
        )
        self.response_done = True

    def on_protocol_error(self, status: int, error_type: str, message: str) -> None:
        """The client broke body framing mid-request: answer it if we still can and cut
        the upstream side (it must never see the rest of a smuggled message)."""
        self._give_up(status, error_type, message)

    @property
    def client_held_back(self) -> bool:
        return self._blocked_client

    def body_stalled(self, status: int) -> None:
        """The body timer fired: the client went silent mid-body (408), or the buffer
        budget stayed full for as long (503, try again soon)."""
        timeout = f"{self.app.config.body_timeout:g}s"
        if status == 503:
            self._give_up(
                503,
                "buffers_full",
                f"the proxy holds --max-buffered-bytes of request bodies; waited {timeout}",
                headers=((b"retry-after", b"1"),),
            )
        else:
            self._give_up(408, "request_timeout", f"no request body bytes for {timeout}")

    def _give_up(
        self,
        status: int,
        error_type: str,
        message: str,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        """Answer mid-request and end the exchange; the connection closes, since the rest
        of the body would otherwise be read as the next request."""
        self.conn.must_close = True
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.abort()
        self.fail(status, error_type, message, headers)
        self._stop()

    def _stop(self) -> None:
        """No more work for this exchange: free the upstream at once (well within the
        second a disconnect may take to propagate) and end the task wherever it waits —
        connecting, reading the body, compressing or relaying."""
        self.stopped = True
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.abort()
        if self._started and not self._task.done():
            self._task.cancel()

    def _finish(self) -> None:
        self._body.stop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            if self.response_done and not self.client_gone:
                self.app.pool.release(upstream)
            else:
                self.app.pool.discard(upstream)
        self._block_client(False)
        if self.response_done:
            self.conn.finish(self)
        elif not self.conn.closed:
            self.conn.abort()
        self.app.exchange_finished(self)


def send_local(
    conn: ClientStream, response: LocalResponse, request_id: bytes, *, head_only: bool
) -> int:
    """Write a complete proxy-made response in one send; returns the body bytes written."""
    closing = conn.must_close
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", response.content_type),
        (b"content-length", str(len(response.body)).encode("ascii")),
        *response.headers,
        (b"x-request-id", request_id),
    ]
    if closing:
        headers.append((b"connection", b"close"))
    written = 0
    conn.cork()
    try:
        conn.send_head(response.status, headers, _reason(response.status))
        if not head_only and response.body:
            conn.send_body(response.body)
            written = len(response.body)
        conn.send_end()
    finally:
        conn.uncork()
    return written


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""
