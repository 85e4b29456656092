"""A client that leaves stops the work: no orphan request reaches the paid upstream."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.e2e import traffic
from tests.support.llm_upstream import LLMUpstream, Text, Turn
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


def _stream_then_close(proxy: ProxyProcess, rid: str, stop_at: bytes) -> None:
    """A Codex-shaped client: read the Responses stream until ``stop_at``, then close."""
    body = traffic.encode(traffic.codex_body("what changed?", []))
    headers = {"content-type": "application/json", "authorization": "Bearer sk-test"}
    url = f"http://127.0.0.1:{proxy.port}/v1/responses"
    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", url, content=body, headers={**headers, "x-request-id": rid}) as got,
    ):
        assert got.status_code == 200
        seen = b""
        for chunk in got.iter_raw():
            seen += chunk
            if stop_at in seen:
                break
        assert stop_at in seen


def _logged(proxy: ProxyProcess, rid: str) -> dict:
    return proxy.wait_for_log(
        lambda e: e.get("event") == "request" and e.get("request_id") == rid, timeout=10
    )


def test_closing_right_after_the_last_event_is_a_normal_end(
    proxy: ProxyProcess, llm: LLMUpstream
) -> None:
    """Codex closes as soon as it has read response.completed, while the upstream's stream
    is still open: that request went well, and the log and /stats say ``ok``."""
    llm.script(Turn((Text("done"),), linger=2.0))
    _stream_then_close(proxy, "codex-close-after-completed", b"event: response.completed")
    assert _logged(proxy, "codex-close-after-completed")["outcome"] == "ok"


def test_closing_before_the_last_event_is_client_gone(
    proxy: ProxyProcess, llm: LLMUpstream
) -> None:
    gate = threading.Event()
    llm.script(Turn((Text("a longer answer that arrives in pieces"),), gate=gate))
    try:
        _stream_then_close(proxy, "codex-close-mid-stream", b"response.output_text.delta")
        # The rest of the stream stays held until the proxy has seen the client go: let go
        # earlier, its last event could be written into the closed socket before the close
        # is noticed, and that race is no one's early departure to judge.
        entry = _logged(proxy, "codex-close-mid-stream")
    finally:
        gate.set()
    assert entry["outcome"] == "client_gone"
