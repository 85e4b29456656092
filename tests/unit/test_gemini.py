"""The Gemini adapter in memory: where its tool outputs are, how the retrieval tool is
declared, the retrieval loop's shape and the SSE stream filter."""

from __future__ import annotations

import json
from typing import Any

import pytest

from headroom.ccr.markers import find_keys
from headroom.providers.gemini import GEMINI, GEMINI_COUNT, GEMINI_STREAM, call_key
from headroom.providers.gemini_stream import GeminiStream
from headroom.providers.registry import path_label, provider_for
from headroom.providers.retrieval import (
    find_calls,
    follow_up,
    strip_calls,
    with_earlier_rounds,
)
from headroom.providers.rewrite import rewrite_request
from headroom.providers.sse import SSEParser
from headroom.transforms.pipeline import Pipeline
from tests.unit.test_providers import LOG

NEEDLE = "ERROR database connection refused at db.py:42"


def _call(name: str, args: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"functionCall": {"name": name, "args": args, **extra}}


def _answer(name: str, response: Any, **extra: Any) -> dict[str, Any]:
    return {"functionResponse": {"name": name, "response": response, **extra}}


def _contents() -> list[dict[str, Any]]:
    return [
        {"role": "user", "parts": [{"text": "why does the database fail?"}]},
        {
            "role": "model",
            "parts": [
                {"text": "thinking about it", "thought": True},
                {"text": "Let me run the tests."},
                _call("run_shell_command", {"command": "pytest -q"}),
                _call("read_file", {"path": "db.py"}, id="c2"),
            ],
        },
        {
            "role": "user",
            "parts": [
                _answer("read_file", {"output": "short"}, id="c2"),
                _answer("run_shell_command", {"output": LOG, "meta": {"stderr": [LOG]}}),
            ],
        },
    ]


def _body(**extra: Any) -> bytes:
    payload = {"contents": _contents(), "systemInstruction": {"parts": [{"text": "S" * 2000}]}}
    return json.dumps({**payload, **extra}, indent=1).encode()


def test_paths_pick_the_gemini_adapters_and_label_without_the_model() -> None:
    assert provider_for("/v1beta/models/gemini-2.5-flash:generateContent") is GEMINI
    assert provider_for("/v1/models/gemini-2.5-pro:streamGenerateContent") is GEMINI_STREAM
    assert provider_for("/v1beta/tunedModels/mine-42:countTokens") is GEMINI_COUNT
    assert provider_for("/gw/v1beta/models/x:generateContent") is GEMINI  # under a base path
    assert provider_for("/v1beta/models/x:embedContent") is None
    assert provider_for("/v1/chat/completions:generateContent") is None  # not a model path
    assert path_label("/v1beta/models/gemini-2.5-flash:generateContent") == (
        "/v1beta/models/{model}:generateContent"
    )
    assert path_label("/v1/messages") == "/v1/messages"


def test_outputs_are_the_string_leaves_of_function_responses_with_their_calls() -> None:
    found = GEMINI.find_outputs(json.loads(_body()))
    assert [o.path for o in found] == [
        ("contents", 2, "parts", 0, "functionResponse", "response", "output"),
        ("contents", 2, "parts", 1, "functionResponse", "response", "output"),
        ("contents", 2, "parts", 1, "functionResponse", "response", "meta", "stderr", 0),
    ]
    by_id, by_name, _ = found
    assert by_id.tool_name == "read_file" and "db.py" in by_id.query
    assert by_name.tool_name == "run_shell_command" and by_name.program == "pytest"
    assert "Let me run the tests." in by_name.query  # what the model said, not its thought
    assert "why does the database fail?" in by_name.query
    assert "thinking about it" not in by_name.query


def test_snake_case_spellings_and_retrieve_results_and_unpaired_responses() -> None:
    contents = [
        {"role": "user", "parts": [{"text": "go"}]},
        {"role": "model", "parts": [{"function_call": {"name": "grep", "args": {"q": "x"}}}]},
        {"parts": [{"function_response": {"name": "grep", "response": {"result": LOG}}}]},
        {"role": "user", "parts": [_answer("headroom_retrieve", {"output": LOG})]},
        {"role": "user", "parts": [_answer("orphan", {"output": LOG})]},
    ]
    found = GEMINI.find_outputs({"contents": contents})
    assert [(o.path[1], o.path[4], o.tool_name) for o in found] == [
        (2, "function_response", "grep"),
        (4, "functionResponse", "orphan"),
    ]
    assert found[0].query.startswith('{"q":"x"}')


