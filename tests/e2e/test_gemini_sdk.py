"""The official ``google-genai`` SDK through the real proxy, and the fake Gemini API it meets.

First the fake itself (``tests.support.gemini_api``), driven by the SDK and by raw HTTP
with no proxy between: if it did not answer as Gemini does, every proxy test below would
prove nothing. Then the proxy: a request without big tool outputs reaches the upstream
byte for byte (JSON and SSE, sync and async, ``v1beta`` and ``v1``); a real program's
output in a ``functionResponse`` arrives compressed with the retrieval tool declared; the
model's ``headroom_retrieve`` call is answered by the proxy, unseen by the client, usage
summed; ``countTokens`` bodies are compressed too; the API key reaches the upstream and
never the log. The SDK's own request bytes are kept by an httpx event hook (``Sent``).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import subprocess
import threading
from typing import Any

import httpx
import orjson
import pytest
from google import genai
from google.genai import errors, types

from headroom.ccr.markers import content_key, find_keys
from tests.e2e.clients import Sent
from tests.e2e.conftest import StartProxy
from tests.e2e.splice import assert_originals_back, splice
from tests.support import gemini_api
from tests.support.llm_upstream import (
    LLMUpstream,
    Text,
    Thinking,
    ToolCall,
    Turn,
    error_turn,
    retrieve_call,
    text_turn,
    tool_turn,
)
from tests.support.prefix_cache import PrefixCache
from tests.support.proxy_process import REPO, ProxyProcess

pytestmark = pytest.mark.timeout(60)

MODEL = "gemini-2.5-flash"
API_KEY = "AIzaSyHeadroomE2E-7c1f9a2b44d0e3f1c5"
TASK = "Which commits touched the proxy's compression, and why?"
PREFACE = "Let me read the whole log first."
FINAL = "The compression changes came with the retrieval loop work."
RETRIEVE = "headroom_retrieve"
SIG = base64.b64encode(hashlib.sha256(b"gemini thought").digest() * 3).decode()
SHELL = {
    "function_declarations": [
        {
            "name": "run_shell",
            "description": "Run a shell command in the repository and return its output.",
            "parameters": {
                "type": "OBJECT",
                "properties": {"command": {"type": "STRING"}},
                "required": ["command"],
            },
        }
    ]
}


@functools.cache
def git_log() -> str:
    """``git log --stat`` of this repository, run now: real program output, as a shell tool
    returns it (trailing newline stripped, so its content key is that of the text). A
    shallow clone has too little history; then the same command's recorded output."""
    try:
        out = subprocess.run(
            ["git", "log", "--stat", "-n", "40"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    if len(out) < 20_000:
        out = (REPO / "tests/fidelity/corpus/b_git_log_stat_main.txt").read_text("utf-8")
    return out.rstrip("\n")


def client(url: str, sent: Sent, *, version: str = "v1beta", key: str = API_KEY) -> genai.Client:
    options = types.HttpOptions(
        base_url=url,
        api_version=version,
        timeout=20_000,
        httpx_client=httpx.Client(event_hooks={"request": [sent.hook]}, trust_env=False),
        httpx_async_client=httpx.AsyncClient(
            event_hooks={"request": [sent.ahook]}, trust_env=False
        ),
    )
    return genai.Client(api_key=key, http_options=options)


def history(output: str, call_id: str = "") -> list[dict[str, Any]]:
    """A user task, the model's shell call, the shell's output as the function response."""
    call: dict[str, Any] = {"name": "run_shell", "args": {"command": "git log --stat -n 40"}}
    response: dict[str, Any] = {"name": "run_shell", "response": {"output": output}}
    if call_id:
        call["id"] = response["id"] = call_id
    return [
        {"role": "user", "parts": [{"text": TASK}]},
        {"role": "model", "parts": [{"function_call": call}]},
        {"role": "user", "parts": [{"function_response": response}]},
    ]


def config(*tools: dict[str, Any], **extra: Any) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(tools=list(tools) or None, **extra)  # type: ignore[arg-type]


def bodies(llm: LLMUpstream, method: str) -> list[bytes]:
    return [bytes(r.body) for r in llm.posts(f":{method}")]


def sse_chunks(raw: bytes) -> list[dict[str, Any]]:
    frames = [f for f in raw.split(b"\r\n\r\n") if f]
    assert all(f.startswith(b"data: ") for f in frames), frames[:3]
    return [json.loads(f[6:]) for f in frames]


def final_usage(llm: LLMUpstream) -> dict[str, int]:
    """``usageMetadata`` the upstream reported, summed over every generate answer."""
    total = {"promptTokenCount": 0, "candidatesTokenCount": 0, "totalTokenCount": 0}
    for answer in llm.answers:
        sent = bytes(answer.sent)
        last = sse_chunks(sent)[-1] if answer.stream else json.loads(sent)
        for name in total:
            total[name] += last["usageMetadata"][name]
    return total


def no_trace(*dumps: str | bytes) -> None:
    for dump in dumps:
        raw = dump.encode() if isinstance(dump, str) else dump
        assert RETRIEVE.encode() not in raw, "headroom_retrieve reached the client"


def inserted(first: bytes, second: bytes) -> bytes:
    """``second`` must be ``first`` with one run of bytes inserted; returns that run."""
    k = 0
    while k < min(len(first), len(second)) and first[k] == second[k]:
        k += 1
    assert second.endswith(first[k:]), "the follow-up rewrote earlier bytes of the request"
    return second[k : len(second) - len(first) + k]


def assert_retrieval_tool(tool: Any) -> None:
    """A Tool of its own holding one declaration: ``headroom_retrieve(hash: string)``."""
    assert isinstance(tool, dict) and list(tool) == ["functionDeclarations"], tool
    (decl,) = tool["functionDeclarations"]
    assert decl["name"] == RETRIEVE and decl.get("description")
    schema = decl["parameters"]
    assert schema["type"].lower() == "object" and schema["required"] == ["hash"]
    assert list(schema["properties"]) == ["hash"]
    assert schema["properties"]["hash"]["type"].lower() == "string"


def compressed_value(proxy: ProxyProcess, sent: bytes, got: bytes, output: str) -> list[Any]:
    """Only the output's string changed (shorter, with a marker whose key gives the output
    back) plus at most one insertion, which is returned."""
    spliced = splice(sent, got, [output])
    (value,) = spliced.values
    assert len(value) < len(output), "the function response was not compressed"
    assert content_key(output) in find_keys(value), value[-300:]
    assert_originals_back(proxy.url, [content_key(output)], output)
    return spliced.inserted


# ==================================================================== the fake, no proxy


def test_fake_json_answer_is_geminis(llm: LLMUpstream) -> None:
    llm.script(Turn((Thinking("", SIG), Text(PREFACE), ToolCall("run_shell", {"command": "ls"}))))
    llm.script(tool_turn(ToolCall("a", {}), ToolCall("b", {"x": 1}, "fc_b")))
    sent = Sent()
    gemini = client(llm.url, sent)
    first = gemini.models.generate_content(model=MODEL, contents="hi", config=config(SHELL))
    second = gemini.models.generate_content(model=MODEL, contents="hi", config=config(SHELL))
    one, two = (json.loads(bytes(a.sent)) for a in llm.answers)
    (candidate,) = one["candidates"]
    assert candidate["content"]["role"] == "model" and candidate["finishReason"] == "STOP"
    assert candidate["content"]["parts"] == [
        {"text": PREFACE},
        {"functionCall": {"name": "run_shell", "args": {"command": "ls"}}, "thoughtSignature": SIG},
    ]
    meta = one["usageMetadata"]
    assert meta["totalTokenCount"] == meta["promptTokenCount"] + meta["candidatesTokenCount"]
    assert one["modelVersion"] == MODEL and one["responseId"] != two["responseId"]
    assert [p["functionCall"] for p in two["candidates"][0]["content"]["parts"]] == [
        {"name": "a", "args": {}},
        {"id": "fc_b", "name": "b", "args": {"x": 1}},  # an id only where the model gave one
    ]
    assert first.text == PREFACE and first.function_calls
    assert first.function_calls[0].id is None
    assert first.candidates and first.candidates[0].content and first.candidates[0].content.parts
    assert first.candidates[0].content.parts[1].thought_signature == base64.b64decode(SIG)
    assert second.function_calls and [c.id for c in second.function_calls] == [None, "fc_b"]
    (rec, _) = llm.posts(":generateContent")
    assert rec.target == f"/v1beta/models/{MODEL}:generateContent"
    assert gemini_api.api_key(rec) == API_KEY and json.loads(sent.last)["tools"]


def test_fake_stream_is_geminis_sse(llm: LLMUpstream) -> None:
    llm.script(Turn((Thinking("Read the log.", SIG), Text(PREFACE), retrieve_call("a" * 24))))
    gemini = client(llm.url, Sent())
    thinking = types.ThinkingConfig(include_thoughts=True)
    chunks = list(
        gemini.models.generate_content_stream(
            model=MODEL, contents="hi", config=config(thinking_config=thinking)
        )
    )
    (rec,) = llm.requests
    assert rec.target == f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
    raw = bytes(llm.answers[0].sent)
    assert b"event:" not in raw and b"[DONE]" not in raw and raw.endswith(b"}\r\n\r\n")
    events = sse_chunks(raw)
    assert len(events) == len(chunks) > 3
    parts = [e["candidates"][0]["content"]["parts"] for e in events]
    assert "".join(p[0]["text"] for p in parts if p[0].get("thought")) == "Read the log."
    assert "".join(p[0]["text"] for p in parts if "text" in p[0] and not p[0].get("thought")) == (
        PREFACE
    )
    assert parts[-1] == [
        {"functionCall": {"name": RETRIEVE, "args": {"hash": "a" * 24}}, "thoughtSignature": SIG}
    ]
    finishes = [e["candidates"][0].get("finishReason") for e in events]
    assert finishes == [None] * (len(events) - 1) + ["STOP"]
    assert {e["usageMetadata"]["promptTokenCount"] for e in events} == {
        events[-1]["usageMetadata"]["promptTokenCount"]
    }
    assert "candidatesTokenCount" in events[-1]["usageMetadata"]
    assert "candidatesTokenCount" not in events[0]["usageMetadata"]
    assert chunks[-1].function_calls and chunks[-1].function_calls[0].args == {"hash": "a" * 24}


def test_fake_stream_without_alt_sse_is_a_json_array(llm: LLMUpstream) -> None:
    llm.script(text_turn(FINAL))
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    got = httpx.post(
        f"{llm.url}/v1/models/{MODEL}:streamGenerateContent?key={API_KEY}",
        json=body,
        trust_env=False,
    )
    assert got.status_code == 200 and got.headers["content-type"].startswith("application/json")
    assert got.content.startswith(b"[{") and b"\r\n,{" in got.content
    chunks = got.json()
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == FINAL
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert gemini_api.api_key(llm.requests[0]) == API_KEY


def _call(name: str) -> dict[str, Any]:
    return {"functionCall": {"name": name, "args": {}}}


def _reply(name: str) -> dict[str, Any]:
    return {"functionResponse": {"name": name, "response": {"output": "done"}}}


def _turns(*contents: tuple[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {"contents": [{"role": r, "parts": p} for r, p in contents]}


ASK = ("user", [{"text": "go"}])
INVALID = {
    "duplicate declaration across tools": {
        **_turns(ASK),
        "tools": [
            {"functionDeclarations": [{"name": "run_shell"}]},
            {"function_declarations": [{"name": "run_shell"}]},
        ],
    },
    "fewer responses than calls": _turns(
        ASK, ("model", [_call("a"), _call("b")]), ("user", [_reply("a")])
    ),
    "response without a call": _turns(ASK, ("model", [{"text": "hm"}]), ("user", [_reply("a")])),
    "call not after a user turn": _turns(ASK, ("model", [{"text": "x"}]), ("model", [_call("a")])),
    "role assistant": _turns(("assistant", [{"text": "hi"}])),
    "no contents": {"contents": []},
    "part without data": _turns(("user", [{"thought": True}])),
    "response not an object": _turns(
        ASK,
        ("model", [_call("a")]),
        ("user", [{"functionResponse": {"name": "a", "response": "done"}}]),
    ),
}


@pytest.mark.parametrize("body", list(INVALID.values()), ids=list(INVALID))
def test_fake_refuses_what_gemini_refuses(llm: LLMUpstream, body: dict[str, Any]) -> None:
    llm.script(text_turn(FINAL))
    got = httpx.post(
        f"{llm.url}/v1beta/models/{MODEL}:generateContent",
        json=body,
        headers={"x-goog-api-key": API_KEY},
        trust_env=False,
    )
    assert got.status_code == 400
    assert got.json()["error"]["status"] == "INVALID_ARGUMENT" and got.json()["error"]["message"]
    assert llm.pending == 1, "a refused request used a scripted turn"


def test_fake_refusal_reaches_the_sdk_as_googles(llm: LLMUpstream) -> None:
    body = _turns(ASK, ("model", [_call("a"), _call("b")]), ("user", [_reply("a")]))
    with pytest.raises(errors.ClientError) as caught:
        client(llm.url, Sent()).models.generate_content(model=MODEL, contents=body["contents"])
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert caught.value.message == gemini_api._COUNT


def test_fake_accepts_a_valid_parallel_call_history(llm: LLMUpstream) -> None:
    body = _turns(ASK, ("model", [_call("a"), _call("b")]), ("user", [_reply("a"), _reply("b")]))
    got = client(llm.url, Sent()).models.generate_content(model=MODEL, contents=body["contents"])
    assert got.text == "ok"


def test_fake_wants_a_key_and_counts_tokens(llm: LLMUpstream) -> None:
    url = f"{llm.url}/v1beta/models/{MODEL}"
    body = {"contents": [{"role": "user", "parts": [{"text": "count me"}]}]}
    refused = httpx.post(f"{url}:generateContent", json=body, trust_env=False)
    assert refused.status_code == 403
    assert refused.json()["error"]["status"] == "PERMISSION_DENIED"
    bare = httpx.post(f"{url}:countTokens?key={API_KEY}", json=body, trust_env=False)
    wrapped = httpx.post(
        f"{url}:countTokens?key={API_KEY}",
        json={"generateContentRequest": {"model": f"models/{MODEL}", **body}},
        trust_env=False,
    )
    assert bare.status_code == wrapped.status_code == 200
    assert 0 < bare.json()["totalTokens"] < wrapped.json()["totalTokens"]
    bad = {"generateContentRequest": {"model": f"models/{MODEL}", "contents": []}}
    assert httpx.post(f"{url}:countTokens?key=k", json=bad, trust_env=False).status_code == 400
    sdk = client(llm.url, Sent()).models.count_tokens(model=MODEL, contents="count me")
    assert sdk.total_tokens and sdk.total_tokens > 0


@pytest.mark.parametrize(
    ("status", "kind", "name"),
    [
        (429, errors.ClientError, "RESOURCE_EXHAUSTED"),
        (500, errors.ServerError, "INTERNAL"),
        (503, errors.ServerError, "UNAVAILABLE"),
    ],
)
def test_fake_errors_are_googles(
    llm: LLMUpstream, status: int, kind: type[errors.APIError], name: str
) -> None:
    llm.script(error_turn(status, "try later"))
    with pytest.raises(kind) as caught:
        client(llm.url, Sent()).models.generate_content(model=MODEL, contents="hi")
    assert (caught.value.code, caught.value.status, caught.value.message) == (
        status,
        name,
        "try later",
    )


# ==================================================================== through the proxy


@pytest.mark.parametrize("version", ["v1beta", "v1"])
def test_plain_request_is_forwarded_byte_for_byte(
    proxy: ProxyProcess, llm: LLMUpstream, version: str
) -> None:
    """A short history with a call and its response (under the compression threshold), the
    model calling a tool again with a thought signature: nothing changes either way."""
    llm.script(Turn((Thinking("", SIG), Text(PREFACE), ToolCall("run_shell", {"command": "ls"}))))
    sent = Sent()
    got = client(proxy.url, sent, version=version).models.generate_content(
        model=MODEL, contents=history("3 files changed, 10 insertions(+)"), config=config(SHELL)
    )
    (rec,) = llm.requests
    assert rec.target == f"/{version}/models/{MODEL}:generateContent"
    assert bytes(rec.body) == sent.last
    assert rec.header("x-goog-api-key") == API_KEY
    assert got.text == PREFACE
    assert got.function_calls and got.function_calls[0].args == {"command": "ls"}
    assert got.candidates and got.candidates[0].content and got.candidates[0].content.parts
    assert got.candidates[0].content.parts[-1].thought_signature == base64.b64decode(SIG)


def test_async_stream_arrives_as_a_stream_unchanged(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    gate = threading.Event()
    turn = Turn((Text(FINAL),), gate=gate)
    llm.script(turn)
    sent = Sent()

    async def run() -> list[str]:
        gemini = client(proxy.url, sent)
        texts = []
        stream = await gemini.aio.models.generate_content_stream(
            model=MODEL, contents=history("ok"), config=config(SHELL)
        )
        async for chunk in stream:
            texts.append(chunk.text or "")
            gate.set()  # the first chunk is here while the upstream still holds the rest
        return texts

    texts = asyncio.run(run())
    assert turn.gate_timed_out is False, "the stream was buffered, not passed through"
    assert "".join(texts) == FINAL and len(texts) > 1
    (rec,) = llm.requests
    assert rec.target == f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
    assert bytes(rec.body) == sent.last


@pytest.mark.parametrize("version", ["v1beta", "v1"])
def test_big_output_arrives_compressed_with_the_retrieval_tool(
    proxy: ProxyProcess, llm: LLMUpstream, version: str
) -> None:
    log = git_log()
    llm.script(text_turn(FINAL))
    sent = Sent()
    got = client(proxy.url, sent, version=version).models.generate_content(
        model=MODEL, contents=history(log), config=config(SHELL)
    )
    assert got.text == FINAL
    (body,) = bodies(llm, "generateContent")
    added = compressed_value(proxy, sent.last, body, log)
    assert len(added) == 1, "the retrieval tool was not added once"
    assert_retrieval_tool(added[0])
    tools = json.loads(body)["tools"]
    assert tools[:-1] == json.loads(sent.last)["tools"] and tools[-1] == added[0]
    assert llm.requests[0].header("x-goog-api-key") == API_KEY


def test_async_big_output_without_tools_gets_tools(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    log = git_log()
    llm.script(text_turn(FINAL))
    sent = Sent()

    async def run() -> types.GenerateContentResponse:
        gemini = client(proxy.url, sent)
        return await gemini.aio.models.generate_content(model=MODEL, contents=history(log))

    assert asyncio.run(run()).text == FINAL
    assert "tools" not in json.loads(sent.last)
    (body,) = bodies(llm, "generateContent")
    added = compressed_value(proxy, sent.last, body, log)
    assert len(added) == 1
    assert_retrieval_tool(added[0])
    assert json.loads(body)["tools"] == added


@pytest.mark.parametrize("call_id", ["", "fc_ret1"], ids=["no-id", "id"])
def test_retrieval_round_is_answered_by_the_proxy(
    proxy: ProxyProcess, llm: LLMUpstream, call_id: str
) -> None:
    log = git_log()
    key = content_key(log)
    llm.script(tool_turn(retrieve_call(key, call_id)), text_turn(FINAL))
    got = client(proxy.url, Sent()).models.generate_content(
        model=MODEL, contents=history(log, "fc_shell" if call_id else ""), config=config(SHELL)
    )
    assert got.text == FINAL and not got.function_calls
    no_trace(got.model_dump_json())
    assert [a.status for a in llm.answers] == [200, 200], "the follow-up was refused"
    first, second = bodies(llm, "generateContent")
    assert key in find_keys(first.decode())
    assert json.loads(second)["tools"] == json.loads(first)["tools"]
    added = json.loads(b"[" + inserted(first, second).strip(b", ") + b"]")
    model_turn = json.loads(bytes(llm.answers[0].sent))["candidates"][0]["content"]
    assert added[0] == model_turn, "the model's turn went back changed"
    assert added[1]["role"] == "user" and len(added[1]["parts"]) == 1
    reply = added[1]["parts"][0]["functionResponse"]
    assert reply["name"] == RETRIEVE and reply["response"]["output"] == log
    assert reply.get("id") == (call_id or None)
    usage = got.usage_metadata
    assert usage is not None
    summed = final_usage(llm)
    assert usage.prompt_token_count == summed["promptTokenCount"]
    assert usage.candidates_token_count == summed["candidatesTokenCount"]
    assert usage.total_token_count == summed["totalTokenCount"]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_streamed_retrieval_round_is_one_stream(
    proxy: ProxyProcess, llm: LLMUpstream, mode: str
) -> None:
    """The client sees the text of both rounds as one stream, one finish, usage summed; the
    follow-up carries the model's turn rebuilt from the stream, signature included."""
    log = git_log()
    key = content_key(log)
    llm.script(Turn((Thinking("", SIG), Text(PREFACE), retrieve_call(key))), text_turn(FINAL))
    gemini = client(proxy.url, Sent())
    params: dict[str, Any] = {"model": MODEL, "contents": history(log), "config": config(SHELL)}
    if mode == "sync":
        chunks = list(gemini.models.generate_content_stream(**params))
    else:

        async def run() -> list[types.GenerateContentResponse]:
            return [c async for c in await gemini.aio.models.generate_content_stream(**params)]

        chunks = asyncio.run(run())
    no_trace(*(c.model_dump_json() for c in chunks))
    assert "".join(c.text or "" for c in chunks) == PREFACE + FINAL
    assert not any(c.function_calls for c in chunks)
    finishes = [
        c.candidates[0].finish_reason
        for c in chunks
        if c.candidates and c.candidates[0].finish_reason
    ]
    assert finishes == [types.FinishReason.STOP] and chunks[-1].candidates
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    usage = chunks[-1].usage_metadata
    assert usage is not None
    summed = final_usage(llm)
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (
        summed["promptTokenCount"],
        summed["candidatesTokenCount"],
        summed["totalTokenCount"],
    )
    assert [a.status for a in llm.answers] == [200, 200], "the follow-up was refused"
    first, second = bodies(llm, "streamGenerateContent")
    assert key in find_keys(first.decode())
    model_turn, reply_turn = json.loads(b"[" + inserted(first, second).strip(b", ") + b"]")
    assert model_turn["role"] == "model"
    texts = [p["text"] for p in model_turn["parts"] if "text" in p]
    calls = [p for p in model_turn["parts"] if "functionCall" in p]
    assert "".join(texts) == PREFACE
    assert calls == [
        {"functionCall": {"name": RETRIEVE, "args": {"hash": key}}, "thoughtSignature": SIG}
    ]
    reply = reply_turn["parts"][0]["functionResponse"]
    assert reply["name"] == RETRIEVE and reply["response"]["output"] == log


def test_count_tokens_body_is_compressed(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    log = git_log()
    direct = client(llm.url, Sent()).models.count_tokens(model=MODEL, contents=history(log))
    llm.clear()
    sent = Sent()
    got = client(proxy.url, sent).models.count_tokens(model=MODEL, contents=history(log))
    (body,) = bodies(llm, "countTokens")
    assert compressed_value(proxy, sent.last, body, log) == [], "countTokens got a tool"
    assert "tools" not in json.loads(body)
    assert got.total_tokens == json.loads(bytes(llm.answers[0].sent))["totalTokens"]
    assert direct.total_tokens and got.total_tokens and got.total_tokens < direct.total_tokens


def _assert_key_not_logged(proxy: ProxyProcess, key: str, requests: int) -> None:
    proxy.wait_for_log(lambda _: len(proxy.events("request")) >= requests, timeout=5)
    lines = proxy.stdout_lines + proxy.stderr_lines
    assert any(MODEL in line for line in lines), "the log names no request: the check is empty"
    assert not [line for line in lines if key in line], "the API key was logged"


def test_api_key_reaches_upstream_and_never_the_log(
    start_proxy: StartProxy, llm: LLMUpstream
) -> None:
    proxy = start_proxy("--gemini-upstream", llm.url, "--log-level", "debug")
    log = git_log()
    # keyed on the task: the follow-up carries it too, the other requests do not
    llm.script_for(TASK, tool_turn(retrieve_call(content_key(log))), text_turn(FINAL))
    llm.script(text_turn(FINAL), error_turn(429, "quota"))
    gemini = client(proxy.url, Sent())
    gemini.models.generate_content(model=MODEL, contents=history(log), config=config(SHELL))
    list(gemini.models.generate_content_stream(model=MODEL, contents="hi"))
    with pytest.raises(errors.ClientError):
        gemini.models.generate_content(model=MODEL, contents="hi")
    gemini.models.count_tokens(model=MODEL, contents=history(log))
    assert llm.requests and {r.header("x-goog-api-key") for r in llm.requests} == {API_KEY}
    _assert_key_not_logged(proxy, API_KEY, 4)


def test_query_key_reaches_upstream_and_never_the_log(
    start_proxy: StartProxy, llm: LLMUpstream
) -> None:
    proxy = start_proxy("--gemini-upstream", llm.url, "--log-level", "debug")
    llm.script(text_turn(FINAL))
    got = httpx.post(
        f"{proxy.url}/v1beta/models/{MODEL}:generateContent?key={API_KEY}",
        json={"contents": history("short output")},
        trust_env=False,
        timeout=20,
    )
    assert got.status_code == 200, got.text
    (rec,) = llm.requests
    assert gemini_api.api_key(rec) == API_KEY and rec.header("x-goog-api-key") is None
    _assert_key_not_logged(proxy, API_KEY, 1)


def test_stats_count_gemini_by_model_free_path_and_its_tokens(
    proxy: ProxyProcess, llm: LLMUpstream
) -> None:
    """``/stats`` labels a Gemini path without its model (the label set must not grow with
    every model named) and counts the tokens its answers report, streamed or not."""
    llm.prefix_cache = PrefixCache()
    before = httpx.get(proxy.url + "/stats").json()
    llm.script(text_turn(FINAL), text_turn(FINAL))
    gemini = client(proxy.url, Sent())
    gemini.models.generate_content(model=MODEL, contents=history(git_log()), config=config(SHELL))
    chunks = gemini.models.generate_content_stream(
        model=MODEL, contents=history(git_log()), config=config(SHELL)
    )
    last = [c for c in chunks][-1]
    after = httpx.get(proxy.url + "/stats").json()
    paths = after["requests"]["by_path"]
    for method in ("generateContent", "streamGenerateContent"):
        label = f"/v1beta/models/{{model}}:{method}"
        assert paths[label] - before["requests"]["by_path"].get(label, 0) == 1
    assert not any(MODEL in p for p in paths)
    row = after["tokens"]["by_api"]["gemini"][MODEL]
    old = before["tokens"]["by_api"].get("gemini", {}).get(MODEL, {})
    assert row["answers"] - old.get("answers", 0) == 2
    usage = last.usage_metadata
    assert usage is not None and usage.cached_content_token_count  # the same prompt again
    assert row["cached"] - old.get("cached", 0) == usage.cached_content_token_count
    assert row["saved"] > old.get("saved", 0)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_the_next_turn_carries_the_round_the_proxy_served(
    proxy: ProxyProcess, llm: LLMUpstream, stream: bool
) -> None:
    """Issue 16 points 1 and 6: the client's next request reaches the upstream with the
    retrieval round back in place, its turns exactly those of the follow-up."""
    log = git_log()
    llm.script(
        Turn((Text(PREFACE), retrieve_call(content_key(log), "fc_r"))),
        text_turn(FINAL),
        text_turn("Nothing else."),
    )
    gemini = client(proxy.url, Sent())
    contents = history(log, "fc_shell")
    params: dict[str, Any] = {"model": MODEL, "contents": contents, "config": config(SHELL)}
    if stream:
        chunks = list(gemini.models.generate_content_stream(**params))
        shown = {"role": "model", "parts": [{"text": "".join(c.text or "" for c in chunks)}]}
    else:
        got = gemini.models.generate_content(**params)
        assert got.candidates and got.candidates[0].content
        shown = got.candidates[0].content.model_dump(mode="json", exclude_none=True)
    later = [*contents, shown, {"role": "user", "parts": [{"text": "Anything else?"}]}]
    method = "streamGenerateContent" if stream else "generateContent"
    again = client(proxy.url, Sent()).models.generate_content(
        model=MODEL, contents=later, config=config(SHELL)
    )
    assert again.text == "Nothing else."
    follow, nxt = bodies(llm, method)[1], bodies(llm, "generateContent")[-1]
    turns = [orjson.dumps(t) for t in json.loads(follow)["contents"]]
    assert [orjson.dumps(t) for t in json.loads(nxt)["contents"]][: len(turns)] == turns
