"""Sans-IO tests of the HTTP/1.1 adapters: bytes in, events out, no sockets."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.protocol.events import Body, EndBody, ProtocolError, RequestHead, ResponseHead
from headroom.protocol.h1 import H1Client, H1Server, Reset

REQUEST = (
    b"POST /v1/messages?beta=true HTTP/1.1\r\nHost: example\r\nX-Custom: A\r\n"
    b"x-custom: b\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
)


def _collect(server: H1Server, chunks: list[bytes]) -> list:
    events: list = []
    for chunk in chunks:
        events.extend(server.receive(chunk))
    return events


def _summary(events: list) -> tuple:
    head = next(e for e in events if isinstance(e, RequestHead))
    body = b"".join(e.data for e in events if isinstance(e, Body))
    ends = sum(isinstance(e, EndBody) for e in events)
    return head.method, head.target, head.headers, head.raw_names, body, ends


def test_request_events_keep_order_repeats_and_spelling() -> None:
    method, target, headers, raw, body, ends = _summary(_collect(H1Server(), [REQUEST]))
    assert (method, target, body, ends) == (b"POST", b"/v1/messages?beta=true", b"hello world", 1)
    assert headers[:3] == [(b"host", b"example"), (b"x-custom", b"A"), (b"x-custom", b"b")]
    assert raw[:3] == [b"Host", b"X-Custom", b"x-custom"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(REQUEST) - 1), max_size=8, unique=True))
def test_any_split_of_the_input_gives_the_same_events(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(REQUEST)]
    chunks = [REQUEST[a:b] for a, b in pairwise(points)]
    assert _summary(_collect(H1Server(), chunks)) == _summary(_collect(H1Server(), [REQUEST]))


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"v" * 17000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"X-Big: " + b"v" * 20000, 431),  # incomplete and too big
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
    ],
)
def test_malformed_heads_map_to_a_status(raw: bytes, status: int) -> None:
    events = H1Server().receive(raw)
    assert isinstance(events[-1], ProtocolError)
    assert events[-1].status == status


def test_bad_chunk_framing_is_a_400() -> None:
    server = H1Server()
    events = server.receive(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    )
    assert isinstance(events[0], RequestHead)
    assert isinstance(events[-1], ProtocolError) and events[-1].status == 400


def test_client_eof_mid_body_is_a_reset() -> None:
    server = H1Server()
    server.receive(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
    with pytest.raises(Reset):
        server.receive(b"")


def test_pipelined_request_waits_for_next_cycle() -> None:
    server = H1Server()
    events = server.receive(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n")
    assert [type(e) for e in events] == [RequestHead, EndBody]
    server.send_head(200, [(b"content-length", b"0")])
    server.send_end()
    assert server.next_cycle()
    assert [e.target for e in server.events() if isinstance(e, RequestHead)] == [b"/b"]


def test_expect_100_continue_is_visible_and_answerable() -> None:
    server = H1Server()
    server.receive(
        b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
    )
    assert server.waiting_for_100_continue
    assert server.send_informational(100).startswith(b"HTTP/1.1 100")
    assert not server.waiting_for_100_continue


def test_client_leg_reads_response_and_detects_truncation() -> None:
    client = H1Client()
    client.send_head(b"GET", b"/", [(b"host", b"a")])
    client.send_end()
    events = client.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nRequest-Id: r1\r\n\r\nab")
    assert isinstance(events[0], ResponseHead) and events[0].status == 200
    assert events[0].raw_names == [b"Content-Length", b"Request-Id"]
    with pytest.raises(Reset):
        client.receive(b"")


def test_client_leg_is_reusable_only_after_a_clean_end() -> None:
    client = H1Client()
    client.send_head(b"GET", b"/", [(b"host", b"a")])
    client.send_end()
    assert not client.reusable()
    client.receive(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert client.reusable()


def test_close_delimited_response_ends_at_eof() -> None:
    client = H1Client()
    client.send_head(b"GET", b"/", [(b"host", b"a")])
    client.send_end()
    client.receive(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nstream")
    events = client.receive(b"")
    assert isinstance(events[-1], EndBody)


def test_body_bytes_are_framed_not_copied() -> None:
    """h11's ``send`` joins what it writes into new bytes: a 21 MB buffered body (or any
    bytearray h11 handed out) was copied whole to go out. The body object itself goes."""
    body = bytearray(b"x" * 100_000)
    sized = H1Client()
    sized.send_head(b"POST", b"/", [(b"host", b"a"), (b"content-length", b"100000")])
    assert [part is body for part in sized.send_body(body)] == [True]
    chunked = H1Server()
    chunked.receive(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    chunked.send_head(200, [(b"transfer-encoding", b"chunked")])
    parts = chunked.send_body(body)
    assert [bytes(p) for p in parts] == [b"186a0\r\n", body, b"\r\n"] and parts[1] is body


def _client_waiting() -> H1Client:
    client = H1Client()
    client.send_head(b"GET", b"/", [(b"host", b"x")])
    client.send_end()
    return client


def test_upstream_1xx_flood_is_502_after_32() -> None:
    """Issue 11 point 11: 100k ``102`` used to stall the loop 1.7 s; the 33rd is a 502."""
    events = _client_waiting().receive(b"HTTP/1.1 102 Processing\r\n\r\n" * 100_000)
    assert [type(e) for e in events[:-1]] == [type(events[0])] * 32
    assert isinstance(events[-1], ProtocolError) and events[-1].status == 502


def test_a_few_1xx_then_the_answer_pass() -> None:
    wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    events = _client_waiting().receive(wire + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(events[2], ResponseHead) and isinstance(events[-1], EndBody)


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 100_000 + b"\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X-F: v\r\n" * 5000 + b"Content-Length: 0\r\n\r\n",
    ],
    ids=["cl-and-te", "100kb-header", "5000-fields"],
)
def test_upstream_heads_past_the_request_bounds_are_502(head: bytes) -> None:
    events = _client_waiting().receive(head)
    assert not any(isinstance(e, ResponseHead) for e in events)
    assert isinstance(events[-1], ProtocolError) and events[-1].status == 502
