"""Served retrieval rounds put back into the client's next request (``providers.rounds``),
for the four APIs: the answer the client echoes (re-serialised its own way) is replaced by
the elements the upstream saw, byte for byte as the follow-up carried them."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from headroom.providers.base import Provider
from headroom.providers.gemini import GEMINI
from headroom.providers.registry import ANTHROPIC, OPENAI_CHAT, OPENAI_RESPONSES
from headroom.providers.retrieval import follow_up, with_earlier_rounds
from headroom.providers.rewrite import KeysSeen, rewrite_request
from headroom.providers.rounds import (
    Resolved,
    Served,
    answer_runs,
    context_of,
    originals_of,
    record_for,
    resolve,
    restore,
)
from headroom.transforms.pipeline import Pipeline
from tests.unit.test_providers import LOG

KEY = "a" * 24
ORIGINAL = "THE ORIGINAL\nline two"


def _response(p: Provider, text: str, calls: list[tuple[str, str, dict[str, Any]]]) -> Any:
    """An upstream answer with ``text`` and tool ``calls`` (call id, name, arguments)."""
    if p is ANTHROPIC:
        blocks: list[Any] = [{"type": "text", "text": text}]
        blocks += [{"type": "tool_use", "id": c, "name": n, "input": a} for c, n, a in calls]
        return {"id": "msg_1", "type": "message", "role": "assistant", "content": blocks}
    if p is OPENAI_CHAT:
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        if calls:
            message["tool_calls"] = [
                {"id": c, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
                for c, n, a in calls
            ]
        return {"id": "chat_1", "choices": [{"index": 0, "message": message}]}
    if p is OPENAI_RESPONSES:
        items: list[Any] = [
            {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text}],
            }
        ]
        items += [
            {"type": "function_call", "call_id": c, "name": n, "arguments": json.dumps(a)}
            for c, n, a in calls
        ]
        return {"id": "resp_1", "output": items}
    parts: list[Any] = [{"text": text}]
    parts += [{"functionCall": {"name": n, "args": a, "id": c}} for c, n, a in calls]
    return {"candidates": [{"content": {"role": "model", "parts": parts}}]}


def _user(p: Provider, text: str) -> dict[str, Any]:
    if p is GEMINI:
        return {"role": "user", "parts": [{"text": text}]}
    return {"role": "user", "content": text}


def _client_result(p: Provider, call_id: str) -> dict[str, Any]:
    """The client's answer to its own call ``call_id``."""
    if p is ANTHROPIC:
        return {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call_id, "content": "files"}],
        }
    if p is OPENAI_CHAT:
        return {"role": "tool", "tool_call_id": call_id, "content": "files"}
    if p is OPENAI_RESPONSES:
        return {"type": "function_call_output", "call_id": call_id, "output": "files"}
    answer = {"name": "ls", "id": call_id, "response": {"output": "files"}}
    return {"role": "user", "parts": [{"functionResponse": answer}]}


def _echoed(element: dict[str, Any]) -> dict[str, Any]:
    """An element as a client sends it back: its own key order."""
    return dict(reversed(list(element.items())))


def _body(p: Provider, items: list[Any]) -> bytes:
    key = p.shape.history_key
    return json.dumps({"model": "m", key: items, "stream": False}, indent=2).encode()


RETRIEVE = ("r1", "headroom_retrieve", {"hash": KEY})
PROVIDERS = [ANTHROPIC, OPENAI_CHAT, OPENAI_RESPONSES, GEMINI]
IDS = [p.name for p in PROVIDERS]


