"""Switches and encodings: bypass header, ``--compression off``, encoded request bodies,
and count_tokens compressing exactly like the message it precedes."""

from __future__ import annotations

import gzip
import json
import zlib

import brotli
import httpx
import pytest
import zstandard

from tests.e2e import traffic
from tests.e2e.splice import assert_compressed, assert_originals_back, splice
from tests.support.llm_upstream import LLMUpstream
from tests.support.proxy_process import ProxyProcess
from tests.support.upstream import Recorded

pytestmark = pytest.mark.timeout(60)

JSON = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
LOG = traffic.service_log(lines=320, seed=21)
GREP = traffic.grep_output(seed=22)


def _claude_body(**kw: bool) -> tuple[bytes, list[traffic.Output]]:
    steps = [
        traffic.claude_step(0, "Bash", {"command": "kubectl logs api"}, LOG),
        traffic.claude_step(1, "Grep", {"pattern": "ledger"}, GREP),
    ]
    task = "where is reconcile_ledger defined, and why do payments fail?"
    body = traffic.encode(traffic.claude_code_body(task, steps, **kw))
    return body, [LOG, GREP]


def _post(url: str, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    got = httpx.post(url + path, content=body, headers=headers, timeout=15, trust_env=False)
    assert got.status_code == 200, got.text[:500]
    return got


def _only(llm: LLMUpstream, suffix: str) -> Recorded:
    posts = llm.posts(suffix)
    assert len(posts) == 1, [p.target for p in posts]
    return posts[0]


# -------------------------------------------------------------------- bypass and off


def test_bypass_header_forwards_byte_identical_and_is_not_forwarded(
    proxy: ProxyProcess, llm: LLMUpstream
) -> None:
    body, _ = _claude_body()
    headers = {**JSON, "x-headroom-bypass": "true", "anthropic-beta": "interleaved-thinking"}
    _post(proxy.url, "/v1/messages?beta=true", body, headers)
    rec = _only(llm, "/v1/messages")
    assert bytes(rec.body) == body
    assert "x-headroom-bypass" not in rec.names()
    assert rec.header("anthropic-beta") == "interleaved-thinking"


def test_compression_off_forwards_every_api_byte_identical(start_proxy, llm: LLMUpstream) -> None:
    off = start_proxy("--compression", "off")
    claude, _ = _claude_body()
    codex = traffic.encode(
        traffic.codex_body("why?", [traffic.codex_step(0, "journalctl", LOG)], stream=False)
    )
    chat = traffic.encode(traffic.chat_body("why?", [traffic.chat_step(0, "journalctl", LOG)]))
    for path, body in (
        ("/v1/messages", claude),
        ("/v1/responses", codex),
        ("/v1/chat/completions", chat),
    ):
        _post(off.url, path, body, JSON)
        assert bytes(_only(llm, path).body) == body, path
    count = json.loads(claude)
    for key in ("stream", "max_tokens", "temperature", "metadata"):
        count.pop(key)
    count_body = traffic.encode(count)
    _post(off.url, "/v1/messages/count_tokens", count_body, JSON)
    assert bytes(_only(llm, "/v1/messages/count_tokens").body) == count_body


# -------------------------------------------------------------------- encoded request bodies

ENCODERS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
    "br": brotli.compress,
}


@pytest.mark.parametrize("encoding", list(ENCODERS))
def test_encoded_body_is_decoded_compressed_and_sent_plain(
    proxy: ProxyProcess, llm: LLMUpstream, encoding: str
) -> None:
    body, outputs = _claude_body()
    encoded = ENCODERS[encoding](body)
    _post(proxy.url, "/v1/messages", encoded, {**JSON, "content-encoding": encoding})
    rec = _only(llm, "/v1/messages")
    assert rec.header("content-encoding") is None, "decoded body sent with Content-Encoding"
    forwarded = bytes(rec.body)
    if rec.framing == "content-length":
        assert rec.header("content-length") == str(len(forwarded))
    spliced = splice(body, forwarded, [o.text for o in outputs])
    for value, output in zip(spliced.values, outputs, strict=True):
        assert_originals_back(proxy.url, assert_compressed(value, output), output.text)
    assert [t["name"] for t in spliced.inserted] == ["headroom_retrieve"]


