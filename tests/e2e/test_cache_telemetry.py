"""Issue 14 point 3 end to end: the token counts the provider reports (cache reads among
them) are read from the relayed answers into ``/stats`` and ``/metrics``, priced with
``--price-table``; and a multi-turn agent conversation through headroom keeps hitting the
provider's prompt cache the way the same conversation sent directly does.

The fake upstream emulates prefix caching (``tests.support.prefix_cache``): a request
reads from the cache what its rendered prompt (tools, system, turns) shares from the start
with an earlier one. Sent directly, each turn of an agent conversation reads the whole
previous prompt. Through headroom the same holds on every turn but one: the first turn that
carries a marker adds ``headroom_retrieve`` to the tools, which changes the prompt's start
once (the real APIs then write the cache anew).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import FLAGS
from tests.support.llm_upstream import LLMUpstream, ToolCall, retrieve_call, text_turn, tool_turn
from tests.support.prefix_cache import PrefixCache
from tests.support.proxy_process import ProxyGroup, ProxyProcess
from tests.support.upstream import serving

pytestmark = [pytest.mark.timeout(60)]

CORPUS = Path(__file__).resolve().parents[1] / "fidelity" / "corpus"
# Real program output (see the corpus's SOURCES.md): what the agent's two commands printed.
OUTPUTS = [
    ("git log --stat -n 60", (CORPUS / "b_git_log_stat_main.txt").read_text()),
    ("ls -lR site-packages", (CORPUS / "b_ls_lR_pip_site_packages.txt").read_text()),
]
MODEL = "claude-sonnet-4-5-20250929"
TOOLS = [
    {
        "name": "Bash",
        "description": "Run a shell command.",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
    }
]
SYSTEM = "You are a coding agent. " * 200
PRICES = {"models": {"claude-sonnet-4-5": {"input": 3, "cached_input": 0.3, "output": 15}}}


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LLMUpstream, LLMUpstream, ProxyProcess]]:
    home = tmp_path_factory.mktemp("cache")
    prices = home / "prices.json"
    prices.write_text(json.dumps(PRICES))
    direct, proxied = LLMUpstream(), LLMUpstream()
    with serving(direct, proxied), ProxyGroup() as group:
        args = ["--listen", "127.0.0.1:0", *FLAGS, "--upstream", proxied.url,
                "--price-table", str(prices)]  # fmt: skip
        yield direct, proxied, group.start(args, home)


@pytest.fixture(scope="module")
def always(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LLMUpstream, ProxyProcess]]:
    """A proxy with ``--retrieve-tool always`` in front of its own prefix-caching fake."""
    home = tmp_path_factory.mktemp("always")
    upstream = LLMUpstream()
    with serving(upstream), ProxyGroup() as group:
        args = ["--listen", "127.0.0.1:0", *FLAGS, "--upstream", upstream.url,
                "--retrieve-tool", "always"]  # fmt: skip
        yield upstream, group.start(args, home)


def _script(upstream: LLMUpstream) -> None:
    upstream.clear()
    upstream.prefix_cache = PrefixCache()
    calls = [
        tool_turn(ToolCall("Bash", {"command": c}, f"toolu_{i}"))
        for i, (c, _) in enumerate(OUTPUTS)
    ]
    upstream.script(
        *calls, text_turn("The last change touched the routing table."), text_turn("Nothing else.")
    )


def _conversation(url: str, stream: bool) -> list[dict[str, Any]]:
    """The agent's four requests (question, two tool results, a follow-up question); the
    usage each answer reported, as the client received it."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "What changed last in routing?"}]
    usages = []
    with httpx.Client(base_url=url, timeout=20) as client:
        for turn in range(len(OUTPUTS) + 2):
            body = {"model": MODEL, "max_tokens": 1024, "system": SYSTEM, "tools": TOOLS,
                    "messages": messages, "stream": stream}  # fmt: skip
            got = client.post(
                "/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"}
            )
            assert got.status_code == 200, got.text
            message, usage = _answer(got, stream)
            usages.append(usage)
            messages = [*messages, {"role": "assistant", "content": message}]
            if turn < len(OUTPUTS):
                call_id = message[-1]["id"]
                result = {
                    "type": "tool_result",
                    "tool_use_id": call_id,
                    "content": OUTPUTS[turn][1],
                }
                messages.append({"role": "user", "content": [result]})
            else:
                messages.append({"role": "user", "content": "Anything else?"})
    return usages


def _answer(got: httpx.Response, stream: bool) -> tuple[list[dict[str, Any]], dict[str, int]]:
    if not stream:
        data = got.json()
        return data["content"], data["usage"]
    blocks: dict[int, dict[str, Any]] = {}
    usage: dict[str, int] = {}
    for line in got.text.splitlines():
        if not line.startswith("data: "):
            continue
        event = json.loads(line[6:])
        if event["type"] == "message_start":
            usage = dict(event["message"]["usage"])
        elif event["type"] == "content_block_start":
            blocks[event["index"]] = dict(event["content_block"])
        elif event["type"] == "message_delta":
            usage["output_tokens"] = event["usage"]["output_tokens"]
    return [blocks[i] for i in sorted(blocks)], usage


