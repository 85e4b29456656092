"""A client that leaves stops the work: no orphan request reaches the paid upstream."""

from __future__ import annotations

import time

import pytest

from tests.e2e import traffic
from tests.support.llm_upstream import LLMUpstream
from tests.support.proxy_process import ProxyProcess
from tests.support.rawhttp import RawConn, build_request

pytestmark = pytest.mark.timeout(60)


def test_client_gone_during_compression_sends_nothing_upstream(
    proxy: ProxyProcess, llm: LLMUpstream
) -> None:
    """A 4 MB body takes the engine most of a second; the client closes at once."""
    steps = [
        traffic.claude_step(i, "Bash", {}, traffic.service_log(lines=8000, seed=70 + i))
        for i in range(5)
    ]
    body = traffic.encode(traffic.claude_code_body("why?", steps, stream=False))
    head = [
        ("Host", "127.0.0.1"),
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
    ]
    with RawConn(proxy.port) as conn:
        conn.send(build_request("POST", "/v1/messages", head, body))
        time.sleep(0.02)
    entry = proxy.wait_for_log(
        lambda e: e.get("event") == "request" and e.get("bytes_in") == len(body), timeout=10
    )
    assert entry["outcome"] == "client_gone", entry
    time.sleep(0.5)
    assert llm.posts("/v1/messages") == [], "the proxy sent an orphan request upstream"