@pytest.mark.parametrize("p", PROVIDERS, ids=IDS)
def test_a_served_round_is_put_back_as_the_follow_up_carried_it(p: Provider) -> None:
    history = [_user(p, "why do payments fail?")]
    first = orjson.dumps({"model": "m", p.shape.history_key: history})
    asked = _response(p, "Let me fetch the log.", [RETRIEVE])
    final = _response(p, "Payments fail with card_declined.", [])
    served = Served(asked, [("r1", ORIGINAL)], (KEY,))
    made = record_for(p, context_of(history), [served], final, None)
    assert made is not None
    key, record = made
    assert ORIGINAL.encode() not in record and originals_of(record) == [KEY]
    assert resolve(record, {}) is None  # the original is gone: nothing to put back
    resolved = resolve(record, {KEY: ORIGINAL})
    assert resolved is not None and json.dumps(ORIGINAL) in resolved.run

    # What the client saw: one answer, the rounds merged; it echoes it in its own order.
    shown = with_earlier_rounds(p, [p.shape.strip_calls(asked)], final)
    echo = [_echoed(e) for e in p.shape.answer_elements(shown)]
    later = [*history, *echo, _user(p, "and how do I fix it?")]
    body = _body(p, later)
    out, count, where, edited = restore(p, body, json.loads(body), {key: resolved})
    assert count == 1 and edited == json.loads(out)  # the payload edited as the body was
    size = len(json.loads(out)[p.shape.history_key])
    assert where == {(p.shape.history_key, j) for j in range(1, size - 1)}  # the whole run

    # The follow-up the upstream got appended these bytes after the history:
    sent = follow_up(p, first, asked, [("r1", ORIGINAL)])
    appended = sent[len(first) - 2 : -2]  # between the history's last element and "]}"
    assert appended.startswith(b",")
    final_json = b",".join(orjson.dumps(e) for e in p.shape.answer_elements(final))
    assert appended[1:] + b"," + final_json in out  # byte for byte, then the final answer
    items = json.loads(out)[p.shape.history_key]
    assert items[-1] == _user(p, "and how do I fix it?") and items[0] == history[0]
    again, _, _, _ = restore(p, body, json.loads(body), {key: resolved})
    assert again == out  # every later turn gets the same bytes: the cached prefix holds


@pytest.mark.parametrize("p", PROVIDERS, ids=IDS)
def test_a_mixed_last_round_puts_our_calls_and_results_where_the_api_wants_them(
    p: Provider,
) -> None:
    history = [_user(p, "list the files")]
    final = _response(p, "Both.", [RETRIEVE, ("c1", "ls", {})])
    last = Served(final, [("r1", ORIGINAL)], (KEY,))
    made = record_for(p, context_of(history), [], final, last)
    assert made is not None
    key, record = made
    resolved = resolve(record, {KEY: ORIGINAL})
    assert resolved is not None
    echo = [_echoed(e) for e in p.shape.answer_elements(p.shape.strip_calls(final))]
    body = _body(p, [*history, *echo, _client_result(p, "c1")])
    out, count, where, edited = restore(p, body, json.loads(body), {key: resolved})
    assert count == 1 and edited == json.loads(out)
    items = json.loads(out)[p.shape.history_key]
    hk, field = p.shape.history_key, p.shape.results_field
    run = len(p.shape.answer_elements(final))
    expected = {(hk, 1 + j) for j in range(run)}
    expected |= {(hk, 1 + run, str(field), 0)} if field else {(hk, 1 + run)}
    assert where == expected  # the run and our result, not the client's own result
    assert items[1 : 1 + len(p.shape.answer_elements(final))] == p.shape.answer_elements(final)
    flat = json.dumps(items[1:])
    assert flat.index('"r1"') < flat.index(json.dumps(ORIGINAL)) < flat.index('"files"')
    if p.shape.results_field is not None:  # first among the client's own results
        parts = items[-1][p.shape.results_field]
        assert len(parts) == 2 and json.dumps(parts[0]).count(json.dumps(ORIGINAL)) == 1


@pytest.mark.parametrize("p", PROVIDERS, ids=IDS)
def test_the_same_answer_in_another_conversation_is_left_alone(p: Provider) -> None:
    history = [_user(p, "why do payments fail?")]
    asked = _response(p, "Let me fetch the log.", [RETRIEVE])
    final = _response(p, "Done.", [])
    made = record_for(p, context_of(history), [Served(asked, [("r1", "x")], (None,))], final, None)
    assert made is not None
    key, record = made
    resolved = resolve(record, {})
    assert resolved is not None  # a sentence of ours is recorded as its text
    shown = with_earlier_rounds(p, [p.shape.strip_calls(asked)], final)
    elsewhere = [_user(p, "say done"), *p.shape.answer_elements(shown)]
    body = _body(p, elsewhere)
    payload = json.loads(body)
    out, count, _, same = restore(p, body, payload, {key: resolved})
    assert count == 0 and out is body and same is payload


