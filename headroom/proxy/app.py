"""Per-process proxy state: the host every client connection reports to.

It builds exchanges, owns the upstreams (``Origins``, a pool each) and local routes, answers
protocol errors, and counts connections and requests for drain and logs. Sockets and signals live in
``headroom.server``; this class never touches a listener.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from headroom.ccr.store import CCRStore
from headroom.config import Config
from headroom.learning.learner import Learner
from headroom.log import Logger, loggable_path, redact
from headroom.prices import load_prices
from headroom.protocol.downstream import DownstreamConnection
from headroom.protocol.events import ProtocolError, RequestHead
from headroom.protocol.h2_stream import H2Carrier, H2Stream
from headroom.providers.registry import path_label
from headroom.proxy.answers import send_local
from headroom.proxy.buffering import BufferBudget
from headroom.proxy.compression import Compression
from headroom.proxy.exchange import Exchange
from headroom.proxy.flows import route
from headroom.proxy.headers import new_request_id
from headroom.proxy.local import error_response
from headroom.proxy.origins import Origins
from headroom.proxy.retrieve import RetrieveRoutes
from headroom.proxy.round_ledger import RoundLedger
from headroom.proxy.routes import LocalRoutes
from headroom.proxy.seams import Decision, Requested
from headroom.proxy.turns import TurnGate
from headroom.proxy.usage_tap import UsageTap
from headroom.telemetry.stats import Stats

RequestTransform = Callable[[Requested, bytes | bytearray], Awaitable[Decision]]


class ProxyApp:
    def __init__(self, config: Config, log: Logger, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self.log = log
        self.loop = loop
        self.origins = Origins.from_config(config)
        self.routes = LocalRoutes(self)
        self.store: CCRStore | None = None
        self.learner: Learner | None = None
        self.retrieve: RetrieveRoutes | None = None
        self.stats = Stats()
        # Checked when the flag was parsed: a file that changed since is a runtime error.
        self.prices = load_prices(config.price_table) if config.price_table else None
        self.budget = BufferBudget(config.max_buffered_bytes, self.stats)
        self.turns = TurnGate(loop)
        self.rounds: RoundLedger | None = None  # with the store (``attach_extensions``)
        self.compression = Compression(self)
        self.transform_request: RequestTransform = self.compression
        self.h2_max_streams = config.h2_max_streams
        self.header_timeout = config.header_timeout
        self.keepalive_timeout = config.keepalive_timeout
        self.draining = False
        self.connections: set[DownstreamConnection] = set()
        self.in_flight = 0
        self.requests_total = 0
        self.on_connections_changed: Callable[[], None] = lambda: None
        self.on_exchanges_done: Callable[[], None] = lambda: None
        self._log_requests = log.enabled("info")

    # ------------------------------------------------------------------ ConnectionHost

    def connection_made(self, conn: DownstreamConnection) -> None:
        self.connections.add(conn)
        self.stats.active_connections = len(self.connections)

    def new_exchange(self, conn: DownstreamConnection | H2Stream, head: RequestHead) -> Exchange:
        self.in_flight += 1
        exchange = Exchange(self, conn, head)
        exchange.launch(route(exchange))
        self.stats.active_exchanges = self.in_flight
        return exchange

    def protocol_error(self, conn: DownstreamConnection, error: ProtocolError) -> None:
        """Malformed input: answer with its status and close, since the framing that would
        tell where the next request starts can no longer be trusted (request smuggling)."""
        # Parser messages quote the offending bytes, which may be a key or a cookie: the
        # log line and the answer both carry only the header name and the reason.
        message = redact(error.message)
        self.log.warning("bad_request", client=conn.client_ip, status=error.status, message=message)
        exchange = conn.exchange
        if exchange is not None:  # broken body framing mid-request
            exchange.on_protocol_error(error.status, _error_type(error.status), message)
            return
        conn.must_close = True
        self.stats.errors[_error_type(error.status)] += 1
        response = error_response(error.status, _error_type(error.status), message)
        send_local(conn, response, new_request_id(), head_only=False)
        conn.close()

    def log_h2_error(self, conn: H2Carrier, reason: str) -> None:
        self.log.warning("h2_connection_closed", client=conn.client_ip, reason=redact(reason))

    def connection_closed(self, conn: DownstreamConnection) -> None:
        self.connections.discard(conn)
        self.stats.active_connections = len(self.connections)
        self.on_connections_changed()

    # ------------------------------------------------------------------ exchange hooks

    def exchange_finished(self, ex: Exchange) -> None:
        self.in_flight -= 1
        stats = self.stats
        stats.active_exchanges = self.in_flight
        stats.memo_bytes, stats.memo_entries = self.compression.memo_size
        if self.rounds is not None:
            stats.ledger_bytes, stats.ledger_entries = self.rounds.bytes, len(self.rounds)
        self.requests_total += 1
        if self.draining and not self.in_flight:
            self.on_exchanges_done()  # the drain's last wait is for the last exchange
        facts = ex.facts
        total_ms = round((time.perf_counter() - facts.start) * 1000, 3)
        headers_ms = round((facts.t_headers - facts.start) * 1000, 3) if facts.t_headers else None
        path = ex.path.decode("latin-1")
        status = ex.status if ex.response_started else None
        outcome = ex.outcome
        origin = ex.origin.name if ex.origin is not None else None
        failed = facts.upstream_status is None and status in (502, 503, 504)
        self.stats.request_done(
            path_label(path),
            status,
            total_ms,
            headers_ms,
            self.routes.known(path),
            outcome,
            origin,
            failed,
        )
        if ex.usage is not None:
            self._count_usage(ex.usage)
        if not self._log_requests:
            return
        path = loggable_path(path)
        self.log.info(
            "request",
            request_id=ex.request_id.decode("latin-1"),
            method=ex.head.method.decode("latin-1"),
            path=path,
            status=status,
            upstream=origin,
            upstream_status=facts.upstream_status,
            bytes_in=facts.bytes_in,
            bytes_out=facts.bytes_out,
            time_to_headers_ms=headers_ms,
            total_ms=total_ms,
            upstream_request_id=(
                facts.upstream_request_id.decode("latin-1") if facts.upstream_request_id else None
            ),
            client=ex.conn.client_ip,
            outcome=outcome,
        )

    def _count_usage(self, tap: UsageTap) -> None:
        """What the answer said it cost, with what compression saved on its request."""
        usage = tap.end()
        if usage is not None:
            counts = (usage.input, usage.cached, usage.cache_write, usage.output)
            self.stats.tokens.add(tap.api, usage.model, counts, tap.saved)
        elif tap.unread:
            self.stats.tokens.not_read(tap.api)


def _error_type(status: int) -> str:
    return _ERROR_TYPES.get(status, "bad_request")


_ERROR_TYPES = {
    400: "bad_request",
    413: "request_too_large",
    431: "request_header_fields_too_large",
    501: "not_implemented",
    505: "http_version_not_supported",
}
