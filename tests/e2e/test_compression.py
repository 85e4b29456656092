"""Big tool outputs arrive at the upstream shorter, and nothing else in the body changes.

For every body: the forwarded bytes are the client's bytes with only the tool-output
strings replaced and the retrieval tool appended once (``splice``); compressed values keep
their must-keep lines verbatim; every marker's hash gives the original back over
``GET /v1/retrieve/<hash>``; a later turn compresses earlier outputs to the same bytes.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e import traffic
from tests.e2e.clients import Sent, openai_sync
from tests.e2e.splice import (
    assert_compressed,
    assert_originals_back,
    assert_retrieve_tool,
    retrieve_tools,
    splice,
)
from tests.e2e.traffic import Output
from tests.support.llm_upstream import LLMUpstream, text_turn
from tests.support.proxy_process import ProxyProcess

pytestmark = pytest.mark.timeout(60)

JSON = {"content-type": "application/json"}
TASK = "where is reconcile_ledger defined, and why do payments fail?"
BASH_LOG = traffic.service_log(lines=320)  # Claude Code caps Bash output at 30,000 chars
assert len(BASH_LOG.text) <= traffic.BASH_LIMIT


def _forward(
    http: httpx.Client, llm: LLMUpstream, path: str, body: bytes, headers: dict[str, str] = JSON
) -> bytes:
    got = http.post(path, content=body, headers=headers)
    assert got.status_code == 200, got.text[:500]
    posts = llm.posts(path.split("?")[0])
    assert len(posts) == 1, [p.target for p in posts]
    rec = posts[0]
    assert rec.header("content-encoding") is None
    if rec.framing == "content-length":
        assert rec.header("content-length") == str(len(rec.body))
    return bytes(rec.body)


def _claude_steps() -> list[traffic.Step]:
    return [
        traffic.claude_step(0, "Bash", {"command": "kubectl logs api --tail 320"}, BASH_LOG),
        traffic.claude_step(
            1, "Grep", {"pattern": "ledger", "output_mode": "content"}, traffic.grep_output()
        ),
        traffic.claude_step(2, "Bash", {"command": "curl -s :8080/jobs"}, traffic.job_rows()),
    ]


def _check(
    proxy: ProxyProcess, sent: bytes, forwarded: bytes, outputs: list[Output], api: str
) -> list[str]:
    """The whole contract for one compressed body; returns the forwarded values."""
    spliced = splice(sent, forwarded, [o.text for o in outputs])
    for value, output in zip(spliced.values, outputs, strict=True):
        keys = assert_compressed(value, output)
        assert_originals_back(proxy.url, keys, output.text)
    assert len(spliced.inserted) == 1, spliced.inserted
    assert_retrieve_tool(spliced.inserted[0], api)
    assert len(retrieve_tools(json.loads(forwarded)["tools"], api)) == 1
    return spliced.values


@pytest.mark.parametrize("pretty", [False, True], ids=["compact", "indented"])
def test_claude_code_outputs_compressed_rest_byte_identical(
    proxy: ProxyProcess, llm: LLMUpstream, http: httpx.Client, pretty: bool
) -> None:
    """A log, a grep and a JSON answer in one Claude Code body, with signed thinking blocks,
    the 76 KB system prompt and (indented variant) whitespace the proxy must not touch."""
    steps = _claude_steps()
    body = traffic.encode(traffic.claude_code_body(TASK, steps), pretty=pretty)
    forwarded = _forward(http, llm, "/v1/messages?beta=true", body)
    assert llm.posts("/v1/messages")[0].target == "/v1/messages?beta=true"
    _check(proxy, body, forwarded, [s.output for s in steps], "anthropic")


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_codex_exec_command_outputs_compressed(
    proxy: ProxyProcess, llm: LLMUpstream, http: httpx.Client, stream: bool
) -> None:
    """Codex streams; its ``exec_command`` outputs compress like any tool output."""
    steps = [
        traffic.codex_step(0, "rg -n ledger src", traffic.grep_output()),
        traffic.codex_step(1, "journalctl -u api -n 600", traffic.service_log()),
    ]
    body = traffic.encode(traffic.codex_body(TASK, steps, stream=stream))
    headers = {**JSON, "accept": "text/event-stream"}
    forwarded = _forward(http, llm, "/v1/responses", body, headers)
    _check(proxy, body, forwarded, [s.output for s in steps], "responses")


def test_openai_sdk_chat_tool_output_compressed(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    log = traffic.service_log()
    step = traffic.chat_step(0, "journalctl -u api", log)
    payload = traffic.chat_body("why do payments fail?", [step])
    llm.script(text_turn("card_declined on order 5521"))
    sent = Sent()
    completion = openai_sync(proxy, sent).chat.completions.create(**payload)
    assert completion.choices[0].message.content == "card_declined on order 5521"
    forwarded = bytes(llm.posts("/v1/chat/completions")[0].body)
    _check(proxy, sent.last, forwarded, [log], "chat")


def test_openai_chat_text_parts_compressed(
    proxy: ProxyProcess, llm: LLMUpstream, http: httpx.Client
) -> None:
    log = traffic.service_log(seed=11)
    payload = traffic.chat_body("why do payments fail?", [traffic.chat_step(0, "logs", log)])
    tool_msg = payload["messages"][-1]
    tool_msg["content"] = [{"type": "text", "text": log.text}]
    body = traffic.encode(payload)
    forwarded = _forward(http, llm, "/v1/chat/completions", body)
    _check(proxy, body, forwarded, [log], "chat")


def test_anthropic_text_blocks_compressed_image_untouched(
    proxy: ProxyProcess, llm: LLMUpstream, http: httpx.Client
) -> None:
    """A tool_result whose content is blocks: the big text block shrinks; a small text
    block and an image block (base64 data far above the threshold) stay as sent."""
    log = traffic.service_log(seed=12)
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo" * 500},
    }
    payload = traffic.claude_code_body(TASK, [traffic.claude_step(0, "Bash", {}, log)])
    payload["messages"][2]["content"][0]["content"] = [
        {"type": "text", "text": "exit code 1"},
        {"type": "text", "text": log.text},
        image,
    ]
    body = traffic.encode(payload)
    forwarded = _forward(http, llm, "/v1/messages", body)
    _check(proxy, body, forwarded, [log], "anthropic")


def test_existing_retrieve_tool_is_not_added_again(
    proxy: ProxyProcess, llm: LLMUpstream, http: httpx.Client
) -> None:
    """The client already lists ``headroom_retrieve`` (a later turn, or an MCP server)."""
    log = traffic.service_log(seed=13)
    payload = traffic.claude_code_body(TASK, [traffic.claude_step(0, "Bash", {}, log)])
    payload["tools"] = [
        *payload["tools"],
        {
            "name": "headroom_retrieve",
            "description": "client's own copy",
            "input_schema": {"type": "object", "properties": {"hash": {"type": "string"}}},
        },
    ]
    body = traffic.encode(payload)
    forwarded = _forward(http, llm, "/v1/messages", body)
    spliced = splice(body, forwarded, [log.text])
    assert spliced.inserted == []
    assert_compressed(spliced.values[0], log)


def test_what_must_never_be_compressed(
    proxy: ProxyProcess, llm: LLMUpstream, http: httpx.Client
) -> None:
    """System prompt, user text, assistant text, thinking, headroom_retrieve's own output
    and an output that already carries a marker: all big, all forwarded byte-identical."""
    big = traffic.service_log(seed=14).text
    payload = traffic.claude_code_body(big, [], stream=False)
    marked = traffic.service_log(seed=15).text + (
        "\n[400 lines compressed to 12. Retrieve more: hash=0123456789abcdef01234567]"
    )
    payload["messages"] += [
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": big, "signature": traffic.signature(7)},
                {"type": "text", "text": big + " (assistant)"},
                {"type": "tool_use", "id": "toolu_r", "name": "headroom_retrieve",
                 "input": {"hash": "0123456789abcdef01234567"}},
                {"type": "tool_use", "id": "toolu_m", "name": "Bash", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_r", "content": big + " (retrieved)"},
                {"type": "tool_result", "tool_use_id": "toolu_m", "content": marked},
            ],
        },
    ]  # fmt: skip
    body = traffic.encode(payload)
    assert _forward(http, llm, "/v1/messages", body) == body


def test_second_turn_compresses_earlier_outputs_to_the_same_bytes(
    proxy: ProxyProcess, llm: LLMUpstream, http: httpx.Client, start_proxy
) -> None:
    """Turn 2 = turn 1 + the model's reply + a new tool call and result. The forwarded
    turn 2 starts with the bytes of forwarded turn 1's messages (prompt cache prefix), and
    a fresh proxy process compresses turn 1 to the same bytes too."""
    first = traffic.claude_step(0, "Bash", {"command": "kubectl logs api"}, BASH_LOG)
    second = traffic.claude_step(1, "Grep", {"pattern": "ledger"}, traffic.grep_output())
    body1 = traffic.encode(traffic.claude_code_body(TASK, [first]))
    body2 = traffic.encode(traffic.claude_code_body(TASK, [first, second]))
    fwd1 = _forward(http, llm, "/v1/messages", body1)
    llm.clear()
    fwd2 = _forward(http, llm, "/v1/messages", body2)
    (v1,) = _check(proxy, body1, fwd1, [first.output], "anthropic")
    v2a, _ = _check(proxy, body2, fwd2, [first.output, second.output], "anthropic")
    assert v2a == v1
    # Everything up to the end of turn 1's messages is the same bytes.
    end1 = fwd1.index(b'],"temperature":')
    assert fwd2[:end1] == fwd1[:end1]
    assert json.loads(fwd2)["tools"] == json.loads(fwd1)["tools"]
    llm.clear()
    other = start_proxy()
    with httpx.Client(base_url=other.url, timeout=15, trust_env=False) as http2:
        assert _forward(http2, llm, "/v1/messages", body1) == fwd1


def test_numbered_read_of_source_is_never_lossy(
    proxy: ProxyProcess, llm: LLMUpstream, http: httpx.Client
) -> None:
    source = traffic.numbered(traffic.python_source(lines=600))
    step = traffic.claude_step(0, "Read", {"file_path": "/repo/src/ledger.py"}, Output(source))
    body = traffic.encode(traffic.claude_code_body("refactor ledger.py", [step]))
    forwarded = _forward(http, llm, "/v1/messages?beta=true", body)
    if forwarded != body:  # only a lossless form is allowed: it must decode to the source
        spliced = splice(body, forwarded, [source])
        assert spliced.values == [source], "a Read of source code was changed"


def test_numbered_read_of_a_log_keeps_its_line_numbers(
    proxy: ProxyProcess, llm: LLMUpstream, http: httpx.Client
) -> None:
    log = traffic.service_log(lines=900, seed=16)
    text = traffic.numbered(log.text)
    numbered_errors = tuple(
        line for line in text.split("\n") if any(line.endswith(e) for e in log.keep)
    )
    assert len(numbered_errors) == 2
    step = traffic.claude_step(0, "Read", {"file_path": "/var/log/api.log"}, Output(text))
    body = traffic.encode(traffic.claude_code_body("why do payments fail?", [step]))
    forwarded = _forward(http, llm, "/v1/messages", body)
    _check(proxy, body, forwarded, [Output(text, numbered_errors)], "anthropic")


@pytest.mark.parametrize("ascii_only", [False, True], ids=["utf8", "escaped"])
def test_non_ascii_output_and_escapes_survive(
    proxy: ProxyProcess, llm: LLMUpstream, http: httpx.Client, ascii_only: bool
) -> None:
    """Accents, CJK and emoji in the output; in the escaped variant every other string in
    the body keeps its ``\\uXXXX`` escapes (and surrogate pairs) exactly as sent."""
    log = traffic.unicode_log()
    step = traffic.claude_step(0, "Bash", {"command": "tail -n 500 i18n.log"}, log)
    body = traffic.encode(
        traffic.claude_code_body("why does rendering fail for 李雷? 💥", [step]),
        ascii_only=ascii_only,
    )
    assert ascii_only == body.isascii()
    forwarded = _forward(http, llm, "/v1/messages", body)
    _check(proxy, body, forwarded, [log], "anthropic")


def test_chat_body_without_tools_gets_a_tools_member(
    proxy: ProxyProcess, llm: LLMUpstream, http: httpx.Client
) -> None:
    log = traffic.service_log(seed=17)
    payload = traffic.chat_body("why do payments fail?", [traffic.chat_step(0, "logs", log)])
    del payload["tools"]
    body = traffic.encode(payload)
    forwarded = _forward(http, llm, "/v1/chat/completions", body)
    _check(proxy, body, forwarded, [log], "chat")
    assert list(json.loads(forwarded))[-1] == "tools"


def test_upstream_base_path_still_compresses(start_proxy, llm: LLMUpstream) -> None:
    """``--upstream http://host/base``: the API paths live under the base path."""
    based = start_proxy(base_path="/api/anthropic")
    log = traffic.service_log(seed=18)
    body = traffic.encode(traffic.claude_code_body(TASK, [traffic.claude_step(0, "Bash", {}, log)]))
    with httpx.Client(base_url=based.url, timeout=15, trust_env=False) as client:
        got = client.post("/v1/messages?beta=true", content=body, headers=JSON)
    assert got.status_code == 200
    rec = llm.posts("/v1/messages")[0]
    assert rec.target == "/api/anthropic/v1/messages?beta=true"
    _check(based, body, bytes(rec.body), [log], "anthropic")


