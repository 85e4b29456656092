"""Issue 16 point 1 end to end: every round the proxy answered itself comes back into the
client's next request, exactly as the model saw it, on any worker or host sharing the store.

The model (``tests.support.marker_model``) reads its prompt: it retrieves each marker whose
original its conversation does not hold yet, then runs the agent's next command. An agent
conversation over real program output runs through the proxy; checked on every request the
upstream got: the turns of the request before it (the follow-up the proxy sent, with the
retrieval in it, or the client's previous turn) are its first turns, byte for byte as the
provider renders them — the prompt cache reads all of them — and no hash is retrieved twice.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.clients import Sent, anthropic_sync
from tests.e2e.test_retrieval_loop import CHAT, KEY, LOG, RESPONSES, RESPONSES_KEY
from tests.support.llm_upstream import LLMUpstream, retrieve_call, text_turn, tool_turn
from tests.support.marker_model import Agent, MarkerModel, tools_of
from tests.support.prefix_cache import PrefixCache
from tests.support.proxy_process import ProxyProcess
from tests.support.redis_server import RedisServer, need_redis_server

pytestmark = [pytest.mark.timeout(120)]

CORPUS = Path(__file__).resolve().parents[1] / "fidelity" / "corpus"
ARTIFACTS = ["b_git_log_stat_main", "a_pylint_requests", "a_pytest_v_more_itertools"]
OUTPUTS = [(CORPUS / f"{name}.txt").read_text() for name in ARTIFACTS]
COMMANDS = ["git log --stat -n 60", "pylint src/requests", "pytest -v"]
TASK = "Find out why the build is red and what changed."


def _turns(body: bytes, key: str) -> list[bytes]:
    """The turns of a request as the provider renders them (compact, the client's key
    order; ``tests.support.prefix_cache``)."""
    return [orjson.dumps(t) for t in json.loads(body)[key]]


def _assert_each_request_extends_the_last(llm: LLMUpstream, path: str, key: str) -> None:
    bodies = [bytes(r.body) for r in llm.posts(path)]
    assert len(bodies) >= 2
    for n in range(1, len(bodies)):
        before, now = _turns(bodies[n - 1], key), _turns(bodies[n], key)
        assert now[: len(before)] == before, f"request {n} lost turns of request {n - 1}"


def _rounds(proxy: ProxyProcess) -> dict[str, int]:
    stats = httpx.get(proxy.url + "/stats", trust_env=False).json()
    rounds: dict[str, int] = stats["ccr"]["rounds"]
    return rounds


def _agent(llm: LLMUpstream, urls: list[str], stream: bool) -> MarkerModel:
    model = MarkerModel(COMMANDS)
    llm.responder = model
    llm.prefix_cache = PrefixCache()
    Agent(urls, OUTPUTS, stream, tools_of()).run(TASK)
    assert len(model.retrievals) >= len(OUTPUTS), model.retrievals  # every output retrieved
    assert model.repeated == 0, f"hashes retrieved again: {model.retrievals}"
    _assert_each_request_extends_the_last(llm, "/v1/messages", "messages")
    return model


def _cache_reads(llm: LLMUpstream) -> list[tuple[int, int]]:
    """(prompt, cached) tokens of each JSON answer the upstream sent."""
    out = []
    for answer in llm.answers:
        usage = json.loads(bytes(answer.sent))["usage"]
        out.append((usage["input_tokens"] + usage["cache_read_input_tokens"],
                    usage["cache_read_input_tokens"]))  # fmt: skip
    return out


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_a_conversation_keeps_every_retrieval_in_its_history(
    llm: LLMUpstream, start_proxy: Callable[..., ProxyProcess], stream: bool
) -> None:
    proxy = start_proxy()
    model = _agent(llm, [proxy.url], stream)
    rounds = _rounds(proxy)
    assert rounds["remembered"] == sum(model.retrievals.values())
    assert rounds["restored"] >= len(OUTPUTS) and rounds["missed"] == 0
    if not stream:  # every request reads the whole previous prompt but one (tools change)
        reads = _cache_reads(llm)
        misses = [n for n in range(1, len(reads)) if reads[n][1] != reads[n - 1][0]]
        assert len(misses) <= 1, (misses, reads)


def test_two_proxies_on_one_sqlite_file_restore_each_others_rounds(
    llm: LLMUpstream, start_proxy: Callable[..., ProxyProcess], tmp_path: Path
) -> None:
    flags = ("--ccr-backend", "sqlite", "--ccr-path", str(tmp_path / "c.db"))
    proxies = [start_proxy(*flags), start_proxy(*flags)]
    _agent(llm, [p.url for p in proxies], False)
    restored = [_rounds(p)["restored"] for p in proxies]
    remembered = [_rounds(p)["remembered"] for p in proxies]
    assert all(restored) and all(remembered), (restored, remembered)


def test_two_proxies_on_one_redis_server_restore_each_others_rounds(
    llm: LLMUpstream, start_proxy: Callable[..., ProxyProcess]
) -> None:
    need_redis_server()
    with RedisServer() as server:
        flags = ("--ccr-backend", "redis", "--ccr-redis-url", server.url)
        proxies = [start_proxy(*flags), start_proxy(*flags)]
        _agent(llm, [p.url for p in proxies], True)
        assert all(_rounds(p)["restored"] for p in proxies)


def test_a_round_whose_original_is_gone_is_counted_as_a_miss(
    llm: LLMUpstream, start_proxy: Callable[..., ProxyProcess], tmp_path: Path
) -> None:
    """The ledger outlives the original (a store reset): the next turn goes as the client
    sent it, and /stats says so."""
    db = tmp_path / "c.db"
    flags = ("--ccr-backend", "sqlite", "--ccr-path", str(db))
    first = start_proxy(*flags)
    llm.script(tool_turn(retrieve_call(KEY, "toolu_r"), text="Fetching."), text_turn("Found."))
    body = _claude([{"role": "user", "content": "why?"}, *_bash_turn(LOG.text)])
    got = httpx.post(first.url + "/v1/messages", json=body, timeout=20, trust_env=False)
    assert got.status_code == 200 and _rounds(first)["remembered"] == 1
    with sqlite3.connect(db) as conn:  # the originals go; the ledger's records stay
        conn.execute("DELETE FROM ccr_blob")
        conn.execute("DELETE FROM ccr_meta")
    second = start_proxy(*flags)  # another process: it has no copy of its own
    later = {**body, "messages": [*body["messages"], *_echo(got.json()), _user("and?")]}
    again = httpx.post(second.url + "/v1/messages", json=later, timeout=20, trust_env=False)
    assert again.status_code == 200
    assert _rounds(second) == {"remembered": 0, "restored": 0, "missed": 1, "too_large": 0}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("api", ["openai_chat", "openai_responses"])
def test_openai_rounds_come_back_in_the_next_turn(
    llm: LLMUpstream, proxy: ProxyProcess, api: str, stream: bool
) -> None:
    chat = api == "openai_chat"
    path, key = ("/v1/chat/completions", "messages") if chat else ("/v1/responses", "input")
    first = {**(CHAT if chat else RESPONSES), "stream": stream}
    marker = KEY if chat else RESPONSES_KEY
    llm.script(tool_turn(retrieve_call(marker, "call_r"), text="Fetching. "), text_turn("Found."))
    got = httpx.post(proxy.url + path, json=first, timeout=20, trust_env=False)
    assert got.status_code == 200 and b"headroom_retrieve" not in got.content
    shown = _openai_shown(got, chat, stream)
    nxt: list[Any] = [{"role": "user", "content": "and then?"}]
    later = {**first, key: [*first[key], *shown, *nxt]}
    llm.script(text_turn("Then nothing."))
    again = httpx.post(proxy.url + path, json=later, timeout=20, trust_env=False)
    assert again.status_code == 200, again.text
    _assert_each_request_extends_the_last(llm, path, key)


def _openai_shown(got: httpx.Response, chat: bool, stream: bool) -> list[Any]:
    """The answer as an OpenAI client keeps it for the next turn."""
    if not stream:
        data = got.json()
        if chat:
            message = data["choices"][0]["message"]
            return [{k: v for k, v in message.items() if v is not None}]
        return list(data["output"])
    events = [json.loads(line[6:]) for line in got.text.splitlines()
              if line.startswith("data: ") and line != "data: [DONE]"]  # fmt: skip
    if chat:
        text = "".join(
            c["delta"].get("content") or "" for e in events for c in e.get("choices") or []
        )
        return [{"role": "assistant", "content": text}]
    done = [e["item"] for e in events if e.get("type") == "response.output_item.done"]
    return done


def _claude(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 256, "tools": tools_of(),
            "messages": messages}  # fmt: skip


def _bash_turn(output: str) -> list[dict[str, Any]]:
    call = {"type": "tool_use", "id": "toolu_b", "name": "Bash", "input": {"command": "logs"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_b", "content": output}
    return [{"role": "assistant", "content": [call]}, {"role": "user", "content": [result]}]


def _echo(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": answer["content"]}]


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_the_anthropic_sdk_next_turn_carries_the_round(
    llm: LLMUpstream, proxy: ProxyProcess, stream: bool
) -> None:
    """Through the official SDK, as its users write a conversation: the next turn's history
    holds the answer as the SDK returned it; upstream, the round is back in its place."""
    task = f"why do payments fail? ({'stream' if stream else 'json'})"
    messages = [{"role": "user", "content": task}, *_bash_turn(LOG.text)]
    llm.script(tool_turn(retrieve_call(KEY, "toolu_r"), text="Fetching."), text_turn("Found."))
    client = anthropic_sync(proxy, Sent())
    params: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 256,
                              "messages": messages, "tools": tools_of()}  # fmt: skip
    if stream:
        with client.messages.stream(**params) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(**params)
    shown = [b.model_dump(exclude_none=True) for b in message.content]
    assert [b["type"] for b in shown] == ["text", "text"]
    later = [*messages, {"role": "assistant", "content": shown}, _user("and the fix?")]
    llm.script(text_turn("Retry with another card."))
    client.messages.create(**{**params, "messages": later})
    _assert_each_request_extends_the_last(llm, "/v1/messages", "messages")