def test_encoded_body_with_nothing_to_compress_stays_consistent(
    proxy: ProxyProcess, llm: LLMUpstream
) -> None:
    """Either the original encoded bytes with their header, or the decoded bytes without."""
    body = traffic.encode(traffic.claude_code_body("hello", []))
    _post(proxy.url, "/v1/messages", gzip.compress(body), {**JSON, "content-encoding": "gzip"})
    rec = _only(llm, "/v1/messages")
    if rec.header("content-encoding") == "gzip":
        assert gzip.decompress(bytes(rec.body)) == body
    else:
        assert rec.header("content-encoding") is None
        assert bytes(rec.body) == body


@pytest.mark.parametrize(
    ("encoding", "make"),
    [("x-unknown", lambda b: b[::-1]), ("gzip", lambda b: b"\x1f\x8b\x08\x00corrupt" + b)],
    ids=["unknown-encoding", "corrupt-gzip"],
)
def test_undecodable_body_is_forwarded_untouched(
    proxy: ProxyProcess, llm: LLMUpstream, encoding: str, make
) -> None:
    body, _ = _claude_body(stream=False)
    sent = make(body)
    httpx.post(
        proxy.url + "/v1/messages",
        content=sent,
        headers={**JSON, "content-encoding": encoding},
        timeout=15,
        trust_env=False,
    )
    rec = _only(llm, "/v1/messages")
    assert bytes(rec.body) == sent
    assert rec.header("content-encoding") == encoding


def test_decoded_size_is_bounded(start_proxy, llm: LLMUpstream) -> None:
    small = start_proxy("--max-body-bytes", "1MB")
    payload = traffic.claude_code_body("x" * 3_000_000, [], stream=False)
    bomb = gzip.compress(traffic.encode(payload))
    assert len(bomb) < 100_000
    got = httpx.post(
        small.url + "/v1/messages",
        content=bomb,
        headers={**JSON, "content-encoding": "gzip"},
        timeout=15,
        trust_env=False,
    )
    assert got.status_code == 413, got.text[:300]
    assert llm.posts("/v1/messages") == []


# -------------------------------------------------------------------- count_tokens


def test_count_tokens_compresses_like_the_message(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    """Claude Code counts tokens with the same messages, system and tools just before it
    sends the message: both must carry the same compressed outputs and the same tools."""
    body, outputs = _claude_body()
    count = json.loads(body)
    for key in ("stream", "max_tokens", "temperature", "metadata"):
        count.pop(key)
    count_body = traffic.encode(count)
    counted = _post(proxy.url, "/v1/messages/count_tokens?beta=true", count_body, JSON)
    _post(proxy.url, "/v1/messages?beta=true", body, JSON)
    fwd_count = bytes(_only(llm, "/v1/messages/count_tokens").body)
    fwd_msg = bytes(_only(llm, "/v1/messages").body)
    in_count = splice(count_body, fwd_count, [o.text for o in outputs])
    in_msg = splice(body, fwd_msg, [o.text for o in outputs])
    assert in_count.values == in_msg.values
    assert in_count.values[0] != LOG.text, "count_tokens body was not compressed"
    assert in_count.inserted == in_msg.inserted != []
    # The count the agent sees is the count of what the model will see (fake: 4 bytes/token).
    assert counted.json()["input_tokens"] == len(fwd_count) // 4


def test_compression_past_its_deadline_forwards_the_original(start_proxy, llm: LLMUpstream) -> None:
    """``--compression-timeout``: a body that takes longer goes out as sent, counted."""
    hasty = start_proxy("--compression-timeout", "1ms")
    big = traffic.service_log(lines=12_000, seed=23)
    steps = [traffic.claude_step(0, "Read", {"file_path": "/var/log/api.log"}, big)]
    body = traffic.encode(traffic.claude_code_body("why do payments fail?", steps, stream=False))
    _post(hasty.url, "/v1/messages", body, JSON)
    assert bytes(_only(llm, "/v1/messages").body) == body
    stats = httpx.get(hasty.url + "/stats", trust_env=False).json()
    assert stats["compression"]["bypassed"].get("timeout") == 1, stats["compression"]


def test_chunked_request_body_is_compressed_and_sent_with_a_length(
    proxy: ProxyProcess, llm: LLMUpstream
) -> None:
    body, outputs = _claude_body(stream=False)

    def pieces():
        for at in range(0, len(body), 7000):
            yield body[at : at + 7000]

    _post(proxy.url, "/v1/messages", pieces(), JSON)  # type: ignore[arg-type]
    rec = _only(llm, "/v1/messages")
    assert rec.framing == "content-length" and rec.header("content-length") == str(len(rec.body))
    spliced = splice(body, bytes(rec.body), [o.text for o in outputs])
    assert_compressed(spliced.values[0], outputs[0])
