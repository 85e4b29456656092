"""The exchange core and its flows, scripted in memory: a fake client stream, fake
upstream legs and the real loop, no sockets."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from collections.abc import Callable

import pytest

from headroom.ccr.store import Entry
from headroom.providers.apis import ANTHROPIC
from headroom.proxy.request_body import REPLAY_LIMIT
from headroom.proxy.seams import Decision
from tests.playbook.harness import AtHead, FakeClient, FakeLeg, Playbook

JSON = (b"content-type", b"application/json")


def _ok(leg: FakeLeg) -> None:
    leg.respond(200, b"fine")


def test_a_get_is_forwarded_and_relayed() -> None:
    with Playbook() as pb:
        pb.upstream(_ok)
        pb.request(b"GET", b"/v1/models?x=1")
        ex = pb.finish()
        leg = pb.app.pool.legs[0]
        assert leg.head is not None and leg.head[:2] == (b"GET", b"/v1/models?x=1")
        assert (pb.client.status, bytes(pb.client.body), pb.client.ended) == (200, b"fine", True)
        assert ex.response_done and pb.client.finished
        assert pb.app.pool.released == [leg]


def _refused(leg: FakeLeg) -> None:
    leg.fail("stream refused (REFUSED_STREAM)", retryable=True)


def _broken(leg: FakeLeg) -> None:
    leg.fail("connection reset by peer")


def test_a_request_the_origin_never_processed_is_replayed_once() -> None:
    with Playbook() as pb:
        pb.upstream(_refused, _ok)
        body = [b"a" * 1000, b"b" * 1000]
        pb.request(b"POST", b"/echo", [(b"content-length", b"2000")], body)
        pb.finish()
        first, second = pb.app.pool.legs
        assert bytes(first.body) == bytes(second.body) == b"".join(body)
        assert pb.client.status == 200


def test_a_streamed_body_past_the_replay_limit_is_not_replayed() -> None:
    with Playbook() as pb:
        pb.upstream(_refused, _ok)
        body = [b"x" * 16384] * (REPLAY_LIMIT // 16384 + 1)
        pb.request(b"POST", b"/echo", [(b"content-length", str(16384 * len(body)).encode())], body)
        pb.finish()
        assert len(pb.app.pool.legs) == 1
        assert pb.client.status == 502
        assert json.loads(pb.client.body)["error"]["type"] == "upstream_error"


def test_goaway_mid_body_replays_what_was_sent_and_the_rest_follows() -> None:
    with Playbook() as pb:
        pb.upstream(AtHead(_refused), _ok)
        ex = pb.request(b"POST", b"/echo", [(b"content-length", b"6")], [b"abc"], end=False)
        pb.run(1)
        assert len(pb.app.pool.legs) == 2  # the first stream was refused after its head
        ex.on_body(b"def")
        ex.on_end([])
        pb.finish()
        assert bytes(pb.app.pool.legs[1].body) == b"abcdef"
        assert pb.client.status == 200


def test_a_failure_on_a_fresh_connection_is_not_retried() -> None:
    with Playbook() as pb:
        pb.upstream(_broken, _ok)
        pb.request(b"GET", b"/v1/models")
        pb.finish()
        assert len(pb.app.pool.legs) == 1 and pb.client.status == 502


def test_a_stale_pooled_connection_is_retried_once() -> None:
    with Playbook() as pb:
        pb.app.pool.reused = True
        pb.upstream(_broken, _ok)
        pb.request(b"GET", b"/v1/models")
        pb.finish()
        assert len(pb.app.pool.legs) == 2 and pb.client.status == 200


def test_connect_refused_is_502() -> None:
    with Playbook() as pb:
        pb.upstream("refuse")
        pb.request()
        pb.finish()
        error = json.loads(pb.client.body)["error"]
        assert (pb.client.status, error["type"]) == (502, "upstream_connect_error")


# ---------------------------------------------------------------- timeouts, per phase


def test_no_answer_within_the_upstream_timeout_is_504() -> None:
    with Playbook(upstream_timeout=600.0) as pb:
        pb.upstream(None)  # the upstream never answers
        pb.request()
        started = pb.now
        pb.finish()
        assert pb.client.status == 504
        assert 599.99 <= pb.now - started < 601
        assert pb.app.pool.legs[0].aborted


def test_an_answer_that_stops_mid_body_is_cut_never_completed() -> None:
    def half(leg: FakeLeg) -> None:
        leg.head_only(200, [(b"content-length", b"10")])
        leg.handler.on_response_body(b"01234")

    with Playbook(upstream_timeout=600.0) as pb:
        pb.upstream(half)
        pb.request()
        pb.finish()
        assert pb.client.status == 200 and bytes(pb.client.body) == b"01234"
        assert pb.client.aborted and not pb.client.ended


def test_a_stream_that_keeps_talking_is_never_cut() -> None:
    def trickle(leg: FakeLeg) -> None:
        leg.head_only(200, [(b"content-type", b"text/event-stream")])
        for i in range(10):  # an event every 100 s for 1000 s, timeout 600 s
            leg.loop.call_later(100 * (i + 1), leg.handler.on_response_body, b"data: x\n\n")
        leg.loop.call_later(1001, leg.handler.on_response_end, [])

    with Playbook(upstream_timeout=600.0) as pb:
        pb.upstream(trickle)
        pb.request()
        pb.finish()
        assert pb.client.ended and not pb.client.aborted
        assert pb.client.body.count(b"data: x") == 10


def test_a_body_that_stops_is_408_and_cuts_the_upstream() -> None:
    with Playbook(body_timeout=30.0) as pb:
        pb.upstream(AtHead(lambda leg: None))
        started = pb.now
        pb.request(b"POST", b"/echo", [(b"content-length", b"1000")], [b"12345"], end=False)
        pb.finish()
        assert pb.client.status == 408 and pb.client.must_close
        assert 29.99 <= pb.now - started < 31
        assert pb.app.pool.legs[0].aborted


def test_a_body_that_never_completes_is_let_go_when_its_exchange_ends() -> None:
    """A 408 frees what was held for buffering at once, even while the exchange object
    lives on (the Playbook holds it here; in the proxy a reference cycle keeps it until
    the cycle collector runs, which may be hundreds of requests later)."""
    tracemalloc.start()
    try:
        with Playbook(body_timeout=30.0) as pb:
            before = tracemalloc.get_traced_memory()[0]
            head = [JSON, (b"content-length", b"9000000")]
            pb.request(b"POST", b"/v1/messages", head, [bytes(4_000_000)], end=False)
            held = tracemalloc.get_traced_memory()[0] - before
            pb.finish()
            left = tracemalloc.get_traced_memory()[0] - before
            assert pb.client.status == 408
    finally:
        tracemalloc.stop()
    assert held > 3_900_000, held
    assert left < 500_000, left


def test_a_body_held_back_by_upstream_backpressure_is_not_timed_out() -> None:
    """Silence the proxy caused (it paused the client) is not the client's."""
    with Playbook(body_timeout=30.0, upstream_timeout=600.0) as pb:

        def slow_reader(leg: FakeLeg) -> None:
            leg.write_paused = True
            leg.handler.on_upstream_writable(False)
            leg.loop.call_later(100, leg.handler.on_upstream_writable, True)

        pb.upstream(AtHead(slow_reader))
        ex = pb.request(b"POST", b"/echo", [(b"content-length", b"10")], [b"12345"], end=False)
        pb.run(90)
        assert pb.client.status is None and pb.client.blocked == 1
        pb.run(20)  # writable again at 100 s: the client is read on
        assert pb.client.blocked == 0
        ex.on_body(b"67890")
        ex.on_end([])
        leg = pb.app.pool.legs[0]
        leg.respond(200, b"ok")
        pb.finish()
        assert pb.client.status == 200 and bytes(leg.body) == b"1234567890"


