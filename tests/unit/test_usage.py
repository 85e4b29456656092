"""Token counts read from answers as they are relayed (each API, JSON and SSE, split
anywhere), their tally by API and model, and the price table behind the cost estimate."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from headroom.prices import PriceTableError, load_prices
from headroom.protocol.events import ResponseHead
from headroom.providers.usage import Usage
from headroom.proxy.usage_tap import MAX_COPY, UsageTap
from headroom.telemetry.metrics import prometheus
from headroom.telemetry.stats import Stats
from headroom.telemetry.tokens import MAX_ROWS, TokenTally


def _head(ctype: bytes, status: int = 200, coding: bytes | None = None) -> ResponseHead:
    headers = [(b"content-type", ctype)]
    if coding is not None:
        headers.append((b"content-encoding", coding))
    return ResponseHead(status, headers, b"", [n for n, _ in headers])


def _sse(*events: tuple[str, dict[str, Any]]) -> bytes:
    out = b""
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        out += f"{head}data: {json.dumps(data)}\r\n\r\n".encode()
    return out


def _tap(provider: str, head: ResponseHead, body: bytes, step: int = 7) -> UsageTap:
    tap = UsageTap(provider)
    tap.start(head)
    for i in range(0, len(body), step):  # split anywhere, even inside an event
        tap.feed(body[i : i + step])
    return tap


SSE = b"text/event-stream"
JSON = b"application/json"


def test_anthropic_counts_cache_reads_and_writes_as_input() -> None:
    message = {
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": 'say "usage": no'}],
        "usage": {
            "input_tokens": 10,
            "cache_read_input_tokens": 900,
            "cache_creation_input_tokens": 90,
            "output_tokens": 5,
        },
    }
    whole = _tap("anthropic", _head(JSON), json.dumps(message).encode()).end()
    assert whole == Usage("claude-sonnet-4-5", 1000, 900, 90, 5)
    start = {
        "type": "message_start",
        "message": {**message, "usage": {**message["usage"], "output_tokens": 1}},
    }
    stream = _sse(
        ("message_start", start),
        ("content_block_delta", {"type": "content_block_delta", "delta": {"text": '"usage":'}}),
        ("message_delta", {"type": "message_delta", "usage": {"output_tokens": 42}}),
        ("message_stop", {"type": "message_stop"}),
    )
    assert _tap("anthropic", _head(SSE), stream).end() == Usage(
        "claude-sonnet-4-5", 1000, 900, 90, 42
    )


def test_openai_chat_and_responses_counts() -> None:
    usage = {
        "prompt_tokens": 500,
        "completion_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 384},
    }
    chunks = b"".join(
        [
            _sse(("", {"model": "gpt-4o", "choices": [{"delta": {"content": "hi"}}]})),
            _sse(("", {"model": "gpt-4o", "choices": [], "usage": usage})),
            b"data: [DONE]\n\n",
        ]
    )
    assert _tap("openai_chat", _head(SSE), chunks).end() == Usage("gpt-4o", 500, 384, 0, 7)
    response = {
        "model": "gpt-5",
        "usage": {
            "input_tokens": 2000,
            "output_tokens": 30,
            "input_tokens_details": {"cached_tokens": 1024},
        },
    }
    done = _sse(
        ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "x"}),
        ("response.completed", {"type": "response.completed", "response": response}),
    )
    assert _tap("openai_responses", _head(SSE), done).end() == Usage("gpt-5", 2000, 1024, 0, 30)
    assert _tap("openai_responses", _head(JSON), json.dumps(response).encode()).end() == Usage(
        "gpt-5", 2000, 1024, 0, 30
    )


def test_gemini_counts_the_last_running_total_and_thoughts_as_output() -> None:
    def chunk(prompt: int, out: int, cached: int = 0) -> dict[str, Any]:
        meta = {"promptTokenCount": prompt, "candidatesTokenCount": out, "thoughtsTokenCount": 3}
        if cached:
            meta["cachedContentTokenCount"] = cached
        return {"candidates": [], "usageMetadata": meta, "modelVersion": "gemini-2.5-flash"}

    stream = _sse(("", chunk(100, 1)), ("", chunk(100, 9, cached=64)))
    assert _tap("gemini_stream", _head(SSE), stream).end() == Usage(
        "gemini-2.5-flash", 100, 64, 0, 12
    )
    body = gzip.compress(json.dumps(chunk(50, 2)).encode())
    encoded = _tap("gemini", _head(JSON, coding=b"gzip"), body)
    assert encoded.end() == Usage("gemini-2.5-flash", 50, 0, 0, 5) and not encoded.unread


def test_what_cannot_be_read_is_said_and_errors_are_not_answers() -> None:
    big = json.dumps({"model": "m", "pad": "x" * MAX_COPY, "usage": {"prompt_tokens": 1}}).encode()
    too_big = _tap("openai_chat", _head(JSON), big, step=65536)
    assert too_big.end() is None and too_big.unread
    encoded_stream = _tap("anthropic", _head(SSE, coding=b"gzip"), b"\x1f\x8b junk")
    assert encoded_stream.end() is None and encoded_stream.unread
    broken = _tap("gemini", _head(JSON, coding=b"gzip"), b"not gzip")
    assert broken.end() is None and broken.unread
    error = _tap("anthropic", _head(JSON, status=429), b'{"usage": {"input_tokens": 5}}')
    assert error.end() is None and not error.unread
    count = _tap("anthropic", _head(JSON), b'{"input_tokens": 12}')  # count_tokens' answer
    assert count.end() is None and not count.unread


def test_tally_sums_across_processes_and_rates_the_cache() -> None:
    one, two = TokenTally(), TokenTally()
    one.add("anthropic", "claude-sonnet-4-5", (1000, 900, 50, 10), 400)
    two.add("anthropic", "claude-sonnet-4-5", (1000, 100, 0, 10), 0)
    two.add("gemini", "", (10, 0, 0, 1), 0)
    two.not_read("openai")
    stats = Stats()
    for tally in (one, two):
        part = Stats()
        part.tokens = tally
        stats.add_data(json.loads(json.dumps(part.to_data())))
    snap = stats.snapshot()["tokens"]
    claude = snap["by_api"]["anthropic"]["claude-sonnet-4-5"]
    assert claude["answers"] == 2 and claude["input"] == 2000 and claude["cached"] == 1000
    assert claude["cache_hit_rate"] == 0.5 and claude["saved"] == 400
    assert snap["by_api"]["gemini"]["unknown"]["input"] == 10
    assert snap["input"] == 2010 and snap["unread"] == {"openai": 1}
    assert "cost" not in snap


def test_cost_with_and_without_headroom_from_a_price_table(tmp_path: Path) -> None:
    table = tmp_path / "prices.json"
    table.write_text(json.dumps({"models": {
        "claude-sonnet-4": {"input": 3, "cached_input": 0.3, "cache_write": 3.75, "output": 15},
        "claude-sonnet-4-5": {"input": 4, "output": 20},
    }}))  # fmt: skip
    prices = load_prices(table)
    stats = Stats()
    stats.tokens.add(
        "anthropic", "claude-sonnet-4-20250514", (1_000_000, 500_000, 100_000, 10_000), 250_000
    )
    stats.tokens.add("anthropic", "claude-sonnet-4-5-x", (1_000_000, 0, 0, 0), 0)
    stats.tokens.add("openai", "gpt-9", (5, 0, 0, 0), 0)
    snap = stats.snapshot(prices=prices)["tokens"]
    cost = snap["by_api"]["anthropic"]["claude-sonnet-4-20250514"]["cost"]
    billed = 0.4 * 3 + 0.5 * 0.3 + 0.1 * 3.75 + 0.01 * 15
    assert cost["with_headroom"] == pytest.approx(billed)
    # half the prompt was a cache read: half the saved tokens are priced as cached input
    assert cost["without_headroom"] == pytest.approx(billed + 0.125 * 3 + 0.125 * 0.3)
    assert snap["by_api"]["anthropic"]["claude-sonnet-4-5-x"]["cost"]["with_headroom"] == 4.0
    assert snap["cost"]["unpriced_models"] == ["gpt-9"]
    assert snap["cost"]["saved"] == pytest.approx(0.4125)
    text = prometheus(stats, prices=prices)
    assert (
        'headroom_provider_tokens_total{api="anthropic",kind="cached",'
        'model="claude-sonnet-4-20250514"} 500000' in text
    )
    assert (
        'headroom_estimated_cost_usd{case="without_headroom",model="claude-sonnet-4-5-x"} 4' in text
    )
    shipped = Path(__file__).resolve().parents[2] / "headroom" / "prices.example.json"
    assert load_prices(shipped).find("gpt-4o-2024-08-06") is not None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("{", "is not JSON"),
        ('{"models": {}}', "expected"),
        ('{"models": {"m": {"input": 1}}, "extra": 1}', "unknown keys ['extra']"),
        ('{"models": {"m": {"input": 1, "output": 2, "cheap": 0}}}', "unknown keys ['cheap']"),
        ('{"models": {"m": {"input": 1}}}', "models.m.output must be a number"),
        ('{"models": {"m": {"input": -1, "output": 1}}}', "models.m.input must be a finite"),
        ('{"models": {"m": {"input": true, "output": 1}}}', "models.m.input must be a number"),
        ('{"models": {"m": 3}}', "models.m must be an object"),
    ],
)
def test_a_wrong_price_table_names_what_is_wrong(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "prices.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(PriceTableError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_prices(path)


def test_model_names_past_the_cap_are_counted_as_other() -> None:
    tally = TokenTally()
    for i in range(MAX_ROWS + 5):
        tally.add("openai", f"model-{i}", (10, 2, 0, 1), 3)
    tally.add("openai", "model-0", (10, 2, 0, 1), 3)
    assert len(tally.rows) == MAX_ROWS + 1
    assert tally.rows[("openai", "other")][:2] == [5, 50]  # answers, input of the late five
    assert tally.rows[("openai", "model-0")][0] == 2
    assert sum(row[0] for row in tally.rows.values()) == MAX_ROWS + 6
