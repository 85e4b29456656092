"""``/stats`` and ``/metrics`` count exactly the traffic a fresh proxy saw:
requests by path and status, compressed and bypassed requests, compressions and
tokens saved by strategy, CCR retrievals over HTTP and by the tool loop, loop misses."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from headroom.ccr.markers import content_key
from tests.e2e import traffic
from tests.support.llm_upstream import LLMUpstream, retrieve_call, text_turn, tool_turn
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

HEADERS = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
TASK = "where is reconcile_ledger defined, and why do payments fail?"
LOG = traffic.service_log(lines=320, seed=41)
GREP = traffic.grep_output(seed=42)
LOG2 = traffic.service_log(lines=320, seed=43)


def _claude(steps: list[traffic.Step], **drop: bool) -> bytes:
    payload = traffic.claude_code_body(TASK, steps, stream=False)
    for key in drop:
        payload.pop(key)
    return traffic.encode(payload)


def _stats(url: str, total: int) -> dict[str, Any]:
    """/stats once it has counted ``total`` requests (a request is counted just after its
    last byte went out, so the client may ask a moment before)."""

    def counted() -> dict[str, Any] | None:
        got: dict[str, Any] = httpx.get(url + "/stats", timeout=10, trust_env=False).json()
        return got if got["requests"]["total"] >= total else None

    found: dict[str, Any] = wait_for(counted, 3, f"/stats counting {total} requests")
    return found


def _samples(text: str) -> dict[str, float]:
    """``name{labels}`` → value, checking every sample's metric has HELP and TYPE first."""
    described: set[str] = set()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            described.add(line.split()[2])
            continue
        if not line.strip():
            continue
        name_labels, value = line.rsplit(" ", 1)
        base = re.sub(r"(_bucket|_sum|_count)$", "", name_labels.split("{")[0])
        assert base in described or name_labels.split("{")[0] in described, line
        out[name_labels] = float(value)
    return out


def test_stats_and_metrics_match_the_traffic(start_proxy, llm: LLMUpstream) -> None:
    proxy = start_proxy()
    url = proxy.url
    post = lambda path, body, headers=HEADERS: httpx.post(  # noqa: E731
        url + path, content=body, headers=headers, timeout=15, trust_env=False
    )
    steps = [
        traffic.claude_step(0, "Bash", {"command": "kubectl logs api"}, LOG),
        traffic.claude_step(1, "Grep", {"pattern": "ledger"}, GREP),
    ]
    loop_steps = [traffic.claude_step(0, "Bash", {"command": "journalctl"}, LOG2)]
    llm.script(
        text_turn("one"),  # 1
        text_turn("chat"),  # 3
        text_turn("bypassed"),  # 4
        tool_turn(retrieve_call(content_key(LOG2.text))),  # 6, loop round
        text_turn("found it"),
        tool_turn(retrieve_call("f" * 24)),  # 7, loop miss
        text_turn("gone"),
    )
    calls = [
        post("/v1/messages?beta=true", _claude(steps)),  # 1: log + search
        post(
            "/v1/messages/count_tokens?beta=true",
            _claude(steps, max_tokens=True, temperature=True, metadata=True, stream=True),
        ),  # 2: log + search
        post(
            "/v1/chat/completions",
            traffic.encode(
                traffic.chat_body("hi", [traffic.chat_step(0, "ls", traffic.small("a"))])
            ),
        ),  # 3: nothing to do
        post("/v1/messages", _claude(steps), {**HEADERS, "x-headroom-bypass": "true"}),  # 4
        httpx.get(f"{url}/v1/retrieve/{content_key(LOG.text)}", trust_env=False),  # 5
        post("/v1/messages", _claude(loop_steps)),  # 6: log, one loop retrieval
        post("/v1/messages", _claude(loop_steps)),  # 7: log, one loop miss
    ]
    assert [c.status_code for c in calls] == [200] * 7, [c.text[:200] for c in calls]
    stats = _stats(url, 7)

    requests = stats["requests"]
    assert requests["total"] == 7
    assert requests["by_status"] == {"200": 7}
    paths = requests["by_path"]
    assert paths["/v1/messages"] == 4
    assert paths["/v1/messages/count_tokens"] == 1
    assert paths["/v1/chat/completions"] == 1

    compression = stats["compression"]
    assert compression["requests_compressed"] == 4
    assert sum(v for k, v in compression["bypassed"].items() if "header" in k) == 1, compression
    assert stats["compressions_by_strategy"] == {"log": 4, "search": 2}
    saved = stats["tokens_saved_by_strategy"]
    assert set(saved) == {"log", "search"} and min(saved.values()) > 0
    assert compression["tokens_saved"] == sum(saved.values())
    assert compression["tokens_saved"] == compression["tokens_before"] - compression["tokens_after"]

    ccr = stats["ccr"]
    assert ccr["retrievals_by_tool_loop"] == 1
    assert ccr["tool_loop_misses"] == 1
    assert ccr["stores"] >= 3 and ccr["store_failures"] == 0
    assert stats["ccr_endpoints"]["retrievals_ok"] == 1

    metrics = httpx.get(url + "/metrics", trust_env=False)
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    samples = _samples(metrics.text)
    assert samples['headroom_compressions_total{strategy="log"}'] == 4
    assert samples['headroom_compressions_total{strategy="search"}'] == 2
    assert samples["headroom_compressed_requests_total"] == 4
    assert samples['headroom_requests_by_path_total{path="/v1/messages"}'] == 4
    assert samples['headroom_requests_total{status="200"}'] >= 7
    assert samples["headroom_compression_ratio_count"] == 4
    assert (
        sum(v for k, v in samples.items() if k.startswith("headroom_tokens_saved_total{"))
        == compression["tokens_saved"]
    )
    caches = stats["caches"]
    memo = caches["compressed_outputs"]
    # log, search and the loop log (request 7 re-sends request 6's output: a memo hit)
    assert memo["entries"] == 3 and memo["bytes"] > len(LOG.text), caches
    # Requests 6 and 7 each had a round served (one found its original, one did not): both
    # are recorded, and this process holds both ready, the found original filled in.
    rounds = caches["retrieval_ledger"]
    assert rounds["entries"] == 2 and rounds["bytes"] > len(LOG2.text), rounds
    assert ccr["rounds"] == {"remembered": 2, "restored": 0, "missed": 0, "too_large": 0}
    assert samples["headroom_rounds_remembered_total"] == 2
    assert samples["headroom_rounds_restored_total"] == 0
    assert samples["headroom_memo_bytes"] == memo["bytes"]
    assert samples["headroom_retrieval_ledger_bytes"] == rounds["bytes"]
    json.dumps(stats)  # plain JSON all the way down
    labels = [k for k in samples if re.search(r"[0-9a-f]{24}", k)] + [
        p for p in paths if re.search(r"[0-9a-f]{24}", p)
    ]
    assert not labels, f"CCR hashes became path labels (unbounded cardinality): {labels}"
