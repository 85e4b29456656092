"""Issue 14 point 1 end to end: one proxy process in front of an Anthropic, an OpenAI and a
Gemini upstream at once, driven by the official SDKs and plain HTTP clients."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme

from tests.e2e import traffic
from tests.e2e.clients import Sent, anthropic_sync, openai_sync
from tests.e2e.conftest import FLAGS
from tests.support.llm_upstream import LLMUpstream, text_turn
from tests.support.proxy_process import ProxyGroup, ProxyProcess
from tests.support.upstream import FakeUpstream, free_port, serving

TASK = "why do payments fail?"
GEMINI_PATH = "/v1beta/models/gemini-2.5-flash:generateContent"


@dataclass
class Fleet:
    anthropic: LLMUpstream
    openai: LLMUpstream
    gemini: FakeUpstream  # over TLS, trusted only through --gemini-upstream-ca
    proxy: ProxyProcess

    def clear(self) -> None:
        for upstream in (self.anthropic, self.openai, self.gemini):
            upstream.clear()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    home = tmp_path_factory.mktemp("routing")
    ca = trustme.CA()
    ca_file = home / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    anthropic, openai, gemini = LLMUpstream(), LLMUpstream(), FakeUpstream(tls=tls)
    with serving(anthropic, openai, gemini), ProxyGroup() as group:
        args = [
            "--listen", "127.0.0.1:0", *FLAGS,
            "--anthropic-upstream", anthropic.url,
            "--openai-upstream", openai.url + "/openai",
            "--gemini-upstream", gemini.url, "--gemini-upstream-ca", str(ca_file),
        ]  # fmt: skip
        yield Fleet(anthropic, openai, gemini, group.start(args, home))


@pytest.fixture
def routed(fleet: Fleet) -> Fleet:
    assert fleet.proxy.running, fleet.proxy.output()
    fleet.clear()
    return fleet


def test_each_sdk_reaches_its_own_upstream_with_its_host(routed: Fleet) -> None:
    routed.anthropic.script(text_turn("from claude"))
    routed.openai.script(text_turn("from gpt"), text_turn("from responses"))
    sent = Sent()
    message = anthropic_sync(routed.proxy, sent).messages.create(
        model=traffic.CLAUDE_MODEL,
        max_tokens=64,
        messages=[{"role": "user", "content": "hi"}],
    )
    assert message.content[0].text == "from claude"  # type: ignore[union-attr]
    client = openai_sync(routed.proxy, sent)
    chat = client.chat.completions.create(
        model=traffic.CHAT_MODEL, messages=[{"role": "user", "content": "hi"}]
    )
    assert chat.choices[0].message.content == "from gpt"
    response = client.responses.create(model=traffic.CODEX_MODEL, input="hi")
    assert response.output_text == "from responses"
    got = httpx.post(
        f"{routed.proxy.url}{GEMINI_PATH}?key=AIza-test",
        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        trust_env=False,
    )
    assert got.status_code == 200, got.text
    (claude,) = routed.anthropic.requests
    assert claude.target == "/v1/messages"
    assert claude.header("host") == f"127.0.0.1:{routed.anthropic.port}"
    assert [r.target for r in routed.openai.requests] == [
        "/openai/v1/chat/completions",
        "/openai/v1/responses",
    ]
    assert {r.header("host") for r in routed.openai.requests} == {f"127.0.0.1:{routed.openai.port}"}
    (gemini,) = routed.gemini.requests
    assert gemini.target == f"{GEMINI_PATH}?key=AIza-test"  # the query key passes through
    assert routed.gemini.sni_names  # it came over TLS, verified with --gemini-upstream-ca


def test_tool_outputs_compress_on_every_api_upstream(routed: Fleet) -> None:
    log = traffic.service_log()
    routed.anthropic.script(text_turn("card_declined"))
    routed.openai.script(text_turn("card_declined"))
    claude = traffic.claude_code_body(TASK, [traffic.claude_step(0, "Bash", {}, log)], stream=False)
    codex = traffic.codex_body(TASK, [traffic.codex_step(0, "journalctl", log)], stream=False)
    sizes = []
    with httpx.Client(base_url=routed.proxy.url, trust_env=False, timeout=20) as http:
        for path, body in (("/v1/messages", claude), ("/v1/responses", codex)):
            sent = traffic.encode(body)
            sizes.append(len(sent))
            got = http.post(path, content=sent, headers={"content-type": "application/json"})
            assert got.status_code == 200, got.text
    for upstream, size in zip((routed.anthropic, routed.openai), sizes, strict=True):
        (request,) = upstream.requests
        forwarded = bytes(request.body)
        assert len(forwarded) < size - len(log.text) // 2  # the log lost over half its size
        assert b"headroom_retrieve" in forwarded
        for line in log.keep:
            assert json.dumps(line)[1:-1].encode() in forwarded


def test_a_request_no_upstream_takes_is_404_naming_the_flags(routed: Fleet) -> None:
    got = httpx.get(f"{routed.proxy.url}/v2/elsewhere", trust_env=False)
    assert got.status_code == 404
    error = got.json()["error"]
    assert error["type"] == "not_found"
    assert "--upstream" in error["message"] and "--gemini-upstream" in error["message"]
    assert got.headers["content-type"].startswith("application/json")
    for upstream in (routed.anthropic, routed.openai, routed.gemini):
        assert not upstream.requests


def test_models_list_goes_by_the_credentials(routed: Fleet) -> None:
    with httpx.Client(base_url=routed.proxy.url, trust_env=False) as http:
        http.get("/v1/models", headers={"x-api-key": "sk-ant", "anthropic-version": "2023-06-01"})
        http.get("/v1/models", headers={"authorization": "Bearer sk-proj"})
    assert [r.path for r in routed.anthropic.requests] == ["/v1/models"]
    assert [r.path for r in routed.openai.requests] == ["/openai/v1/models"]


def test_healthz_upstream_reports_each_and_stats_count_by_upstream(routed: Fleet) -> None:
    # The fake LLM APIs, like the real ones, have no /healthz: their probes answer 404.
    got = httpx.get(f"{routed.proxy.url}/healthz/upstream", trust_env=False)
    assert got.status_code == 503, got.text
    body = got.json()
    assert body == {
        "ok": False,
        "upstream_status": 404,  # the first failure's, at the top
        "upstreams": {
            "anthropic": {"url": routed.anthropic.url, "ok": False, "upstream_status": 404},
            "openai": {"url": routed.openai.url + "/openai", "ok": False, "upstream_status": 404},
            "gemini": {"url": routed.gemini.url, "ok": True},
        },
    }
    assert [r.path for r in routed.openai.requests] == ["/healthz"]  # the origin's own
    routed.gemini.health_status = 500
    got = httpx.get(f"{routed.proxy.url}/healthz/upstream", trust_env=False)
    assert got.json()["upstreams"]["gemini"] == {
        "url": routed.gemini.url,
        "ok": False,
        "upstream_status": 500,
    }
    before = httpx.get(f"{routed.proxy.url}/stats", trust_env=False).json()
    httpx.post(f"{routed.proxy.url}{GEMINI_PATH}", json={}, trust_env=False)
    after = httpx.get(f"{routed.proxy.url}/stats", trust_env=False).json()
    by_upstream = after["requests"]["by_upstream"]
    assert by_upstream["gemini"] == before["requests"]["by_upstream"].get("gemini", 0) + 1
    assert "upstream" not in by_upstream  # local answers count for no upstream
    metrics = httpx.get(f"{routed.proxy.url}/metrics", trust_env=False).text
    assert f'headroom_requests_by_upstream_total{{upstream="gemini"}} {by_upstream["gemini"]}' in (
        metrics
    )


def test_an_unreachable_api_upstream_is_counted_against_it(
    tmp_path: Path, llm_server: LLMUpstream
) -> None:
    args = ["--listen", "127.0.0.1:0", *FLAGS, "--upstream", llm_server.url]
    args += ["--openai-upstream", f"http://127.0.0.1:{free_port()}"]
    with ProxyGroup() as group:
        proxy = group.start(args, tmp_path)
        got = httpx.post(f"{proxy.url}/v1/chat/completions", json={}, trust_env=False)
        assert got.status_code == 502
        assert got.json()["error"]["type"] == "upstream_connect_error"
        other = httpx.get(f"{proxy.url}/echo", trust_env=False)  # the rest: --upstream
        assert (other.status_code, other.json()["error"]["message"]) == (404, "no /echo")
        stats = httpx.get(f"{proxy.url}/stats", trust_env=False).json()
        assert stats["upstream"]["errors_by_upstream"] == {"openai": 1}
        assert stats["requests"]["by_upstream"] == {"openai": 1, "upstream": 1}
        line = proxy.wait_for_log(lambda e: e.get("event") == "request" and e["status"] == 502)
        assert line["upstream"] == "openai"
