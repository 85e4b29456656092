"""``--retrieve-tool always``: ``headroom_retrieve`` is declared in every request that has
tools of the client's, so a conversation's tools are the same bytes before and after its
first compressed output (a provider's cached prompt prefix starts with the tools)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from headroom.providers.apis import ANTHROPIC, OPENAI_CHAT, OPENAI_RESPONSES
from headroom.providers.base import Provider
from headroom.providers.gemini import GEMINI
from headroom.providers.rewrite import rewrite_request
from headroom.transforms.pipeline import Pipeline
from tests.unit.test_providers import LOG

TOOLS: dict[str, Any] = {
    "anthropic": [{"name": "Bash", "input_schema": {"type": "object"}}],
    "openai_chat": [{"type": "function", "function": {"name": "sh", "parameters": {}}}],
    "openai_responses": [{"type": "function", "name": "sh", "parameters": {}}],
    "gemini": [{"functionDeclarations": [{"name": "sh", "parameters": {"type": "object"}}]}],
}


def _turns(provider: Provider, output: str | None) -> dict[str, Any]:
    """A request in this API's shape: a question, and (with ``output``) one tool round."""
    name = provider.name
    if name == "anthropic":
        msgs: list[Any] = [{"role": "user", "content": "check the logs"}]
        if output is not None:
            call = {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"cmd": "cat"}}
            result = {"type": "tool_result", "tool_use_id": "t1", "content": output}
            msgs += [
                {"role": "assistant", "content": [call]},
                {"role": "user", "content": [result]},
            ]
        return {"model": "claude-sonnet-4", "messages": msgs}
    if name == "openai_chat":
        msgs = [{"role": "user", "content": "check the logs"}]
        if output is not None:
            call = {"id": "c1", "type": "function", "function": {"name": "sh", "arguments": "{}"}}
            msgs += [
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c1", "content": output},
            ]
        return {"model": "gpt-5", "messages": msgs}
    if name == "openai_responses":
        items: list[Any] = [{"role": "user", "content": "check the logs"}]
        if output is not None:
            items += [
                {"type": "function_call", "call_id": "c1", "name": "sh", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": output},
            ]
        return {"model": "gpt-5", "input": items}
    contents: list[Any] = [{"role": "user", "parts": [{"text": "check the logs"}]}]
    if output is not None:
        contents += [
            {"role": "model", "parts": [{"functionCall": {"name": "sh", "args": {}}}]},
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "sh", "response": {"output": output}}}],
            },
        ]
    return {"contents": contents}


def _body(provider: Provider, output: str | None, tools: bool = True) -> bytes:
    payload = _turns(provider, output)
    if tools:
        payload["tools"] = TOOLS[provider.name]
    return json.dumps(payload).encode()


def _tools_bytes(body: bytes) -> bytes:
    """The request's tools as the bytes that went out (what a prompt cache keys on)."""
    start = body.index(b'"tools"')
    return body[start:]


PROVIDERS = [ANTHROPIC, OPENAI_CHAT, OPENAI_RESPONSES, GEMINI]


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.name)
def test_the_tools_are_the_same_bytes_before_and_after_the_first_marker(
    provider: Provider,
) -> None:
    before = rewrite_request(_body(provider, None), provider, Pipeline(), declare=True)
    after = rewrite_request(_body(provider, LOG), provider, Pipeline(), declare=True)
    assert before.declared and before.changed and not len(before.writes)
    assert len(after.writes) and after.outputs_compressed == 1
    assert _tools_bytes(before.body) == _tools_bytes(after.body)
    assert provider.retrieve_tool_json.encode() in before.body
    # Everything else is the client's: without our declaration it is the request as sent.
    stripped = before.body.replace(b"," + provider.retrieve_tool_json.encode(), b"")
    assert stripped == _body(provider, None)


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.name)
def test_when_needed_leaves_a_request_without_markers_alone(provider: Provider) -> None:
    body = _body(provider, None)
    result = rewrite_request(body, provider, Pipeline())
    assert result.body is body and not result.changed
    after = rewrite_request(_body(provider, LOG), provider, Pipeline())
    assert after.declared  # the first marker brings the tool
    assert _tools_bytes(after.body) != _tools_bytes(body)


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.name)
def test_a_request_without_tools_of_its_own_gets_none(provider: Provider) -> None:
    body = _body(provider, None, tools=False)
    result = rewrite_request(body, provider, Pipeline(), declare=True)
    assert result.body is body and not result.changed


def test_a_request_that_already_declares_it_is_not_changed() -> None:
    once = rewrite_request(_body(ANTHROPIC, None), ANTHROPIC, Pipeline(), declare=True)
    twice = rewrite_request(once.body, ANTHROPIC, Pipeline(), declare=True)
    assert not twice.declared and not twice.changed
    assert twice.body == once.body
