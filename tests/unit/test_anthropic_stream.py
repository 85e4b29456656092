"""The Anthropic stream filter and the SSE framer, fed events in memory."""

from __future__ import annotations

import json

from headroom.providers.anthropic_stream import AnthropicStream
from headroom.providers.sse import SSEParser


def ev(name: str, obj: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(obj)}\n\n".encode()


def block(index: int, kind: str, **extra: object) -> bytes:
    return ev(
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": {"type": kind, **extra}},
    )


def delta(index: int, **d: object) -> bytes:
    return ev("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})


def stop(index: int) -> bytes:
    return ev("content_block_stop", {"type": "content_block_stop", "index": index})


def message_delta(reason: str, tokens: int) -> bytes:
    return ev(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": reason},
            "usage": {"output_tokens": tokens},
        },
    )


START = ev("message_start", {"type": "message_start", "message": {"id": "m"}})
STOP = ev("message_stop", {"type": "message_stop"})
KEY = "ab" * 12

ROUND_ONE = b"".join(
    [
        START,
        b": keep-alive comment\n\n",
        block(0, "thinking", thinking=""),
        delta(0, type="thinking_delta", thinking="hm"),
        delta(0, type="signature_delta", signature="c2ln"),
        stop(0),
        block(1, "tool_use", id="r1", name="headroom_retrieve", input={}),
        delta(1, type="input_json_delta", partial_json='{"hash": "'),
        delta(1, type="input_json_delta", partial_json=KEY + '"}'),
        stop(1),
        message_delta("tool_use", 5),
        STOP,
    ]
)
ROUND_TWO = b"".join(
    [
        START,
        block(0, "text", text=""),
        delta(0, type="text_delta", text="done"),
        stop(0),
        message_delta("end_turn", 7),
        STOP,
    ]
)


def run(stream: AnthropicStream, data: bytes, step: int) -> bytes:
    parser = SSEParser()
    out = b""
    for i in range(0, len(data), step):
        for event in parser.feed(data[i : i + step]):
            out += stream.feed(event)
    assert parser.pending == b""
    return out


def events(raw: bytes) -> list[tuple[str, dict]]:
    return [(e.name, json.loads(e.data)) for e in SSEParser().feed(raw) if e.data]


def test_one_message_across_rounds_with_our_call_hidden() -> None:
    for step in (1, 7, 4096):
        stream = AnthropicStream()
        first = run(stream, ROUND_ONE, step)
        assert stream.wants_follow_up
        assert [c.key for c in stream.calls] == [KEY]
        assert b"headroom_retrieve" not in first and b"message_stop" not in first
        assert first.startswith(START)  # untouched events keep their exact bytes
        content = stream.assistant_content()
        assert content[0] == {"type": "thinking", "thinking": "hm", "signature": "c2ln"}
        assert content[1]["input"] == {"hash": KEY}
        stream.start_round()
        second = events(run(stream, ROUND_TWO, step))
        names = [n for n, _ in second]
        assert "message_start" not in names
        assert second[0][1]["index"] == 1  # continues after the client's thinking block
        usage = next(p for n, p in second if n == "message_delta")["usage"]
        assert usage["output_tokens"] == 12
        assert names[-1] == "message_stop"


def test_mixed_calls_reach_the_client_without_ours() -> None:
    stream = AnthropicStream()
    data = b"".join(
        [
            START,
            block(0, "tool_use", id="r1", name="headroom_retrieve", input={}),
            stop(0),
            block(1, "tool_use", id="c1", name="Bash", input={}),
            stop(1),
            message_delta("tool_use", 3),
            STOP,
        ]
    )
    out = events(run(stream, data, 64))
    assert not stream.wants_follow_up
    starts = [p for n, p in out if n == "content_block_start"]
    assert [(s["index"], s["content_block"]["name"]) for s in starts] == [(0, "Bash")]
    assert out[-1][0] == "message_stop"


def test_sse_parser_handles_crlf_and_multiline_data() -> None:
    parser = SSEParser()
    got = parser.feed(b"event: a\r\ndata: 1\r\ndata: 2\r\n\r\ndata: x\n\n")
    assert [(e.name, e.data) for e in got] == [("a", "1\n2"), ("", "x")]


