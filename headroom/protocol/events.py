"""The stream-event vocabulary every protocol adapter speaks.

HTTP/1.1 now and HTTP/2 later translate their library's events into these, so the exchange
layer above never knows which wire protocol carried a request. Headers are always a list of
``(name, value)`` byte pairs with the name lower-cased, in wire order, repeats kept.
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
