"""Where an upstream answer goes (``ResponseSink``s the flows install on an exchange).

The relay is the default: the answer reaches the client as it comes. A held answer is kept
whole, for the proxy to serve the model's retrieval calls before the client sees anything.
The streamed retrieval sink, which follows an SSE answer event by event, lives with the
retrieval loop (``retrieval_loop.StreamRetrieval``).
"""

from __future__ import annotations

from headroom.protocol.events import ResponseHead
from headroom.proxy.seams import ExchangeView, Outcome, Pairs


class _Relay:
    """The default sink: the answer goes to the client as it comes."""

    __slots__ = ()

    def on_head(self, ex: ExchangeView, head: ResponseHead) -> None:
        ex.relay_head(head)

    def on_body(self, ex: ExchangeView, data: bytes) -> None:
        ex.relay_body(data)

    def on_end(self, ex: ExchangeView, trailers: Pairs) -> Outcome:
        ex.end_response(trailers)
        return Outcome.OK


RELAY = _Relay()


class HeldAnswer:
    """A sink that keeps the upstream's answer (of the latest try) instead of relaying."""

    __slots__ = ("chunks", "head")

    def __init__(self) -> None:
        self.head: ResponseHead | None = None
        self.chunks: list[bytes] = []

    def on_head(self, ex: ExchangeView, head: ResponseHead) -> None:
        self.head, self.chunks = head, []

    def on_body(self, ex: ExchangeView, data: bytes) -> None:
        self.chunks.append(data)

    def on_end(self, ex: ExchangeView, trailers: Pairs) -> Outcome:
        return Outcome.OK
