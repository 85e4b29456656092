"""The routing table and the flows it picks: one per request, above the exchange core.

Order matters and is the table itself: CONNECT is refused (a reverse proxy opens no
tunnels), local routes are answered here, a request no upstream takes is answered 404 (the
others are given their origin), WebSocket handshakes become tunnels, JSON POSTs
to a provider API are buffered (and may be compressed), and everything else is forwarded
as it streams. Each flow is a coroutine over the exchange; the core runs it and finishes
the exchange whatever happens.
"""

from __future__ import annotations

from typing import cast

from headroom.protocol.pool import ConnectFailed
from headroom.providers.registry import provider_for
from headroom.providers.usage import READERS
from headroom.proxy.encoding import DecodedTooLarge
from headroom.proxy.exchange import Exchange, Flow
from headroom.proxy.headers import header_value
from headroom.proxy.local import LocalHandler, LocalRequest
from headroom.proxy.origins import Unrouted
from headroom.proxy.retrieval_flow import forward_with_retrieval
from headroom.proxy.seams import BodyTooLarge, ClientGone, Outcome, UpgradableStream
from headroom.proxy.upgrade import Tunnel, has_body, is_websocket_upgrade
from headroom.proxy.usage_tap import UsageTap
from headroom.proxy.ws_bridge import WebSocketBridge, is_h2_websocket

# Bodies of requests the proxy answers itself (retrieval lookups) are small JSON.
LOCAL_BODY_LIMIT = 1 << 20
# Tries per request when the origin provably did not process it (bounded: a peer that
# refuses everything still gets an answer quickly).
MAX_TRIES = 3


def route(ex: Exchange) -> Flow:
    """The flow for this request."""
    head = ex.head
    h2_websocket = is_h2_websocket(head)  # RFC 8441: a CONNECT that is a WebSocket
    if head.method == b"CONNECT" and not h2_websocket:
        return refuse_connect
    handler = ex.app.routes.match(ex.path)
    if handler is not None:
        return lambda ex: serve_local(ex, handler)
    origin = ex.app.origins.route(ex.path, head.headers)
    if isinstance(origin, Unrouted):
        return lambda ex: refuse_unrouted(ex, origin.message)
    ex.origin = origin
    if is_websocket_upgrade(head):
        return refuse_upgrade_body if has_body(head) else tunnel
    if h2_websocket:
        return bridge
    if is_buffered_route(ex):
        return forward_buffered
    return forward_streamed


async def refuse_connect(ex: Exchange) -> None:
    # What follows a CONNECT head may be anything: the connection is not reused.
    ex.conn.must_close = True
    ex.fail(405, "method_not_allowed", "CONNECT is not served by a reverse proxy")


async def refuse_unrouted(ex: Exchange, message: str) -> None:
    if not ex.body.ended:
        ex.conn.must_close = True  # the unread body must not be parsed as a request
    ex.fail(404, "not_found", message)


async def refuse_upgrade_body(ex: Exchange) -> None:
    ex.conn.must_close = True
    ex.fail(400, "bad_request", "a WebSocket upgrade request carries no body")


async def tunnel(ex: Exchange) -> None:
    # HTTP/2 forbids Upgrade and Connection headers (h2 refuses them), so an upgrade
    # request always came on an HTTP/1.1 connection.
    ex.tunnel = Tunnel(ex, cast(UpgradableStream, ex.conn))
    await ex.tunnel.run()


async def bridge(ex: Exchange) -> None:
    ex.tunnel = WebSocketBridge(ex)
    await ex.tunnel.run()


def is_buffered_route(ex: Exchange) -> bool:
    if ex.head.method != b"POST" or provider_for(ex.path.decode("latin-1")) is None:
        return False
    ctype = header_value(ex.head.headers, b"content-type") or b""
    mime = ctype.partition(b";")[0].strip().lower()
    return mime == b"application/json" or mime.endswith(b"+json")


