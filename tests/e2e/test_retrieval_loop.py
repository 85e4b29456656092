"""The retrieval loop: the model's ``headroom_retrieve`` calls never reach
the client, in non-streaming, streaming and mixed modes, for all three APIs.

Each test sends a conversation whose big log output the proxy compresses (its marker's key
is the log's content key), scripts the model to ask for that key, and checks what the SDK
saw (no trace of the tool; one message; usage summed) and what the upstream was asked (the
follow-up is the first forwarded body with the model's turn and the original appended,
every earlier byte unchanged, and valid for the API — the fake rejects broken histories).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from headroom.ccr.markers import content_key, find_keys
from tests.e2e import traffic
from tests.e2e.clients import Sent, anthropic_sync, openai_sync
from tests.support.llm_upstream import (
    LLMUpstream,
    Text,
    Thinking,
    ToolCall,
    Turn,
    error_turn,
    output_tokens,
    retrieve_call,
    text_turn,
    tool_turn,
)
from tests.support.proxy_process import ProxyProcess

pytestmark = [pytest.mark.timeout(60)]

LOG = traffic.service_log(lines=320, seed=31)
KEY = content_key(LOG.text)
FINAL = "Payments fail with card_declined on order 5521."
TASK_CHAT = "why do payments fail?"
PREFACE = "Let me look at the full log."
GONE_WORDS = ("not found", "expired", "no longer", "gone", "missing", "no original", "not stored")

CLAUDE_MESSAGES: list[dict[str, Any]] = [
    {"role": "user", "content": "why do payments fail?"},
    {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "toolu_log", "name": "Bash", "input": {}}],
    },
    {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_log", "content": LOG.text}],
    },
]
CLAUDE_TOOLS = [traffic.CLAUDE_TOOLS[0]]
CHAT = traffic.chat_body("why do payments fail?", [traffic.chat_step(0, "journalctl", LOG)])
RESPONSES = traffic.codex_body("why do payments fail?", [traffic.codex_step(0, "logs", LOG)])
RESPONSES_LOG = RESPONSES["input"][-1]["output"]
RESPONSES_KEY = content_key(RESPONSES_LOG)


def _upstream_bodies(llm: LLMUpstream, suffix: str) -> list[bytes]:
    return [bytes(r.body) for r in llm.posts(suffix)]


def _appended(first: bytes, second: bytes) -> bytes:
    """``second`` must be ``first`` with one run of bytes inserted; returns that run."""
    k = 0
    limit = min(len(first), len(second))
    while k < limit and first[k] == second[k]:
        k += 1
    tail = first[k:]
    assert second.endswith(tail), "the follow-up rewrote earlier bytes of the conversation"
    return second[k : len(second) - len(tail)]


def _carries(content: Any, original: str) -> bool:
    """A tool result (string or text blocks) holds the original, as is or JSON-escaped."""
    if isinstance(content, list):
        content = "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    text = str(content)
    return original in text or json.dumps(original)[1:-1] in text


def _answer_text(raw: bytes, stream: bool) -> str:
    """The text of an Anthropic answer, JSON or SSE."""
    if not stream:
        return "".join(b.get("text", "") for b in json.loads(raw)["content"])
    return "".join(
        d["delta"].get("text", "") for e, d in _sse_events(raw) if e == "content_block_delta"
    )


def _no_trace(*texts: str | bytes) -> None:
    for text in texts:
        raw = text.encode() if isinstance(text, str) else text
        assert b"headroom_retrieve" not in raw, "headroom_retrieve reached the client"


def _sse_events(raw: bytes) -> list[tuple[str, Any]]:
    events = []
    for frame in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, data = "", []
        for line in frame.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data.append(line[5:].strip().decode())
        if data:
            joined = "\n".join(data)
            events.append((name, joined if joined == "[DONE]" else json.loads(joined)))
    return events


# -------------------------------------------------------------------- non-streaming


def test_anthropic_json_loop(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    """What the model said in the retrieval round reaches a non-streaming client too (a
    streaming one sees it arrive), and usage counts both rounds."""
    llm.script(tool_turn(retrieve_call(KEY, "toolu_ret1"), text=PREFACE), text_turn(FINAL))
    message = anthropic_sync(proxy, Sent()).messages.create(
        model=traffic.CLAUDE_MODEL, max_tokens=512, messages=CLAUDE_MESSAGES, tools=CLAUDE_TOOLS
    )
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [
        ("text", PREFACE),
        ("text", FINAL),
    ]
    assert message.stop_reason == "end_turn"
    usages = [json.loads(bytes(a.sent))["usage"] for a in llm.answers]
    assert message.usage.output_tokens == sum(u["output_tokens"] for u in usages)
    assert message.usage.input_tokens == sum(u["input_tokens"] for u in usages)
    _no_trace(message.model_dump_json())
    first, second = _upstream_bodies(llm, "/v1/messages")
    assert KEY in find_keys(first.decode())
    assert [a.status for a in llm.answers] == [200, 200]
    added = json.loads(second)["messages"][len(CLAUDE_MESSAGES) :]
    assert added[0]["role"] == "assistant"
    assert [(b["type"], b.get("name"), b.get("input")) for b in added[0]["content"]] == [
        ("text", None, None),
        ("tool_use", "headroom_retrieve", {"hash": KEY}),
    ]
    result = added[1]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "toolu_ret1"
    assert _carries(result["content"], LOG.text)
    _appended(first, second)


def test_openai_chat_json_loop(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    llm.script(tool_turn(retrieve_call(KEY, "call_ret1"), text=PREFACE), text_turn(FINAL))
    completion = openai_sync(proxy, Sent()).chat.completions.create(**CHAT)
    assert completion.choices[0].message.content == PREFACE + FINAL  # as a stream joins it
    usages = [json.loads(bytes(a.sent))["usage"] for a in llm.answers]
    assert completion.usage is not None
    assert completion.usage.total_tokens == sum(u["total_tokens"] for u in usages)
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].finish_reason == "stop"
    _no_trace(completion.model_dump_json())
    first, second = _upstream_bodies(llm, "/v1/chat/completions")
    assert KEY in find_keys(first.decode())
    added = json.loads(second)["messages"][len(CHAT["messages"]) :]
    assert added[0]["role"] == "assistant"
    assert [c["function"]["name"] for c in added[0]["tool_calls"]] == ["headroom_retrieve"]
    assert added[1]["role"] == "tool" and added[1]["tool_call_id"] == "call_ret1"
    assert _carries(added[1]["content"], LOG.text)
    _appended(first, second)


def test_openai_responses_json_loop(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    llm.script(tool_turn(retrieve_call(RESPONSES_KEY, "call_ret1"), text=PREFACE), text_turn(FINAL))
    payload = {**RESPONSES, "stream": False}
    response = openai_sync(proxy, Sent()).responses.create(**payload)
    assert response.output_text == PREFACE + FINAL
    assert [o.type for o in response.output] == ["message", "message"]
    _no_trace(response.model_dump_json())
    first, second = _upstream_bodies(llm, "/v1/responses")
    assert RESPONSES_KEY in find_keys(first.decode())
    added = json.loads(second)["input"][len(RESPONSES["input"]) :]
    calls = [i for i in added if i["type"] == "function_call"]
    outputs = [i for i in added if i["type"] == "function_call_output"]
    assert [(c["name"], c["call_id"]) for c in calls] == [("headroom_retrieve", "call_ret1")]
    assert outputs[0]["call_id"] == "call_ret1" and _carries(outputs[0]["output"], RESPONSES_LOG)
    _appended(first, second)


def test_miss_tells_the_model_the_content_is_gone(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    missing = "f" * 24
    llm.script(tool_turn(retrieve_call(missing, "toolu_miss")), text_turn(FINAL))
    message = anthropic_sync(proxy, Sent()).messages.create(
        model=traffic.CLAUDE_MODEL, max_tokens=512, messages=CLAUDE_MESSAGES, tools=CLAUDE_TOOLS
    )
    assert message.content[0].text == FINAL
    _, second = _upstream_bodies(llm, "/v1/messages")
    result = json.loads(second)["messages"][-1]["content"][0]
    said = json.dumps(result["content"]).lower()
    assert missing in said and any(w in said for w in GONE_WORDS), said


def test_rounds_are_bounded(proxy: ProxyProcess, llm: LLMUpstream, http: httpx.Client) -> None:
    """A model that keeps asking: at most 1 + 3 upstream calls (default --ccr-max-rounds),
    and the client still never sees the tool."""
    llm.script(*[tool_turn(retrieve_call(KEY, f"toolu_r{i}")) for i in range(6)])
    body = traffic.encode(
        {
            "model": traffic.CLAUDE_MODEL,
            "max_tokens": 512,
            "messages": CLAUDE_MESSAGES,
            "tools": CLAUDE_TOOLS,
        }
    )
    got = http.post("/v1/messages", content=body, headers={"content-type": "application/json"})
    assert 1 < len(llm.posts("/v1/messages")) <= 4
    _no_trace(got.content)


# -------------------------------------------------------------------- streaming


def test_anthropic_stream_loop_is_one_message(
    proxy: ProxyProcess, llm: LLMUpstream, http: httpx.Client
) -> None:
    gate = threading.Event()
    first_turn = Turn((Text(PREFACE), retrieve_call(KEY, "toolu_ret1")), gate=gate)
    llm.script(first_turn, text_turn(FINAL))
    body = traffic.encode(
        {
            "model": traffic.CLAUDE_MODEL,
            "max_tokens": 512,
            "messages": CLAUDE_MESSAGES,
            "tools": CLAUDE_TOOLS,
            "stream": True,
        }
    )
    raw = bytearray()
    with http.stream(
        "POST", "/v1/messages", content=body, headers={"content-type": "application/json"}
    ) as got:
        assert got.status_code == 200
        for chunk in got.iter_raw():
            raw += chunk
            if b"text_delta" in raw:
                gate.set()  # the first delta arrived while the upstream still streamed
    assert first_turn.gate_timed_out is False, "the stream was buffered, not passed through"
    _no_trace(bytes(raw))
    events = _sse_events(bytes(raw))
    kinds = [e for e, _ in events]
    assert kinds.count("message_start") == 1 and kinds.count("message_stop") == 1
    assert kinds[-1] == "message_stop"
    starts = [d for e, d in events if e == "content_block_start"]
    assert [s["index"] for s in starts] == list(range(len(starts)))
    assert all(s["content_block"]["type"] == "text" for s in starts)
    text = "".join(d["delta"]["text"] for e, d in events if e == "content_block_delta")
    assert text == PREFACE + FINAL
    deltas = [d for e, d in events if e == "message_delta"]
    assert len(deltas) == 1 and deltas[0]["delta"]["stop_reason"] == "end_turn"
    answers = [a.turn for a in llm.answers]
    assert deltas[0]["usage"]["output_tokens"] == sum(
        output_tokens(t) for t in answers if t is not None
    )
    first, second = _upstream_bodies(llm, "/v1/messages")
    assert KEY in find_keys(first.decode())
    _appended(first, second)


def traffic_tokens(turn: Turn) -> int:
    from tests.support.llm_upstream import _out_tokens

    return _out_tokens(turn)


def test_openai_chat_stream_loop(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    llm.script(
        Turn((Text(PREFACE), retrieve_call(KEY, "call_ret1"))),
        text_turn(FINAL),
    )
    payload = traffic.chat_body(
        "why do payments fail?", [traffic.chat_step(0, "logs", LOG)], stream=True
    )
    chunks = list(openai_sync(proxy, Sent()).chat.completions.create(**payload))
    _no_trace(*(c.model_dump_json() for c in chunks))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == PREFACE + FINAL
    assert not any(c.choices and c.choices[0].delta.tool_calls for c in chunks)
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    first, second = _upstream_bodies(llm, "/v1/chat/completions")
    assert KEY in find_keys(first.decode())
    _appended(first, second)


def test_openai_responses_stream_loop(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    llm.script(
        Turn((Text(PREFACE), retrieve_call(RESPONSES_KEY, "call_ret1"))),
        text_turn(FINAL),
    )
    kinds: list[str] = []
    seqs: list[int] = []
    with openai_sync(proxy, Sent()).responses.stream(
        model=RESPONSES["model"], input=RESPONSES["input"], tools=RESPONSES["tools"]
    ) as stream:
        for event in stream:
            kinds.append(event.type)
            seqs.append(event.sequence_number)
            _no_trace(event.model_dump_json())
        final = stream.get_final_response()
    assert kinds.count("response.created") == 1 and kinds.count("response.completed") == 1
    assert seqs == list(range(len(seqs))), "the client sees one gap-free numbering"
    assert not any(o.type == "function_call" for o in final.output)
    assert PREFACE in final.output_text and FINAL in final.output_text
    first, second = _upstream_bodies(llm, "/v1/responses")
    assert RESPONSES_KEY in find_keys(first.decode()), "streamed Responses body not compressed"
    _appended(first, second)


# -------------------------------------------------------------------- mixed


def test_anthropic_mixed_calls_then_history_restored(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    """Turn 1 asks for our tool and the client's Bash together: the client sees only Bash.
    Its next request (with Bash's result) reaches the upstream with the removed exchange
    put back, so the model's own turn is intact and the history valid."""
    bash = ToolCall("Bash", {"command": "grep card_declined app.log"}, "toolu_bash")
    llm.script(Turn((retrieve_call(KEY, "toolu_ret1"), bash)), text_turn(FINAL))
    client = anthropic_sync(proxy, Sent())
    message = client.messages.create(
        model=traffic.CLAUDE_MODEL, max_tokens=512, messages=CLAUDE_MESSAGES, tools=CLAUDE_TOOLS
    )
    _no_trace(message.model_dump_json())
    assert [(b.type, b.id) for b in message.content] == [("tool_use", "toolu_bash")]
    assert message.stop_reason == "tool_use"
    assert len(llm.posts("/v1/messages")) == 1
    history = [
        *CLAUDE_MESSAGES,
        {
            "role": "assistant",
            "content": [b.model_dump(exclude_none=True) for b in message.content],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_bash", "content": "no match"}
            ],
        },
    ]
    final = client.messages.create(
        model=traffic.CLAUDE_MODEL, max_tokens=512, messages=history, tools=CLAUDE_TOOLS
    )
    assert final.content[0].text == FINAL
    assert [a.status for a in llm.answers] == [200, 200], "the restored history was invalid"
    second = json.loads(llm.posts("/v1/messages")[1].body)["messages"]
    restored = second[len(CLAUDE_MESSAGES)]
    names = [b.get("name") for b in restored["content"] if b["type"] == "tool_use"]
    assert sorted(names) == ["Bash", "headroom_retrieve"]
    results = {b["tool_use_id"]: b for b in second[len(CLAUDE_MESSAGES) + 1]["content"]}
    assert set(results) == {"toolu_ret1", "toolu_bash"}
    assert _carries(results["toolu_ret1"]["content"], LOG.text)