def test_answer_runs_group_what_the_model_wrote() -> None:
    items = [
        {"role": "user", "content": "q"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "a"}]},
        {"type": "function_call", "call_id": "c1", "name": "ls", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "x"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "b"}]},
    ]
    runs = answer_runs(OPENAI_RESPONSES, items)
    assert [(s, e) for s, e, _ in runs] == [(1, 4), (5, 6)]
    assert len({k for _, _, k in runs}) == 2


def test_a_rewrite_puts_rounds_back_and_never_compresses_what_the_model_fetched() -> None:
    """The fetched original stands whole in its round; the same text where the client's
    tool printed it is compressed as always."""
    p = ANTHROPIC
    call = {"type": "tool_use", "id": "toolu_b", "name": "Bash", "input": {"command": "logs"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_b", "content": LOG}
    history = [
        _user(p, "why do payments fail?"),
        {"role": "assistant", "content": [call]},
        {"role": "user", "content": [result]},
    ]
    asked = _response(p, "Let me fetch the log.", [RETRIEVE])
    final = _response(p, "card_declined.", [])
    made = record_for(p, context_of(history), [Served(asked, [("r1", LOG)], (KEY,))], final, None)
    assert made is not None
    key, record = made
    resolved = resolve(record, {KEY: LOG})
    assert resolved is not None

    class Finder:
        def __init__(self, found: dict[str, Resolved]) -> None:
            self.found = found
            self.asked: list[str] = []

        def find(self, keys: list[str]) -> dict[str, Resolved]:
            self.asked += keys
            return {k: v for k, v in self.found.items() if k in keys}

    shown = with_earlier_rounds(p, [p.shape.strip_calls(asked)], final)
    body = _body(p, [*history, *p.shape.answer_elements(shown), _user(p, "thanks")])
    finder = Finder({key: resolved})
    out = rewrite_request(body, p, Pipeline(), rounds=finder)
    assert len(finder.asked) == 2 and key in finder.asked  # the two answers of the history
    assert out.restored == 1 and out.outputs_compressed == 1
    assert out.body.count(json.dumps(LOG)[1:-1].encode()) == 1  # whole once: in its round
    sent = json.loads(out.body)["messages"]
    assert sent[2]["content"][0]["content"] != LOG  # the client's copy is compressed
    seen = KeysSeen()
    plain = rewrite_request(body, p, Pipeline(), rounds=seen)
    assert sorted(seen.keys) == sorted(finder.asked) and plain.restored == 0


def test_a_round_after_a_restored_turn_is_keyed_by_what_the_client_sent() -> None:
    """A mixed turn's results go first into the client's next user turn; a round served on
    that request must be keyed by that turn as the client sent it (its next request carries
    it so), not as the proxy forwarded it."""
    p = ANTHROPIC
    history = [_user(p, "list the files")]
    final = _response(p, "Both.", [RETRIEVE, ("c1", "ls", {})])
    made = record_for(p, context_of(history), [], final, Served(final, [("r1", "x")], (None,)))
    assert made is not None
    resolved = resolve(made[1], {})
    assert resolved is not None
    echo = p.shape.answer_elements(p.shape.strip_calls(final))
    items = [*history, *echo, _client_result(p, "c1")]
    body = _body(p, items)

    class Finder:
        def find(self, keys: list[str]) -> dict[str, Resolved]:
            return {made[0]: resolved} if made[0] in keys else {}

    out = rewrite_request(body, p, Pipeline(), rounds=Finder())
    assert out.restored == 1
    forwarded = json.loads(out.body)["messages"]
    assert len(forwarded[-1]["content"]) == 2  # our result went in first
    assert out.context == context_of(items) != context_of(forwarded)