# ---------------------------------------------------------------- client and flows


def test_a_buffered_body_is_gathered_in_place_and_forwarded_without_a_copy() -> None:
    """A 21 MB body joined at its end was one 25-30 ms copy on the loop: the body grows in
    the first read's bytearray as reads come, and that object itself goes to compression
    and upstream, on a retry too."""
    seen: list[bytes | bytearray] = []

    async def record(ex: object, body: bytes | bytearray) -> Decision:
        seen.append(body)
        return Decision(body)

    with Playbook() as pb:
        pb.app.transform_request = record
        pb.upstream(_refused, _ok)
        early = [bytearray(b'{"model":"m",'), bytearray(b'"messages":')]  # before the flow
        length = (b"content-length", b"28")
        ex = pb.request(b"POST", b"/v1/messages", [JSON, length], early, end=False)
        pb.run()
        ex.on_body(bytearray(b"[1]}"))  # while the flow reads
        ex.on_end([])
        pb.finish()
        (body,) = seen
        assert body is early[0] and body == b'{"model":"m","messages":[1]}'
        first, second = pb.app.pool.legs
        assert first.sent == second.sent == [body] and all(b is body for b in second.sent)
        assert pb.client.status == 200


def test_a_client_that_leaves_during_compression_costs_no_upstream() -> None:
    started = []

    async def slow_compression(ex: object, body: bytes) -> object:
        started.append(body)
        await asyncio.sleep(100)
        raise AssertionError("compression was not cancelled")

    with Playbook() as pb:
        pb.app.transform_request = slow_compression
        json_body = b'{"model":"m","messages":[]}'
        ex = pb.request(b"POST", b"/v1/messages", [JSON, (b"content-length", b"27")], [json_body])
        pb.run(1)
        assert started == [json_body] and pb.app.stats.buffered_bytes == len(json_body)
        ex.on_client_gone()
        pb.finish()
        assert pb.app.pool.legs == [] and pb.client.status is None
        assert pb.app.stats.buffered_bytes == 0