def test_rewrite_declares_the_retrieval_tool_as_its_own_tool_and_keeps_other_bytes() -> None:
    declared = [{"functionDeclarations": [{"name": "run_shell_command"}]}]
    body = _body(tools=declared)
    result = rewrite_request(body, GEMINI, Pipeline())
    assert result.changed and result.outputs_compressed == 2
    out = json.loads(result.body)
    compressed = out["contents"][2]["parts"][1]["functionResponse"]["response"]["output"]
    assert NEEDLE in compressed and len(compressed) < len(LOG) / 3
    assert all(result.writes.get(k) is not None for k in find_keys(compressed))
    assert out["tools"][0] == declared[0]
    assert out["tools"][1]["functionDeclarations"][0]["name"] == "headroom_retrieve"
    assert json.loads(GEMINI.retrieve_tool_json) == out["tools"][1]
    assert rewrite_request(body, GEMINI, Pipeline()).body == result.body  # deterministic
    original = json.loads(body)
    out["tools"].pop()
    response = out["contents"][2]["parts"][1]["functionResponse"]["response"]
    response["output"], response["meta"]["stderr"][0] = LOG, LOG
    assert out == original
    assert rewrite_request(body, GEMINI_STREAM, Pipeline()).streams
    assert not result.streams


def test_tools_made_when_absent_and_never_declared_twice() -> None:
    out = json.loads(rewrite_request(_body(), GEMINI, Pipeline()).body)
    assert [t["functionDeclarations"][0]["name"] for t in out["tools"]] == ["headroom_retrieve"]
    already = [{"functionDeclarations": [{"name": "x"}, {"name": "headroom_retrieve"}]}]
    again = json.loads(rewrite_request(_body(tools=already), GEMINI, Pipeline()).body)
    assert again["tools"] == already
    broken = rewrite_request(_body(tools={"functionDeclarations": []}), GEMINI, Pipeline())
    assert broken.body == _body(tools={"functionDeclarations": []})
    assert broken.skipped_reason == "tools_not_a_list"


def test_count_tokens_compresses_like_the_request_it_precedes() -> None:
    bare = json.dumps({"contents": _contents()}).encode()
    counted = rewrite_request(bare, GEMINI_COUNT, Pipeline())
    assert counted.changed and "tools" not in json.loads(counted.body)  # no field for them
    inner = {"model": "models/gemini-2.5-flash", "contents": _contents()}
    wrapped = json.dumps({"generateContentRequest": inner}).encode()
    out = json.loads(rewrite_request(wrapped, GEMINI_COUNT, Pipeline()).body)
    request = out["generateContentRequest"]
    assert NEEDLE in request["contents"][2]["parts"][1]["functionResponse"]["response"]["output"]
    assert request["tools"][0]["functionDeclarations"][0]["name"] == "headroom_retrieve"
    plain = json.loads(rewrite_request(bare, GEMINI, Pipeline()).body)
    assert plain["contents"] == json.loads(counted.body)["contents"]


KEY = "ab" * 12


def _response(parts: list[Any], usage: dict[str, int] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
        ],
        "modelVersion": "gemini-2.5-flash",
    }
    if usage is not None:
        out["usageMetadata"] = usage
    return out


