"""The stream-event vocabulary every protocol adapter speaks.

The HTTP/1.1 adapters (h11's events) and the HTTP/2 sessions (h2's, per stream) translate
their library's events into these and hand them on through ``to_exchange`` (request side)
and ``to_response_handler`` (response side), so the exchange layer above never knows which
wire protocol carried a request, and a message feature (trailers, informational answers)
is handed on in one place. Headers are always a list of ``(name, value)`` byte pairs with
the name lower-cased, in wire order, repeats kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

Headers = list[tuple[bytes, bytes]]


@dataclass(slots=True)
class RequestHead:
    method: bytes
    target: bytes
    headers: Headers
    http_version: bytes = b"1.1"
    # Original-case names, same order as ``headers``; forwarded so the upstream sees the
    # client's spelling.
    raw_names: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class ResponseHead:
    status: int
    headers: Headers
    reason: bytes = b""
    raw_names: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class Informational:
    """A 1xx from the upstream. 100 Continue is not relayed (the proxy answers it itself);
    101 Switching Protocols carries the headers the client must see for a WebSocket."""

    status: int
    headers: Headers = field(default_factory=list)
    raw_names: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class Body:
    # bytes-like: HTTP/1.1 hands on the fresh bytearray h11 made for the chunk (a copy of
    # each read saved); nothing writes to it afterwards.
    data: bytes


@dataclass(slots=True)
class EndBody:
    trailers: Headers = field(default_factory=list)


@dataclass(slots=True)
class ProtocolError:
    """The peer broke the protocol. ``status`` is what a server answers (400, 431, 413…)."""

    status: int
    message: str


Event = RequestHead | ResponseHead | Informational | Body | EndBody | ProtocolError


class ExchangeHandler(Protocol):
    """What a client connection or HTTP/2 stream hands its request's events to: made by the
    layer above, one per request."""

    def on_body(self, data: bytes) -> None: ...

    def on_end(self, trailers: Headers) -> None: ...

    def on_client_gone(self) -> None: ...

    def on_client_writable(self, writable: bool) -> None: ...

    def on_protocol_error(self, status: int, error_type: str, message: str) -> None: ...


class ResponseHandler(Protocol):
    """What an upstream leg (an HTTP/1.1 connection or an HTTP/2 stream) hands its response's
    events to: the exchange that sent the request."""

    def on_response_head(self, head: ResponseHead) -> None: ...

    def on_response_body(self, data: bytes) -> None: ...

    def on_response_end(self, trailers: Headers) -> None: ...

    def on_upstream_error(self, message: str, retryable: bool = False) -> None:
        """``retryable``: the origin never processed the request (safe to send again)."""
        ...

    def on_upstream_writable(self, writable: bool) -> None: ...

    def on_response_batch(self, start: bool) -> None:
        """Bracket the events of one read, so the handler can gather its writes."""
        ...

    def on_informational(self, event: Informational) -> None: ...


def to_exchange(handler: ExchangeHandler, event: Body | EndBody) -> None:
    """A request's body event, handed on the same way whichever protocol carried it."""
    if isinstance(event, Body):
        handler.on_body(event.data)
    else:
        handler.on_end(event.trailers)


def to_response_handler(handler: ResponseHandler, event: Event) -> ProtocolError | None:
    """A response event, handed on the same way whichever protocol carried it. A
    ``ProtocolError`` is returned instead: the leg that read it fails itself (and its
    handler hears of it as an upstream error)."""
    if isinstance(event, Body):
        handler.on_response_body(event.data)
    elif isinstance(event, ResponseHead):
        handler.on_response_head(event)
    elif isinstance(event, EndBody):
        handler.on_response_end(event.trailers)
    elif isinstance(event, Informational):
        handler.on_informational(event)
    elif isinstance(event, ProtocolError):
        return event
    return None