def test_a_refused_websocket_handshake_is_relayed_and_its_socket_closed() -> None:
    with Playbook() as pb:
        pb.upstream(lambda leg: leg.respond(403, b"not for you"))
        headers = [(b"upgrade", b"websocket"), (b"connection", b"Upgrade")]
        pb.request(b"GET", b"/ws", headers)
        pb.finish()
        assert (pb.client.status, bytes(pb.client.body)) == (403, b"not for you")
        assert pb.app.pool.legs[0].aborted


KEY = "0123456789abcdef01234567"


class _Store:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def get(self, key: str) -> Entry:
        self.asked.append(key)
        return Entry(key, b"THE ORIGINAL LINES", 0.0, 0.0)


def test_held_retrieval_is_served_in_the_proxy_and_the_client_sees_the_final_answer() -> None:
    call = {
        "content": [
            {"type": "tool_use", "id": "t1", "name": "headroom_retrieve", "input": {"hash": KEY}}
        ],
        "stop_reason": "tool_use",
    }
    final = {"content": [{"type": "text", "text": "done"}], "stop_reason": "end_turn"}
    client, asked, follow_ups, counted = _retrieval_round(
        (json.dumps(call).encode(), _json_headers(call)),
        (json.dumps(final).encode(), _json_headers(final)),
        streamed=False,
    )
    assert asked == [KEY]
    assert b"THE ORIGINAL LINES" in follow_ups[0]
    assert client.status == 200
    assert json.loads(client.body) == final
    assert counted == 1


Answer = tuple[bytes, list[tuple[bytes, bytes]]]  # a body and its headers


def _retrieval_round(
    first: Answer, final: Answer, streamed: bool
) -> tuple[FakeClient, list[str], list[bytes], int]:
    """One request whose first answer asks for ``KEY`` and whose follow-up gets ``final``:
    what the client got, what the store was asked, the follow-up bodies and the retrievals
    the stats counted."""
    follow_ups: list[bytes] = []

    def answer_call(leg: FakeLeg) -> None:
        leg.respond(200, *first)

    def answer_final(leg: FakeLeg) -> None:
        follow_ups.append(bytes(leg.body))
        leg.respond(200, *final)

    request = {"model": "m", "stream": streamed, "messages": [{"role": "user", "content": "hi"}]}
    body = json.dumps(request).encode()

    async def with_markers(ex: object, got: bytes) -> Decision:
        return Decision(got, retrieval=ANTHROPIC, streamed=streamed)

    with Playbook() as pb:
        store = _Store()
        pb.app.store = store
        pb.app.transform_request = with_markers
        pb.upstream(answer_call, answer_final)
        pb.request(
            b"POST", b"/v1/messages", [JSON, (b"content-length", str(len(body)).encode())], [body]
        )
        pb.finish()
        return pb.client, store.asked, follow_ups, pb.app.stats.ccr_loop_retrievals


