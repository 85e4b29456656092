"""The declared seams of the proxy layer: what each part may ask of the others.

A leaf: it imports only lower layers, so the exchange, its flows (compression, retrieval,
tunnels) and the app all depend on these Protocols instead of on each other's classes, and
no import circle can form between them. A new collaborator gets the narrowest seam that
serves it; a field it needs and the seam lacks is added here, in one place, on purpose.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from headroom.config import Config
from headroom.log import Logger
from headroom.protocol.events import RequestHead, ResponseHead
from headroom.providers.base import Provider
from headroom.telemetry.stats import Stats

if TYPE_CHECKING:
    from headroom.ccr.store import CCRStore
    from headroom.learning.learner import Learner
    from headroom.protocol.pool import UpstreamPool
    from headroom.proxy.buffering import BufferBudget
    from headroom.proxy.local import LocalHandler
    from headroom.proxy.origins import Origin, Origins
    from headroom.proxy.round_ledger import RoundLedger
    from headroom.proxy.turns import TurnGate

Pairs = list[tuple[bytes, bytes]]


class Outcome(enum.Enum):
    """How one upstream round ended, as the exchange's control flow sees it."""

    OK = "ok"  # the response ended cleanly
    FAILED = "failed"  # the upstream broke (``failure`` says how)
    FOLLOW_UP = "follow_up"  # a streamed answer holds headroom_retrieve calls to serve
    TIMEOUT = "timeout"  # no progress within --upstream-timeout


class ClientGone(Exception):
    """The client left: the flow stops wherever it is (nothing to answer)."""


class BodyTooLarge(Exception):
    """The body passed the flow's limit while being read (413)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What compression decided for one buffered body; the exchange applies it."""

    body: bytes | bytearray
    drop_headers: frozenset[bytes] = frozenset()  # framing the new body no longer has
    retrieval: Provider | None = None  # markers went out: serve headroom_retrieve here
    streamed: bool = False  # ...and the answer is an SSE stream the proxy must follow
    tokens_saved: int = 0  # estimated tokens compression kept out of the body
    context: str = ""  # the client's history's last words, before restores (``providers.rounds``)


@dataclass(slots=True)
class Facts:
    """What the access log says of one exchange; filled in as it happens."""

    start: float  # perf_counter at the request head
    t_headers: float | None = None  # ... at the upstream's response head
    upstream_status: int | None = None
    upstream_request_id: bytes | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    stream_complete: bool = False  # the last event of a streamed answer went out


class ResponseSink(Protocol):
    """Where an upstream answer goes. The exchange relays by default; the retrieval flows
    install sinks that hold the answer or follow its stream."""

    def on_head(self, ex: ExchangeView, head: ResponseHead) -> None: ...

    def on_body(self, ex: ExchangeView, data: bytes) -> None: ...

    def on_end(self, ex: ExchangeView, trailers: Pairs) -> Outcome: ...


class ClientStream(Protocol):
    """One request's client side: an HTTP/1.1 connection or an HTTP/2 stream."""

    must_close: bool

    @property
    def client_ip(self) -> str: ...

    @property
    def scheme(self) -> str: ...

    @property
    def closed(self) -> bool: ...

    def send_continue(self) -> None: ...

    def send_head(self, status: int, headers: Pairs, reason: bytes = b"") -> None: ...

    def send_body(self, data: bytes | bytearray) -> None: ...

    def send_end(self, trailers: Pairs | None = None) -> None: ...

    def cork(self) -> None: ...

    def uncork(self) -> None: ...

    def block_reading(self) -> None: ...

    def unblock_reading(self) -> None: ...

    def finish(self, exchange: Any) -> None: ...

    def abort(self) -> None: ...


class UpgradableStream(ClientStream, Protocol):
    """An HTTP/1.1 client connection, which can become a byte tunnel (WebSocket)."""

    def accept_upgrade(self, headers: Pairs, sink: Callable[[bytes], None]) -> None: ...

    def write_raw(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class Routes(Protocol):
    def match(self, path: bytes) -> LocalHandler | None: ...


class Services(Protocol):
    """What an exchange and its flows use of the process: configuration, the upstreams,
    the store, counters and the loop. ``ProxyApp`` is the one implementation."""

    config: Config
    log: Logger
    loop: asyncio.AbstractEventLoop
    stats: Stats
    origins: Origins
    store: CCRStore | None
    learner: Learner | None
    rounds: RoundLedger | None
    budget: BufferBudget
    turns: TurnGate
    draining: bool
    transform_request: Callable[[Requested, bytes | bytearray], Awaitable[Decision]]

    @property
    def routes(self) -> Routes: ...

    def exchange_finished(self, exchange: Any) -> None: ...


class Requested(Protocol):
    """The request an exchange serves, as compression reads it."""

    @property
    def head(self) -> RequestHead: ...

    @property
    def path(self) -> bytes: ...

    @property
    def request_id(self) -> bytes: ...


class ClientBodyView(Protocol):
    """What a flow uses of its request's body (``request_body.ClientBody``): a WebSocket
    bridge takes the bytes as they come (``sink``) and holds the client back."""

    sink: Callable[[bytes], None] | None

    def hold_client(self, block: bool) -> None: ...


class ExchangeView(Requested, Protocol):
    """What a flow (retrieval, tunnel, WebSocket bridge) uses of its exchange."""

    app: Services
    status: int
    response_started: bool
    response_done: bool
    facts: Facts
    drop_request_headers: frozenset[bytes]
    origin: Origin | None

    @property
    def conn(self) -> ClientStream: ...

    @property
    def pool(self) -> UpstreamPool: ...

    @property
    def upstream_target(self) -> bytes: ...

    def upstream_headers(self, content_length: int | None, upgrade: bool = False) -> Pairs: ...

    def fail(
        self,
        status: int,
        error_type: str,
        message: str,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None: ...

    def relay_head(self, head: ResponseHead) -> None: ...

    def relay_body(self, data: bytes) -> None: ...

    def end_response(self, trailers: Pairs) -> None: ...

    @property
    def body(self) -> ClientBodyView: ...