def chunk(delta: dict, finish: str | None = None) -> bytes:
    body = {"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def test_openai_chat_stream_hides_our_call_and_sums_usage() -> None:
    from headroom.providers.openai_stream import OpenAIChatStream

    usage = b'data: {"id":"c","choices":[],"usage":{"completion_tokens":2,"total_tokens":9}}\n\n'
    first = b"".join(
        [
            chunk({"role": "assistant", "content": "wait"}),
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "r1",
                            "type": "function",
                            "function": {"name": "headroom_retrieve", "arguments": ""},
                        }
                    ]
                }
            ),
            chunk(
                {"tool_calls": [{"index": 0, "function": {"arguments": '{"hash":"' + KEY + '"}'}}]}
            ),
            chunk({}, "tool_calls"),
            usage,
            b"data: [DONE]\n\n",
        ]
    )
    stream = OpenAIChatStream()
    out = run(stream, first, 5)
    assert out == chunk({"role": "assistant", "content": "wait"})
    assert stream.wants_follow_up and [c.key for c in stream.calls] == [KEY]
    message = stream.follow_up_response()["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["arguments"] == '{"hash":"' + KEY + '"}'
    stream.start_round()
    second = run(
        stream, chunk({"content": "ok"}) + chunk({}, "stop") + usage + b"data: [DONE]\n\n", 9
    )
    datas = [e.data for e in SSEParser().feed(second)]
    assert datas[-1] == "[DONE]"
    assert json.loads(datas[-2])["usage"] == {"completion_tokens": 4, "total_tokens": 18}


def rev(obj: dict) -> bytes:
    return f"event: {obj['type']}\ndata: {json.dumps(obj)}\n\n".encode()


def test_responses_stream_keeps_one_response_identity_and_numbering() -> None:
    from headroom.providers.responses_stream import ResponsesStream

    fc = {
        "type": "function_call",
        "call_id": "r1",
        "name": "headroom_retrieve",
        "arguments": '{"hash":"' + KEY + '"}',
    }
    msg = {"type": "message", "role": "assistant", "content": []}
    one = b"".join(
        [
            rev({"type": "response.created", "sequence_number": 0, "response": {"id": "A"}}),
            rev(
                {
                    "type": "response.output_item.added",
                    "sequence_number": 1,
                    "output_index": 0,
                    "item": fc,
                }
            ),
            rev(
                {
                    "type": "response.output_item.done",
                    "sequence_number": 2,
                    "output_index": 0,
                    "item": fc,
                }
            ),
            rev(
                {
                    "type": "response.completed",
                    "sequence_number": 3,
                    "response": {"id": "A", "output": [fc], "usage": {"output_tokens": 2}},
                }
            ),
        ]
    )
    two = b"".join(
        [
            rev({"type": "response.created", "sequence_number": 0, "response": {"id": "B"}}),
            rev(
                {
                    "type": "response.output_item.added",
                    "sequence_number": 1,
                    "output_index": 0,
                    "item": msg,
                }
            ),
            rev(
                {
                    "type": "response.output_item.done",
                    "sequence_number": 2,
                    "output_index": 0,
                    "item": msg,
                }
            ),
            rev(
                {
                    "type": "response.completed",
                    "sequence_number": 3,
                    "response": {"id": "B", "output": [msg], "usage": {"output_tokens": 3}},
                }
            ),
        ]
    )
    stream = ResponsesStream()
    first = events(run(stream, one, 11))
    assert [n for n, _ in first] == ["response.created"]
    assert stream.wants_follow_up and stream.follow_up_response() == {"output": [fc]}
    stream.start_round()
    second = events(run(stream, two, 11))
    assert second[0][0] == "response.output_item.added"
    seqs = [p["sequence_number"] for _, p in first + second]
    assert seqs == list(range(len(seqs))), "one gap-free numbering across rounds"
    done = second[-1][1]["response"]
    assert done["id"] == "A" and done["output"] == [msg]
    assert done["usage"]["output_tokens"] == 5