def _prompt(usage: dict[str, int]) -> int:
    return usage["input_tokens"] + usage["cache_read_input_tokens"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_cache_reads_through_headroom_follow_the_direct_run(
    fleet: tuple[LLMUpstream, LLMUpstream, ProxyProcess], stream: bool
) -> None:
    direct, proxied, proxy = fleet
    _script(direct)
    _script(proxied)
    before = _tokens(proxy)
    plain = _conversation(direct.url, stream)
    through = _conversation(proxy.url, stream)
    # Sent directly, every turn reads the whole previous prompt from the cache.
    for n in range(1, len(plain)):
        assert plain[n]["cache_read_input_tokens"] == _prompt(plain[n - 1])
    # Through headroom: smaller prompts once outputs are compressed...
    assert _prompt(through[2]) < _prompt(plain[2]) * 0.6
    # ...the first marker's turn changes the tools once (a cache write on the real API)...
    assert through[1]["cache_read_input_tokens"] < _prompt(through[0])
    # ...and from then on every turn reads the whole previous prompt, as directly.
    for n in range(2, len(through)):
        assert through[n]["cache_read_input_tokens"] == _prompt(through[n - 1]), n
    # /stats counted what the answers said, and what compression saved on those requests.
    after = _tokens(proxy)
    row = after["by_api"]["anthropic"][MODEL]
    old = before.get("by_api", {}).get("anthropic", {}).get(MODEL, {})
    assert row["answers"] - old.get("answers", 0) == len(through)
    assert row["input"] - old.get("input", 0) == sum(_prompt(u) for u in through)
    assert row["cached"] - old.get("cached", 0) == sum(
        u["cache_read_input_tokens"] for u in through
    )
    assert row["output"] - old.get("output", 0) == sum(u["output_tokens"] for u in through)
    assert row["saved"] > old.get("saved", 0)
    assert row["cache_hit_rate"] == round(row["cached"] / row["input"], 4)
    cost = row["cost"]
    assert cost["priced"] and cost["without_headroom"] > cost["with_headroom"] > 0
    expected = ((row["input"] - row["cached"]) * 3 + row["cached"] * 0.3 + row["output"] * 15) / 1e6
    assert cost["with_headroom"] == pytest.approx(expected, abs=1e-6)
    # The estimate without headroom is near what the direct run was billed.
    direct_cost = sum(
        (u["input_tokens"] * 3 + u["cache_read_input_tokens"] * 0.3 + u["output_tokens"] * 15) / 1e6
        for u in plain
    )
    old_cost = old.get("cost", {}).get("without_headroom", 0.0)
    estimate = cost["without_headroom"] - old_cost
    assert abs(estimate - direct_cost) < 0.2 * direct_cost, (estimate, direct_cost)
    metrics = httpx.get(proxy.url + "/metrics").text
    labels = f'api="anthropic",kind="cached",model="{MODEL}"'
    assert f"headroom_provider_tokens_total{{{labels}}} {row['cached']}" in metrics
    assert f'headroom_estimated_cost_usd{{case="with_headroom",model="{MODEL}"}}' in metrics


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_with_the_tool_always_declared_every_turn_reads_the_whole_previous_prompt(
    fleet: tuple[LLMUpstream, LLMUpstream, ProxyProcess],
    always: tuple[LLMUpstream, ProxyProcess],
    stream: bool,
) -> None:
    """``--retrieve-tool always``: the tools hold ``headroom_retrieve`` from the first turn
    on, so no turn rewrites the cache, as in the direct run; the prompts stay compressed."""
    direct, _, _ = fleet
    upstream, proxy = always
    _script(direct)
    _script(upstream)
    plain = _conversation(direct.url, stream)
    through = _conversation(proxy.url, stream)
    for n in range(1, len(through)):
        assert through[n]["cache_read_input_tokens"] == _prompt(through[n - 1]), n
        assert plain[n]["cache_read_input_tokens"] == _prompt(plain[n - 1]), n
    assert _prompt(through[2]) < _prompt(plain[2]) * 0.6
    first = upstream.posts("/v1/messages")[0]
    assert b'"name":"headroom_retrieve"' in bytes(first.body)  # declared before any marker


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_a_retrieval_asked_before_any_marker_is_answered_by_the_proxy(
    always: tuple[LLMUpstream, ProxyProcess], stream: bool
) -> None:
    """Declared with nothing stored, the tool can still be called: the proxy answers the
    call (a miss) and the client gets only the model's next answer."""
    upstream, proxy = always
    upstream.clear()
    upstream.script(tool_turn(retrieve_call("0" * 24, "toolu_r")), text_turn("No such output."))
    body = {"model": MODEL, "max_tokens": 64, "tools": TOOLS, "stream": stream,
            "messages": [{"role": "user", "content": "Fetch it."}]}  # fmt: skip
    got = httpx.post(proxy.url + "/v1/messages", json=body, timeout=20, trust_env=False)
    assert got.status_code == 200, got.text
    blocks, _ = _answer(got, stream)
    assert [b["type"] for b in blocks] == ["text"], blocks
    assert b"headroom_retrieve" not in got.content
    posts = upstream.posts("/v1/messages")
    assert len(posts) == 2  # the proxy asked again with the call answered
    assert b"toolu_r" in bytes(posts[1].body)


def _tokens(proxy: ProxyProcess) -> dict[str, Any]:
    stats = httpx.get(proxy.url + "/stats").json()
    tokens: dict[str, Any] = stats["tokens"]
    return tokens