def test_anthropic_stream_mixed_calls(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    bash = ToolCall("Bash", {"command": "grep card_declined app.log"}, "toolu_bash")
    llm.script(Turn((Text(PREFACE), retrieve_call(KEY, "toolu_ret1"), bash)))
    with anthropic_sync(proxy, Sent()).messages.stream(
        model=traffic.CLAUDE_MODEL, max_tokens=512, messages=CLAUDE_MESSAGES, tools=CLAUDE_TOOLS
    ) as stream:
        indices = []
        for event in stream:
            _no_trace(event.model_dump_json())
            if event.type == "content_block_start":
                indices.append(event.index)
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[1].id == "toolu_bash" and final.stop_reason == "tool_use"
    assert indices == [0, 1]
    assert len(llm.posts("/v1/messages")) == 1


def test_openai_chat_mixed_calls(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    shell = ToolCall("run_shell", {"command": "grep card_declined app.log"}, "call_shell")
    llm.script(Turn((retrieve_call(KEY, "call_ret1"), shell)), text_turn(FINAL))
    client = openai_sync(proxy, Sent())
    completion = client.chat.completions.create(**CHAT)
    _no_trace(completion.model_dump_json())
    message = completion.choices[0].message
    assert [c.id for c in message.tool_calls or []] == ["call_shell"]
    history = [
        *CHAT["messages"],
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": "call_shell", "content": "no match"},
    ]
    final = client.chat.completions.create(
        model=CHAT["model"], messages=history, tools=CHAT["tools"]
    )
    assert final.choices[0].message.content == FINAL
    assert [a.status for a in llm.answers] == [200, 200], "the restored history was invalid"
    second = json.loads(llm.posts("/v1/chat/completions")[1].body)["messages"]
    restored = second[len(CHAT["messages"])]
    names = sorted(c["function"]["name"] for c in restored["tool_calls"])
    assert names == ["headroom_retrieve", "run_shell"]
    replies = {m["tool_call_id"]: m for m in second if m["role"] == "tool"}
    assert _carries(replies["call_ret1"]["content"], LOG.text)


# -------------------------------------------------------------------- thinking and failures

THINK = Thinking("The log is cut; fetch all of it.\nThen answer.", traffic.signature(9))


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_follow_up_keeps_the_signed_thinking_block(
    proxy: ProxyProcess, llm: LLMUpstream, http: httpx.Client, stream: bool
) -> None:
    """With thinking on, Anthropic needs the assistant turn's thinking block, signature
    exact, in front of its tool_use; from a stream the proxy must rebuild it from deltas."""
    llm.script(Turn((THINK, retrieve_call(KEY, "toolu_ret1"))), text_turn(FINAL))
    payload = {
        "model": traffic.CLAUDE_MODEL,
        "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": CLAUDE_MESSAGES,
        "tools": CLAUDE_TOOLS,
        "stream": stream,
    }
    got = http.post(
        "/v1/messages",
        content=traffic.encode(payload),
        headers={"content-type": "application/json"},
    )
    assert got.status_code == 200
    _no_trace(got.content)
    assert _answer_text(got.content, stream) == FINAL
    _, second = _upstream_bodies(llm, "/v1/messages")
    turn = json.loads(second)["messages"][len(CLAUDE_MESSAGES)]
    assert turn["content"][0] == {
        "type": "thinking",
        "thinking": THINK.thinking,
        "signature": THINK.signature,
    }
    assert turn["content"][1]["name"] == "headroom_retrieve"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_failed_follow_up_is_an_error_not_a_leak(
    proxy: ProxyProcess, llm: LLMUpstream, http: httpx.Client, stream: bool
) -> None:
    """The follow-up gets 529: the client must learn the turn failed (an error status, or
    an SSE ``error`` event once the stream has begun) and must not get our tool call."""
    llm.script(
        Turn((Text(PREFACE), retrieve_call(KEY, "toolu_ret1"))),
        error_turn(529, "Overloaded"),
    )
    payload = {
        "model": traffic.CLAUDE_MODEL,
        "max_tokens": 512,
        "messages": CLAUDE_MESSAGES,
        "tools": CLAUDE_TOOLS,
        "stream": stream,
    }
    got = http.post(
        "/v1/messages",
        content=traffic.encode(payload),
        headers={"content-type": "application/json"},
    )
    _no_trace(got.content)
    assert len(llm.posts("/v1/messages")) == 2
    if got.status_code == 200:
        assert stream, "a failed non-streaming turn was answered 200"
        kinds = [e for e, _ in _sse_events(got.content)]
        assert "error" in kinds, "the stream ended as if the turn had succeeded"
    else:
        assert got.status_code >= 500


def test_openai_chat_stream_mixed_calls(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    """Our call comes first (index 0): the client's own call must arrive as index 0."""
    shell = ToolCall("run_shell", {"command": "grep card_declined app.log"}, "call_shell")
    llm.script(Turn((Text(PREFACE), retrieve_call(KEY, "call_ret1"), shell)))
    payload = traffic.chat_body(TASK_CHAT, [traffic.chat_step(0, "logs", LOG)], stream=True)
    chunks = list(openai_sync(proxy, Sent()).chat.completions.create(**payload))
    _no_trace(*(c.model_dump_json() for c in chunks))
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    assert {d.index for d in deltas} == {0}
    assert [d.id for d in deltas if d.id] == ["call_shell"]
    args = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert json.loads(args) == shell.arguments
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["tool_calls"]
    assert len(llm.posts("/v1/chat/completions")) == 1


def test_openai_responses_stream_mixed_calls(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    cmd = ToolCall("exec_command", {"cmd": "grep card_declined app.log"}, "call_cmd")
    llm.script(Turn((Text(PREFACE), retrieve_call(RESPONSES_KEY, "call_ret1"), cmd)))
    kinds: list[str] = []
    indices: list[int] = []
    with openai_sync(proxy, Sent()).responses.stream(
        model=RESPONSES["model"], input=RESPONSES["input"], tools=RESPONSES["tools"]
    ) as stream:
        for event in stream:
            kinds.append(event.type)
            _no_trace(event.model_dump_json())
            if event.type == "response.output_item.added":
                indices.append(event.output_index)
        final = stream.get_final_response()
    assert [(o.type, getattr(o, "call_id", None)) for o in final.output] == [
        ("message", None),
        ("function_call", "call_cmd"),
    ]
    assert indices == [0, 1]
    assert kinds.count("response.completed") == 1
    assert len(llm.posts("/v1/responses")) == 1


def _mixed_thinking_round(proxy: ProxyProcess, llm: LLMUpstream, stream: bool) -> list[Any]:
    """Thinking, our call, the client's call; then the client's next request. Returns the
    assistant turn as the upstream received it in that next request."""
    bash = ToolCall("Bash", {"command": "grep 5521 orders.log"}, "toolu_bash")
    llm.script(Turn((THINK, retrieve_call(KEY, "toolu_ret1"), bash)), text_turn(FINAL))
    client = anthropic_sync(proxy, Sent())
    params: dict[str, Any] = {
        "model": traffic.CLAUDE_MODEL,
        "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": CLAUDE_MESSAGES,
        "tools": CLAUDE_TOOLS,
    }
    if stream:
        with client.messages.stream(**params) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(**params)
    _no_trace(message.model_dump_json())
    assert [b.type for b in message.content] == ["thinking", "tool_use"]
    assert message.content[0].signature == THINK.signature
    history = [
        *CLAUDE_MESSAGES,
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": THINK.thinking, "signature": THINK.signature},
                {"type": "tool_use", "id": "toolu_bash", "name": "Bash", "input": bash.arguments},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_bash", "content": "none"}],
        },
    ]
    final = client.messages.create(**{**params, "messages": history})
    assert final.content[0].text == FINAL
    assert [a.status for a in llm.answers] == [200, 200], "the restored history was invalid"
    sent = json.loads(llm.posts("/v1/messages")[1].body)["messages"]
    results = [b["tool_use_id"] for b in sent[len(CLAUDE_MESSAGES) + 1]["content"]]
    assert sorted(results) == ["toolu_bash", "toolu_ret1"]
    return sent[len(CLAUDE_MESSAGES)]["content"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_mixed_with_thinking_restored(proxy: ProxyProcess, llm: LLMUpstream, stream: bool) -> None:
    """The client keeps thinking + its call; its next request reaches the model with our
    call put back and the signed thinking block first, signature exact."""
    turn = _mixed_thinking_round(proxy, llm, stream)
    assert turn[0] == {"type": "thinking", "thinking": THINK.thinking, "signature": THINK.signature}
    assert sorted(b.get("name") for b in turn[1:]) == ["Bash", "headroom_retrieve"]


def test_restored_turn_keeps_the_models_block_order(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    """The restored turn is the one the model wrote: our call where it stood, not moved to
    the end."""
    turn = _mixed_thinking_round(proxy, llm, False)
    assert [(b["type"], b.get("name")) for b in turn] == [
        ("thinking", None),
        ("tool_use", "headroom_retrieve"),
        ("tool_use", "Bash"),
    ]


def test_two_hashes_in_one_turn(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    """Two outputs compressed; the model asks for both at once; both come back, one result
    per call, in one user turn (Anthropic requires all results right after the calls)."""
    other = traffic.service_log(lines=320, seed=32)
    messages = [
        *CLAUDE_MESSAGES[:2],
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_log", "content": LOG.text},
            ],
        },
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_log2", "name": "Bash", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_log2", "content": other.text},
            ],
        },
    ]
    key2 = content_key(other.text)
    llm.script(
        tool_turn(retrieve_call(KEY, "toolu_a"), retrieve_call(key2, "toolu_b")),
        text_turn(FINAL),
    )
    message = anthropic_sync(proxy, Sent()).messages.create(
        model=traffic.CLAUDE_MODEL, max_tokens=512, messages=messages, tools=CLAUDE_TOOLS
    )
    assert message.content[0].text == FINAL
    first, second = _upstream_bodies(llm, "/v1/messages")
    assert {KEY, key2} <= set(find_keys(first.decode()))
    results = json.loads(second)["messages"][-1]["content"]
    by_id = {b["tool_use_id"]: b["content"] for b in results}
    assert set(by_id) == {"toolu_a", "toolu_b"}
    assert _carries(by_id["toolu_a"], LOG.text) and _carries(by_id["toolu_b"], other.text)


def test_concurrent_stream_loops_stay_apart(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    """Four streamed conversations at once, each with its own retrieval round: every client
    gets exactly its own two texts in one message."""
    n = 4
    for i in range(n):
        llm.script_for(
            f"conversation {i}:",
            Turn((Text(f"[{i}] looking. "), retrieve_call(KEY, f"toolu_c{i}"))),
            text_turn(f"[{i}] answer."),
        )
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            messages = [
                {"role": "user", "content": f"conversation {i}: why do payments fail?"},
                *CLAUDE_MESSAGES[1:],
            ]
            with anthropic_sync(proxy, Sent()).messages.stream(
                model=traffic.CLAUDE_MODEL, max_tokens=512, messages=messages, tools=CLAUDE_TOOLS
            ) as stream:
                message = stream.get_final_message()
            _no_trace(message.model_dump_json())
            results[i] = "".join(b.text for b in message.content if b.type == "text")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert results == {i: f"[{i}] looking. [{i}] answer." for i in range(n)}
    assert len(llm.posts("/v1/messages")) == 2 * n


def test_client_gone_mid_stream_stops_the_loop(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    """The client reads the first delta and leaves; the model then asks for a hash. No
    follow-up may be sent for a client that is gone (it would be paid for and thrown away)."""
    gate = threading.Event()
    llm.script(Turn((Text(PREFACE), retrieve_call(KEY, "toolu_ret1")), gate=gate), text_turn(FINAL))
    body = traffic.encode(
        {
            "model": traffic.CLAUDE_MODEL,
            "max_tokens": 512,
            "messages": CLAUDE_MESSAGES,
            "tools": CLAUDE_TOOLS,
            "stream": True,
        }
    )
    with httpx.Client(base_url=proxy.url, timeout=15, trust_env=False) as client:  # noqa: SIM117
        with client.stream(
            "POST", "/v1/messages", content=body, headers={"content-type": "application/json"}
        ) as got:
            for chunk in got.iter_raw():
                if b"text_delta" in chunk:
                    break
    gate.set()  # the client is gone; now the model finishes and asks for the hash
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline and len(llm.posts("/v1/messages")) < 2:
        time.sleep(0.05)
    assert len(llm.posts("/v1/messages")) == 1, "a follow-up was sent for a departed client"


def test_stream_loop_over_http2(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    llm.script(Turn((Text(PREFACE), retrieve_call(KEY, "toolu_ret1"))), text_turn(FINAL))
    body = traffic.encode(
        {
            "model": traffic.CLAUDE_MODEL,
            "max_tokens": 512,
            "messages": CLAUDE_MESSAGES,
            "tools": CLAUDE_TOOLS,
            "stream": True,
        }
    )
    with httpx.Client(http1=False, http2=True, trust_env=False, timeout=15) as h2:
        got = h2.post(
            proxy.url + "/v1/messages", content=body, headers={"content-type": "application/json"}
        )
    assert (got.http_version, got.status_code) == ("HTTP/2", 200)
    _no_trace(got.content)
    kinds = [e for e, _ in _sse_events(got.content)]
    assert kinds.count("message_start") == 1 and kinds[-1] == "message_stop"
    assert _answer_text(got.content, True) == PREFACE + FINAL


def test_a_numbered_read_comes_back_as_the_exact_bytes_the_client_sent(
    proxy: ProxyProcess, llm: LLMUpstream
) -> None:
    """Claude Code's Read numbers every line; the compressor works on the file without the
    numbers, but the model must get back what the client sent, numbers included (it cites
    and edits by them). A real pylint report, read as a file."""
    from pathlib import Path

    corpus = Path(__file__).parents[1] / "fidelity" / "corpus" / "a_pylint_requests.txt"
    lines = corpus.read_text(encoding="utf-8").split("\n")[:-1]
    read = "\n".join(f"{i + 1:>6}\t{line}" for i, line in enumerate(lines))
    key = content_key(read)
    messages = [
        {"role": "user", "content": "which pylint warnings are in adapters.py?"},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_read",
                    "name": "Read",
                    "input": {"file_path": "/tmp/pylint.txt"},
                }
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_read", "content": read}],
        },
    ]
    llm.script(tool_turn(retrieve_call(key, "toolu_ret1")), text_turn(FINAL))
    anthropic_sync(proxy, Sent()).messages.create(
        model=traffic.CLAUDE_MODEL, max_tokens=512, messages=messages, tools=CLAUDE_TOOLS
    )
    first, second = _upstream_bodies(llm, "/v1/messages")
    assert find_keys(first.decode()) == [key], "the marker names the numbered original"
    result = json.loads(second)["messages"][len(messages) + 1]["content"][0]
    assert result["tool_use_id"] == "toolu_ret1" and result["content"] == read