async def serve_local(ex: Exchange, handler: LocalHandler) -> None:
    ex.body.watch(min(declared_length(ex), LOCAL_BODY_LIMIT))
    try:
        body = await ex.body.read(LOCAL_BODY_LIMIT)
    except BodyTooLarge:
        too_large(ex, LOCAL_BODY_LIMIT, "local routes take")
        return
    head = ex.head
    request = LocalRequest(
        method=head.method.decode("latin-1").upper(),
        path=ex.path.decode("latin-1"),
        query=head.target.partition(b"?")[2].decode("latin-1"),
        headers=tuple(head.headers),
        body=bytes(body),  # at most LOCAL_BODY_LIMIT: handlers get an immutable copy
        client_ip=ex.conn.client_ip,
    )
    ex.answer(await handler(request))


async def forward_buffered(ex: Exchange) -> None:
    """Read the body whole (bounded), let compression decide, then forward."""
    limit = ex.app.config.max_body_bytes
    declared = declared_length(ex)
    if declared > limit:
        too_large(ex, limit, "--max-body-bytes is")
        return
    ex.body.watch(declared)
    provider = provider_for(ex.path.decode("latin-1"))
    if provider is not None:
        ex.stream_ends = provider.stream_ends
        ex.usage = UsageTap(provider.name) if provider.name in READERS else None
    try:
        body = await ex.body.read(limit)
        decision = await ex.app.transform_request(ex, body)
    except (BodyTooLarge, DecodedTooLarge):
        too_large(ex, limit, "--max-body-bytes is")
        return
    ex.drop_request_headers = decision.drop_headers
    if ex.usage is not None:
        ex.usage.saved = decision.tokens_saved
    if decision.retrieval is None:
        await forward(ex, decision.body)
    else:
        await forward_with_retrieval(ex, decision, forward)


async def forward_streamed(ex: Exchange) -> None:
    ex.body.watch()
    await forward(ex, None)


def declared_length(ex: Exchange) -> int:
    """The body's Content-Length (0 when absent or unreadable: counted as it comes)."""
    value = header_value(ex.head.headers, b"content-length")
    return int(value) if value is not None and value.isdigit() else 0


def too_large(ex: Exchange, limit: int, bound: str) -> None:
    ex.conn.must_close = True  # the unread body must not be parsed as a request
    ex.fail(413, "request_too_large", f"request body too large ({bound} {limit} bytes)")


async def forward(ex: Exchange, body: bytes | bytearray | None) -> Outcome | None:
    """Send the request upstream (``body`` None: stream it) with the answer going to the
    exchange's sink. Returns how the answer ended (OK, or FOLLOW_UP for a streamed
    retrieval), or None when the client was answered an error instead."""
    pool = ex.pool
    outcome = Outcome.FAILED
    for attempt in range(MAX_TRIES):
        try:
            upstream, reused = await pool.acquire()
        except ConnectFailed as exc:
            ex.fail(exc.status, exc.error_type, str(exc))
            return None
        if ex.client_gone:
            pool.discard(upstream)
            raise ClientGone
        outcome = await ex.round_trip(upstream, body)
        if outcome is Outcome.OK or (outcome is Outcome.FOLLOW_UP and body is not None):
            return outcome
        retry_ok = ex.failure_retryable or (reused and attempt == 0)
        if outcome is not Outcome.FAILED or not retry_ok or not ex.body.replayable(body):
            break
        if ex.response_started:
            break
        # A pooled socket the origin closed while idle, or an HTTP/2 stream it refused or
        # never processed (GOAWAY): nothing was answered and the request is still in
        # hand, so one more try is safe.
        ex.upstream = None
    fail_forward(ex, outcome)
    return None


def fail_forward(ex: Exchange, outcome: Outcome) -> None:
    """The request could not be completed: say why, or cut a response already started."""
    if ex.client_gone:
        raise ClientGone
    if ex.response_started:
        ex.conn.abort()  # never let a cut-short response look complete
    elif outcome is Outcome.TIMEOUT:
        timeout = ex.app.config.upstream_timeout
        ex.fail(504, "upstream_timeout", f"no response from upstream within {timeout:g}s")
    else:
        ex.fail(502, "upstream_error", ex.failure or "upstream failed")
