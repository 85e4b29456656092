"""Answers to compressed requests: when the model does not call ``headroom_retrieve``, the
client gets the upstream's bytes exactly (JSON or SSE), as a stream, and error statuses are
never turned into a 200 (the proxy commits no status before the upstream answered)."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.e2e import traffic
from tests.support.llm_upstream import (
    LLMUpstream,
    Text,
    Thinking,
    ToolCall,
    Turn,
    error_turn,
)
from tests.support.proxy_process import ProxyProcess

pytestmark = pytest.mark.timeout(60)

HEADERS = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
LOG = traffic.service_log(lines=320, seed=51)
TASK = "why do payments fail?"


def _body(api: str, stream: bool) -> tuple[str, bytes]:
    """A body per API whose big log output the proxy compresses (so it adds the tool)."""
    if api == "anthropic":
        steps = [traffic.claude_step(0, "Bash", {"command": "logs"}, LOG)]
        return "/v1/messages?beta=true", traffic.encode(
            traffic.claude_code_body(TASK, steps, stream=stream)
        )
    if api == "chat":
        steps = [traffic.chat_step(0, "logs", LOG)]
        return "/v1/chat/completions", traffic.encode(traffic.chat_body(TASK, steps, stream=stream))
    steps = [traffic.codex_step(0, "logs", LOG)]
    return "/v1/responses", traffic.encode(traffic.codex_body(TASK, steps, stream=stream))


def _client_turn(gate: threading.Event | None = None) -> Turn:
    blocks = (
        Thinking("Look for the charge error.", traffic.signature(3)),
        Text("The charge was declined; checking the order."),
        ToolCall("Bash", {"command": "grep 5521 orders.log"}, "toolu_x"),
    )
    return Turn(blocks, gate=gate)


@pytest.mark.parametrize("api", ["anthropic", "chat", "responses"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_answer_bytes_reach_the_client_unchanged(
    proxy: ProxyProcess, llm: LLMUpstream, http: httpx.Client, api: str, stream: bool
) -> None:
    path, body = _body(api, stream)
    gate = threading.Event() if stream else None
    llm.script(_client_turn(gate))
    received = bytearray()
    with http.stream("POST", path, content=body, headers=HEADERS) as got:
        status = got.status_code
        for chunk in got.iter_raw():
            received += chunk
            if gate is not None:
                gate.set()  # something arrived while the upstream was still held
    assert status == 200
    forwarded = bytes(llm.posts(path.split("?")[0])[0].body)
    assert b"headroom_retrieve" in forwarded, (
        "precondition: the proxy compressed and added its tool"
    )
    answer = llm.answers[0]
    assert bytes(received) == bytes(answer.sent)
    if gate is not None:
        assert answer.turn is not None and answer.turn.gate_timed_out is False, (
            "the proxy held the stream back until the upstream finished"
        )


@pytest.mark.parametrize("api", ["anthropic", "chat", "responses"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_upstream_error_status_reaches_the_client(
    proxy: ProxyProcess, llm: LLMUpstream, http: httpx.Client, api: str, stream: bool
) -> None:
    path, body = _body(api, stream)
    llm.script(error_turn(529, "Overloaded"))
    got = http.post(path, content=body, headers=HEADERS)
    assert got.status_code == 529, got.text[:300]
    assert got.content == bytes(llm.answers[0].sent)
    assert got.headers.get("content-type", "").startswith("application/json")