def test_retrieval_loop_shape_finds_answers_strips_and_merges() -> None:
    ours = _call("headroom_retrieve", {"hash": KEY}, id="r1")
    signed = {**_call("headroom_retrieve", {"hash": "zz"}), "thoughtSignature": "c2ln"}
    first = _response([{"text": "Looking."}, ours, signed], {"promptTokenCount": 10})
    calls = find_calls(GEMINI, first)
    assert [(c.call_id, c.key) for c in calls.ours] == [("r1", KEY), (call_key(signed), None)]
    assert calls.others == 0
    body = _body()
    continued = json.loads(follow_up(GEMINI, body, first, [("r1", "ORIG"), ("x", "bad hash")]))
    assert continued["contents"][:3] == json.loads(body)["contents"]
    model, user = continued["contents"][3:]
    assert model == {"role": "model", "parts": [{"text": "Looking."}, ours, signed]}
    assert user["parts"] == [
        {
            "functionResponse": {
                "name": "headroom_retrieve",
                "response": {"output": "ORIG"},
                "id": "r1",
            }
        },
        {"functionResponse": {"name": "headroom_retrieve", "response": {"output": "bad hash"}}},
    ]
    shown = strip_calls(GEMINI, first)
    assert shown["candidates"][0]["content"]["parts"] == [{"text": "Looking."}]
    final = _response([{"text": "Found it."}], {"promptTokenCount": 30, "totalTokenCount": 40})
    merged = with_earlier_rounds(GEMINI, [shown], final)
    assert merged["candidates"][0]["content"]["parts"] == [
        {"text": "Looking."},
        {"text": "Found it."},
    ]
    assert merged["usageMetadata"] == {"promptTokenCount": 40, "totalTokenCount": 40}
    assert merged["modelVersion"] == "gemini-2.5-flash"


def _sse(chunk: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n"


def _chunk(parts: list[Any], finish: bool = False, **usage: int) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = "STOP"
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "g"}


def _feed(stream: GeminiStream, *chunks: dict[str, Any]) -> list[dict[str, Any] | bytes]:
    parser = SSEParser()
    sent = b"".join(stream.feed(e) for e in parser.feed(b"".join(_sse(c) for c in chunks)))
    return [json.loads(e.data) for e in SSEParser().feed(sent)]


def test_stream_holds_a_round_that_ends_with_our_calls_and_sums_usage() -> None:
    stream = GeminiStream()
    ours = _call("headroom_retrieve", {"hash": KEY})
    seen = _feed(
        stream,
        _chunk([{"text": "Let me "}], promptTokenCount=10),
        _chunk([{"text": "look."}, ours], promptTokenCount=10),
        _chunk([], finish=True, promptTokenCount=10, candidatesTokenCount=5),
    )
    assert [c["candidates"][0]["content"]["parts"] for c in seen] == [  # type: ignore[index]
        [{"text": "Let me "}],
        [{"text": "look."}],
    ]
    assert stream.wants_follow_up and [c.key for c in stream.calls] == [KEY]
    turn = stream.follow_up_response()["candidates"][0]["content"]
    assert turn["parts"] == [{"text": "Let me "}, {"text": "look."}, ours]
    stream.start_round()
    more = _feed(
        stream, _chunk([{"text": "Found."}], True, promptTokenCount=30, candidatesTokenCount=2)
    )
    assert not stream.wants_follow_up
    [last] = more
    assert last["candidates"][0]["finishReason"] == "STOP"  # type: ignore[index]
    assert last["usageMetadata"] == {"promptTokenCount": 40, "candidatesTokenCount": 7}  # type: ignore[index]


def test_stream_bytes_are_untouched_without_our_calls_and_mixed_turns_keep_the_client_call() -> (
    None
):
    stream = GeminiStream()
    chunk = _sse(_chunk([{"text": "hi"}], True, promptTokenCount=3))
    [event] = SSEParser().feed(chunk)
    assert stream.feed(event) == chunk
    mixed = GeminiStream()
    client = _call("run_shell_command", {"command": "ls"})
    seen = _feed(mixed, _chunk([_call("headroom_retrieve", {"hash": KEY}), client], True))
    assert not mixed.wants_follow_up and mixed.other_tool_calls == 1
    assert seen[0]["candidates"][0]["content"]["parts"] == [client]  # type: ignore[index]
    assert seen[0]["candidates"][0]["finishReason"] == "STOP"  # type: ignore[index]


@pytest.mark.parametrize("message", [None, "follow-up failed"])
def test_stream_close_events_end_the_client_stream(message: str | None) -> None:
    stream = GeminiStream()
    _feed(stream, _chunk([_call("headroom_retrieve", {"hash": KEY})], True, totalTokenCount=9))
    [event] = SSEParser().feed(stream.close_events(message))
    data = json.loads(event.data)
    if message is None:
        assert data["candidates"][0]["finishReason"] == "STOP"
        assert data["usageMetadata"] == {"totalTokenCount": 9}
    else:
        assert data["error"]["message"] == message and data["error"]["code"] == 502