def _sse(*events: dict[str, object]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def _stream_of(index: int, block: dict[str, object], delta: dict[str, object]) -> list[dict]:
    return [
        {"type": "content_block_start", "index": index, "content_block": block},
        {"type": "content_block_delta", "index": index, "delta": delta},
        {"type": "content_block_stop", "index": index},
    ]


def _message(stop: str, *blocks: dict[str, object]) -> bytes:
    start = {
        "type": "message_start",
        "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                    "content": [], "stop_reason": None,
                    "usage": {"input_tokens": 9, "output_tokens": 1}},
    }  # fmt: skip
    end = [
        {"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 4}},
        {"type": "message_stop"},
    ]
    return _sse(start, *blocks, *end)


SSE = [(b"content-type", b"text/event-stream"), (b"transfer-encoding", b"chunked")]


def test_streamed_retrieval_is_served_mid_stream_and_the_client_sees_one_answer() -> None:
    """The model's text streams to the client as it comes; its headroom_retrieve call is
    served by the proxy (a follow-up request carrying the original lines) and the
    follow-up's answer continues the same stream. The client never sees the call."""
    first = _message(
        "tool_use",
        *_stream_of(0, {"type": "text", "text": ""}, {"type": "text_delta", "text": "Looking."}),
        *_stream_of(
            1,
            {"type": "tool_use", "id": "t1", "name": "headroom_retrieve", "input": {}},
            {"type": "input_json_delta", "partial_json": json.dumps({"hash": KEY})},
        ),
    )
    final = _message(
        "end_turn",
        *_stream_of(0, {"type": "text", "text": ""}, {"type": "text_delta", "text": "Found it."}),
    )
    client, asked, follow_ups, counted = _retrieval_round((first, SSE), (final, SSE), True)
    seen = bytes(client.body)
    assert asked == [KEY]
    assert b"THE ORIGINAL LINES" in follow_ups[0]
    assert client.status == 200 and client.ended
    assert b"Looking." in seen and b"Found it." in seen
    assert b"headroom_retrieve" not in seen
    assert seen.count(b"event: message_start") == 1
    assert seen.count(b"event: message_stop") == 1
    assert counted == 1


def _json_headers(payload: object) -> list[tuple[bytes, bytes]]:
    size = len(json.dumps(payload).encode())
    return [(b"content-type", b"application/json"), (b"content-length", str(size).encode())]


# ---------------------------------------------------------------- the buffer budget


def _json_post(size: int) -> tuple[list[tuple[bytes, bytes]], bytes]:
    shell = len(b'{"pad":""}')
    body = b'{"pad":"' + b"x" * (size - shell) + b'"}'
    return [JSON, (b"content-length", str(size).encode())], body


def test_a_body_waits_unread_for_room_then_goes_and_one_that_cannot_start_is_503() -> None:
    def slow(seconds: float):  # type: ignore[no-untyped-def]
        return lambda leg: leg.loop.call_later(seconds, leg.respond, 200, b"ok")

    cap = {"max_body_bytes": 100_000, "max_buffered_bytes": 100_000, "body_timeout": 30.0}
    with Playbook(**cap) as pb:
        headers, body = _json_post(60_000)
        pb.upstream(slow(10), _ok, slow(100))
        a = pb.request(b"POST", b"/v1/messages", headers, [body])
        pb.run(1)
        assert pb.app.stats.buffered_bytes == 60_000  # A's body, held while upstream answers
        b_client = FakeClient()
        b = pb.request(b"POST", b"/v1/messages", headers, [body[:1000]], end=False, client=b_client)
        pb.run(1)
        assert b_client.blocked == 1  # B does not fit beside A: it waits, unread
        pb.finish(a)
        assert pb.client.status == 200
        pb.run(0.1)
        assert b_client.blocked == 0  # A gave its bytes back: B was admitted whole
        b.on_body(body[1000:])
        b.on_end([])
        pb.finish(b)
        assert b_client.status == 200 and bytes(pb.app.pool.legs[1].body) == body
        # C arrives while D holds the budget longer than the body timeout: 503.
        d_client, c_client = FakeClient(), FakeClient()
        pb.request(b"POST", b"/v1/messages", headers, [body], client=d_client)
        pb.run(1)
        started = pb.now
        c = pb.request(b"POST", b"/v1/messages", headers, [body[:10]], end=False, client=c_client)
        pb.finish(c)
        assert c_client.status == 503 and c_client.header(b"retry-after") == b"1"
        assert 29.99 <= pb.now - started < 31


def test_partial_bodies_never_wait_for_each_other() -> None:
    """Two bodies of declared length that together pass the cap: the second is not read
    at all until the first is done, so the first always completes (counting bytes as they
    came let both stall half-read)."""
    cap = {"max_body_bytes": 100_000, "max_buffered_bytes": 100_000, "body_timeout": 30.0}
    with Playbook(**cap) as pb:
        headers, body = _json_post(60_000)
        pb.upstream(_ok, _ok)
        first, second = FakeClient(), FakeClient()
        a = pb.request(b"POST", b"/v1/messages", headers, [body[:20_000]], end=False, client=first)
        b = pb.request(b"POST", b"/v1/messages", headers, [body[:20_000]], end=False, client=second)
        pb.run(1)
        assert (first.blocked, second.blocked) == (0, 1)
        a.on_body(body[20_000:])
        a.on_end([])
        pb.finish(a)
        pb.run(0.1)
        assert second.blocked == 0
        b.on_body(body[20_000:])
        b.on_end([])
        pb.finish(b)
        assert first.status == second.status == 200
        assert pb.app.stats.buffered_bytes == 0


class _TeardownFails(FakeClient):
    def finish(self, exchange: object) -> None:
        raise ValueError("Invalid file descriptor: -1")


def test_an_exchange_is_counted_finished_even_when_its_connection_teardown_raises() -> None:
    """A drain waits for every exchange to be counted, and /stats counts it then: one that
    raised in its connection's teardown was never counted (the drain waited its whole
    second and the request was missing from the fleet's totals)."""
    with Playbook() as pb:
        pb.upstream(_ok)
        pb.request(b"GET", b"/v1/models", client=_TeardownFails())
        ex = pb.finish(limit=5.0)
        assert pb.app.finished == [ex] and ex.response_done


def _sse_in_pieces(*pieces: bytes) -> Callable[[FakeLeg], None]:
    def script(leg: FakeLeg) -> None:
        sse = [(b"content-type", b"text/event-stream")]
        leg.head_only(200, sse)
        for piece in pieces:
            leg.handler.on_response_body(piece)
        # ... and the upstream's own end of stream has not come yet

    return script


@pytest.mark.parametrize(
    ("path", "pieces", "outcome"),
    [
        (b"/v1/messages", [b"event: message_delta\ndata: {}\n\nevent: mess", b"age_stop\n"], "ok"),
        (b"/v1/chat/completions", [b'data: {"choices":[]}\n\n', b"data: [DONE]\n\n"], "ok"),
        (b"/v1/responses", [b'data: {"type":"response.completed"}\n\n'], "ok"),
        (b"/v1/messages", [b"event: content_block_delta\ndata: {}\n\n"], "client_gone"),
        # the model's own text naming the last event is not the last event
        (b"/v1/messages", [b'event: x\ndata: {"text":"event: message_stop"}\n\n'], "client_gone"),
        (b"/v1/other", [b"data: [DONE]\n\n"], "client_gone"),  # not an API the proxy knows
    ],
)
def test_a_client_that_leaves_after_the_streams_last_event_ended_normally(
    path: bytes, pieces: list[bytes], outcome: str
) -> None:
    with Playbook() as pb:
        pb.upstream(_sse_in_pieces(*pieces))
        ex = pb.request(b"POST", path, [JSON], [b"{}"])
        pb.run(1.0)
        assert pb.client.status == 200
        ex.on_client_gone()
        pb.finish(limit=5.0)
        assert ex.outcome == outcome
