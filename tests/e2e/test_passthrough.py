"""Nothing to compress: the body reaches the upstream byte-identical, and the answer (JSON
or SSE) reaches the SDK intact and as a stream.

Bodies carry tool calls and results (so the proxy does look at them), all below the
compression threshold. The SDKs' own request bytes are captured by an HTTP event hook.
"""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from tests.e2e import traffic
from tests.e2e.clients import (
    Sent,
    anthropic_async,
    anthropic_sync,
    openai_async,
    openai_sync,
)
from tests.support.llm_upstream import LLMUpstream, Text, Thinking, ToolCall, Turn, text_turn
from tests.support.proxy_process import ProxyProcess

pytestmark = pytest.mark.timeout(60)

THINK = Thinking("The user wants the build fixed.\nCheck the logs first.", "EqkBCkYIBxgCKkA" * 8)
ANSWER = "The build fails because the cache directory is read-only."

CLAUDE_HISTORY = [
    {"role": "user", "content": "why does the build fail?"},
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Run the build.", "signature": "c2lnbmF0dXJl" * 20},
            {"type": "tool_use", "id": "toolu_01A", "name": "Bash", "input": {"command": "make"}},
        ],
    },
    {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_01A",
                "content": [{"type": "text", "text": "make: *** [all] Error 1\ncache: read-only"}],
            }
        ],
    },
]
CLAUDE_TOOLS = [
    {
        "name": "Bash",
        "description": "Run a shell command.",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
    }
]
CHAT_HISTORY = [
    {"role": "user", "content": "why does the build fail?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "run_shell", "arguments": '{"command":"make"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "make: *** [all] Error 1"},
]
RESPONSES_INPUT = [
    {"role": "user", "content": "why does the build fail?"},
    {"type": "function_call", "call_id": "call_1", "name": "exec_command", "arguments": "{}"},
    {"type": "function_call_output", "call_id": "call_1", "output": "make: *** Error 1"},
]


def _forwarded(llm: LLMUpstream, suffix: str) -> bytes:
    posts = llm.posts(suffix)
    assert len(posts) == 1, [p.target for p in posts]
    return bytes(posts[0].body)


def _full_turn() -> Turn:
    return Turn((THINK, Text(ANSWER), ToolCall("Bash", {"command": "ls -la /cache"}, "toolu_9")))


# -------------------------------------------------------------------- Anthropic SDK


def test_anthropic_sync_json(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    llm.script(_full_turn())
    sent = Sent()
    message = anthropic_sync(proxy, sent).messages.create(
        model=traffic.CLAUDE_MODEL, max_tokens=1024, messages=CLAUDE_HISTORY, tools=CLAUDE_TOOLS
    )
    assert _forwarded(llm, "/v1/messages") == sent.last
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[0].signature == THINK.signature
    assert message.content[1].text == ANSWER
    assert message.content[2].input == {"command": "ls -la /cache"}
    assert message.stop_reason == "tool_use"
    assert message._request_id and message._request_id.startswith("req_")


def test_anthropic_async_stream_arrives_as_a_stream(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    gate = threading.Event()
    llm.script(Turn((Text(ANSWER),), gate=gate))
    sent = Sent()

    async def run() -> tuple[list[str], str, str | None]:
        client = anthropic_async(proxy, sent)
        kinds: list[str] = []
        async with client.messages.stream(
            model=traffic.CLAUDE_MODEL, max_tokens=512, messages=CLAUDE_HISTORY, tools=CLAUDE_TOOLS
        ) as stream:
            async for event in stream:
                kinds.append(event.type)
                if event.type == "content_block_delta":
                    gate.set()  # the upstream holds the rest until this first delta is seen
            final = await stream.get_final_message()
        await client.close()
        return kinds, final.content[0].text, final.stop_reason

    kinds, text, stop = asyncio.run(run())
    assert llm.answers[0].turn is not None and llm.answers[0].turn.gate_timed_out is False, (
        "the first delta only reached the client after the upstream's stream ended"
    )
    assert _forwarded(llm, "/v1/messages") == sent.last
    assert kinds[0] == "message_start" and kinds.count("message_start") == 1
    assert "message_stop" in kinds
    assert text == ANSWER and stop == "end_turn"


def test_anthropic_sync_stream_thinking_and_tool_use(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    llm.script(_full_turn())
    sent = Sent()
    with anthropic_sync(proxy, sent).messages.stream(
        model=traffic.CLAUDE_MODEL, max_tokens=512, messages=CLAUDE_HISTORY, tools=CLAUDE_TOOLS
    ) as stream:
        final = stream.get_final_message()
    assert _forwarded(llm, "/v1/messages") == sent.last
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
    assert final.content[0].thinking == THINK.thinking
    assert final.content[0].signature == THINK.signature
    assert final.content[2].input == {"command": "ls -la /cache"}


# -------------------------------------------------------------------- OpenAI SDK


def test_openai_chat_sync_stream_tool_calls(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    llm.script(
        Turn(
            (
                Text("Checking two things."),
                ToolCall("run_shell", {"command": "ls /cache"}, "call_a"),
                ToolCall("run_shell", {"command": "id -u"}, "call_b"),
            )
        )
    )
    sent = Sent()
    stream = openai_sync(proxy, sent).chat.completions.create(
        model=traffic.CHAT_MODEL,
        messages=CHAT_HISTORY,
        tools=traffic.CHAT_TOOLS,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert _forwarded(llm, "/v1/chat/completions") == sent.last
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "args": ""})
            call["id"] += delta.id or ""
            call["name"] += (delta.function.name or "") if delta.function else ""
            call["args"] += (delta.function.arguments or "") if delta.function else ""
    assert text == "Checking two things."
    assert [(c["id"], c["name"], c["args"]) for c in calls.values()] == [
        ("call_a", "run_shell", '{"command":"ls /cache"}'),
        ("call_b", "run_shell", '{"command":"id -u"}'),
    ]
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0


def test_openai_chat_async_json(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    """The answer arrives intact and OpenAI's request id stays reachable (the proxy puts
    its own in ``x-request-id`` and the upstream's in ``headroom-upstream-request-id``)."""
    llm.script(text_turn(ANSWER))
    sent = Sent()

    async def run() -> tuple[object, httpx.Headers]:
        client = openai_async(proxy, sent)
        try:
            raw = await client.chat.completions.with_raw_response.create(
                model=traffic.CHAT_MODEL, messages=CHAT_HISTORY, tools=traffic.CHAT_TOOLS
            )
            return raw.parse(), raw.headers
        finally:
            await client.close()

    completion, headers = asyncio.run(run())
    assert _forwarded(llm, "/v1/chat/completions") == sent.last
    assert completion.choices[0].message.content == ANSWER  # type: ignore[attr-defined]
    upstream_ids = {headers.get("x-request-id"), headers.get("headroom-upstream-request-id")}
    assert any(i and i.startswith("req_") for i in upstream_ids), dict(headers)


def test_openai_responses_sync_stream(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    gate = threading.Event()
    llm.script(Turn((Text(ANSWER), ToolCall("exec_command", {"cmd": "ls"}, "call_z")), gate=gate))
    sent = Sent()
    kinds: list[str] = []
    with openai_sync(proxy, sent).responses.stream(
        model=traffic.CODEX_MODEL, input=RESPONSES_INPUT, tools=traffic.CODEX_TOOLS
    ) as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                gate.set()
        final = stream.get_final_response()
    assert llm.answers[0].turn is not None and llm.answers[0].turn.gate_timed_out is False
    assert _forwarded(llm, "/v1/responses") == sent.last
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.function_call_arguments.delta" in kinds
    assert final.output_text == ANSWER
    calls = [o for o in final.output if o.type == "function_call"]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [
        ("call_z", "exec_command", '{"cmd":"ls"}')
    ]


def test_openai_responses_async_json(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    llm.script(text_turn(ANSWER))
    sent = Sent()

    async def run() -> object:
        client = openai_async(proxy, sent)
        try:
            return await client.responses.create(
                model=traffic.CODEX_MODEL, input=RESPONSES_INPUT, tools=traffic.CODEX_TOOLS
            )
        finally:
            await client.close()

    response = asyncio.run(run())
    assert _forwarded(llm, "/v1/responses") == sent.last
    assert response.output_text == ANSWER  # type: ignore[attr-defined]


# -------------------------------------------------------------------- raw agent-shaped bodies


def _small_claude_code_body() -> bytes:
    steps = [
        traffic.claude_step(0, "Bash", {"command": "git status"}, traffic.small("On branch main")),
        traffic.claude_step(1, "Read", {"file_path": "/repo/a.py"}, traffic.small("     1\tx = 1")),
    ]
    return traffic.encode(traffic.claude_code_body("fix the failing test", steps))


def test_claude_code_stream_bytes_both_ways(
    proxy: ProxyProcess, llm: LLMUpstream, http: httpx.Client
) -> None:
    """Claude Code's query string, 76 KB system prompt and signed thinking: forwarded as
    sent; the SSE answer reaches the client byte for byte."""
    body = _small_claude_code_body()
    llm.script(_full_turn())
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
    with http.stream("POST", "/v1/messages?beta=true", content=body, headers=headers) as got:
        received = b"".join(got.iter_raw())
        status, ctype = got.status_code, got.headers["content-type"]
    assert status == 200 and ctype.startswith("text/event-stream")
    rec = llm.posts("/v1/messages")[0]
    assert rec.target == "/v1/messages?beta=true"
    assert bytes(rec.body) == body
    assert received == bytes(llm.answers[0].sent)


def test_codex_stream_bytes_both_ways(
    proxy: ProxyProcess, llm: LLMUpstream, http: httpx.Client
) -> None:
    steps = [traffic.codex_step(0, "ls", traffic.small("a.py\nb.py"))]
    body = traffic.encode(traffic.codex_body("list files", steps))
    llm.script(Turn((Text("two files"), ToolCall("exec_command", {"cmd": "cat a.py"}))))
    headers = {"content-type": "application/json", "accept": "text/event-stream"}
    with http.stream("POST", "/v1/responses", content=body, headers=headers) as got:
        received = b"".join(got.iter_raw())
    assert bytes(llm.posts("/v1/responses")[0].body) == body
    assert received == bytes(llm.answers[0].sent)


def test_count_tokens_small_is_untouched(
    proxy: ProxyProcess, llm: LLMUpstream, http: httpx.Client
) -> None:
    full = traffic.claude_code_body("fix it", [], stream=False)
    for key in ("stream", "max_tokens", "temperature", "metadata"):
        full.pop(key, None)
    body = traffic.encode(full)
    got = http.post(
        "/v1/messages/count_tokens?beta=true",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert got.status_code == 200 and got.json()["input_tokens"] > 0
    assert bytes(llm.posts("/v1/messages/count_tokens")[0].body) == body


def test_pretty_printed_body_untouched(
    proxy: ProxyProcess, llm: LLMUpstream, http: httpx.Client
) -> None:
    steps = [traffic.chat_step(0, "uname", traffic.small("Linux"))]
    body = traffic.encode(traffic.chat_body("which OS?", steps), pretty=True)
    got = http.post(
        "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert got.status_code == 200
    assert bytes(llm.posts("/v1/chat/completions")[0].body) == body
    assert got.content == bytes(llm.answers[0].sent)