def test_not_json_or_broken_json_is_forwarded_untouched(
    proxy: ProxyProcess, llm: LLMUpstream, http: httpx.Client
) -> None:
    """A body the proxy cannot read as the API's JSON goes out exactly as it came, and the
    upstream's own answer (here its 400) comes back."""
    log = traffic.service_log(seed=19)
    whole = traffic.encode(
        traffic.claude_code_body(TASK, [traffic.claude_step(0, "Bash", {}, log)])
    )
    for body, ctype in ((whole[:-1], "application/json"), (whole, "text/plain")):
        llm.clear()
        got = http.post("/v1/messages", content=body, headers={"content-type": ctype})
        assert bytes(llm.posts("/v1/messages")[0].body) == body, ctype
        if ctype == "application/json":
            assert got.status_code == 400 and got.content == bytes(llm.answers[0].sent)


def test_over_http2_cleartext(proxy: ProxyProcess, llm: LLMUpstream) -> None:
    """h2c (prior knowledge) on the same port: compressed alike, the SSE answer unchanged."""
    steps = _claude_steps()
    body = traffic.encode(traffic.claude_code_body(TASK, steps))
    with (
        httpx.Client(http1=False, http2=True, trust_env=False, timeout=15) as h2,
        h2.stream("POST", proxy.url + "/v1/messages?beta=true", content=body, headers=JSON) as got,
    ):
        received = got.read()
        assert (got.http_version, got.status_code) == ("HTTP/2", 200)
    forwarded = bytes(llm.posts("/v1/messages")[0].body)
    _check(proxy, body, forwarded, [s.output for s in steps], "anthropic")
    assert received == bytes(llm.answers[0].sent)
