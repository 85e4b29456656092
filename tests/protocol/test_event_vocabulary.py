"""Both protocols hand a message to the layer above in the same events (``events.py``): a
request's body and trailers reach the exchange alike over HTTP/1.1 and HTTP/2, and an
upstream's informational answer, head, body and trailers reach the response handler alike
from an HTTP/1.1 connection and an HTTP/2 stream. In memory: no sockets, no running loop
beyond what ``H2Upstream`` needs for its ready future."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import hpack
from hyperframe.frame import DataFrame, HeadersFrame, RstStreamFrame, SettingsFrame

from headroom.protocol.events import Informational, ResponseHead
from headroom.protocol.h2_client import H2Upstream
from headroom.protocol.h2_server import PREFACE
from headroom.protocol.upstream import UpstreamConnection
from tests.playbook.test_h2_session import _frames
from tests.protocol.memory import MemoryTransport, connect

TRAILERS = [(b"x-checksum", b"9a0364b9")]


def test_request_body_and_trailers_reach_the_exchange_alike_on_both_protocols() -> None:
    h1, _t1, h1_host, loop1 = connect()
    h1.data_received(
        b"POST /v1/upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\nx-checksum: 9a0364b9\r\n\r\n"
    )
    loop1.close()

    h2c, _t2, h2_host, loop2 = connect()
    encoder = hpack.Encoder()
    head = encoder.encode(
        [(":method", "POST"), (":path", "/v1/upload"), (":scheme", "http"), (":authority", "a")]
    )
    h2c.data_received(
        PREFACE
        + SettingsFrame(0).serialize()
        + HeadersFrame(1, head, flags=["END_HEADERS"]).serialize()
        + DataFrame(1, b"abc").serialize()
        + DataFrame(1, b"de").serialize()
        + HeadersFrame(1, encoder.encode(TRAILERS), flags=["END_HEADERS", "END_STREAM"]).serialize()
    )
    loop2.close()

    (first,), (second,) = h1_host.exchanges, h2_host.exchanges
    for exchange in (first, second):
        assert exchange.head.method == b"POST" and exchange.head.target == b"/v1/upload"
        assert b"".join(exchange.body) == b"abcde"
        assert exchange.ended and exchange.trailers == TRAILERS


@dataclass
class Recorder:
    """A response handler that writes down what it was handed, in order."""

    seen: list[tuple[str, Any]] = field(default_factory=list)

    def on_informational(self, event: Informational) -> None:
        self.seen.append(("informational", (event.status, dict(event.headers)[b"link"])))

    def on_response_head(self, head: ResponseHead) -> None:
        self.seen.append(("head", (head.status, dict(head.headers)[b"content-type"])))

    def on_response_body(self, data: bytes) -> None:
        self.seen.append(("body", bytes(data)))

    def on_response_end(self, trailers: list[tuple[bytes, bytes]]) -> None:
        self.seen.append(("end", trailers))

    def on_upstream_error(self, message: str, retryable: bool = False) -> None:
        self.seen.append(("error", message))

    def on_upstream_writable(self, writable: bool) -> None:
        pass

    def on_response_batch(self, start: bool) -> None:
        pass


EXPECTED = [
    ("informational", (103, b"</style.css>; rel=preload")),
    ("head", (200, b"text/plain")),
    ("body", b"hello"),
    ("end", TRAILERS),
]


def test_h1_upstream_response_events() -> None:
    conn = UpstreamConnection()
    conn.connection_made(MemoryTransport())  # type: ignore[arg-type]
    recorder = Recorder()
    conn.handler = recorder
    conn.send_head(b"GET", b"/x", [(b"host", b"a"), (b"te", b"trailers")])
    conn.send_end()
    conn.data_received(
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\nx-checksum: 9a0364b9\r\n\r\n"
    )
    assert recorder.seen == EXPECTED


def _h2_pair() -> tuple[H2Upstream, MemoryTransport, h2.connection.H2Connection]:
    upstream = H2Upstream(b"http", b"a", on_retire=lambda _u: None)
    transport = MemoryTransport()
    upstream.connection_made(transport)  # type: ignore[arg-type]
    origin = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding=None)
    )
    origin.initiate_connection()
    origin.receive_data(b"".join(transport.written))
    transport.written.clear()
    upstream.data_received(origin.data_to_send())
    return upstream, transport, origin


def test_h2_upstream_response_events_are_the_same() -> None:
    async def scenario() -> list[tuple[str, Any]]:
        upstream, transport, origin = _h2_pair()
        stream = upstream.open_stream()
        recorder = Recorder()
        stream.handler = recorder
        stream.send_head(b"GET", b"/x", [(b"host", b"a"), (b"te", b"trailers")])
        stream.send_end()
        origin.receive_data(b"".join(transport.written))
        sid = stream.stream_id
        origin.send_headers(sid, [(b":status", b"103"), (b"link", b"</style.css>; rel=preload")])
        origin.send_headers(sid, [(b":status", b"200"), (b"content-type", b"text/plain")])
        origin.send_data(sid, b"hello")
        origin.send_headers(sid, TRAILERS, end_stream=True)
        upstream.data_received(origin.data_to_send())
        return recorder.seen

    assert asyncio.run(scenario()) == EXPECTED


def test_an_h2_head_that_cannot_be_relayed_resets_the_stream_and_says_why() -> None:
    """h2 itself refuses CR, LF and NUL in values today; the leg checks again, because an
    HTTP/1.1 client line would split on them. The exchange must hear of the failure."""

    async def scenario() -> tuple[list[tuple[str, Any]], list[int]]:
        upstream, transport, _origin = _h2_pair()
        stream = upstream.open_stream()
        recorder = Recorder()
        stream.handler = recorder
        stream.send_head(b"GET", b"/x", [(b"host", b"a")])
        transport.written.clear()
        event = h2.events.ResponseReceived(
            stream_id=stream.stream_id, headers=[(b":status", b"200"), (b"x-note", b"a\x00b")]
        )
        upstream._dispatch(event)
        resets = [f.stream_id for f in _frames(transport.written) if isinstance(f, RstStreamFrame)]
        return recorder.seen, resets

    seen, resets = asyncio.run(scenario())
    assert seen == [("error", "upstream sent a header with CR, LF or NUL")]
    assert resets == [1]
