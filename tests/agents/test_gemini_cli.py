"""The real Gemini CLI through the real proxy: a big shell output reaches the model shortened.

The CLI (pinned in ``gemini_cli_agent``) is pointed at the proxy with
``GOOGLE_GEMINI_BASE_URL``; the proxy's ``--gemini-upstream`` is the scripted Gemini API of
``tests.support.llm_upstream``. The scripted model asks for ``git log --stat``, the CLI runs
it for real and sends the output back as a ``functionResponse``, and the model answers. A
unit test of the Gemini adapter feeds it the bodies its author imagined; this one feeds it
the bodies Google's own client sends (``parametersJsonSchema`` declarations, call ids,
``thoughtSignature`` on calls, the router's side request), and proves the CLI still
finishes with what the proxy sends back.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from headroom.ccr.markers import find_keys
from tests.agents.gemini_cli_agent import (
    ROUTER_NEEDLE,
    SHELL_TOOL,
    gemini_binary,
    run_gemini,
)
from tests.e2e.conftest import FLAGS
from tests.support.llm_upstream import LLMUpstream, Recorded, ToolCall, text_turn, tool_turn
from tests.support.proxy_process import REPO, ProxyGroup, ProxyProcess

API_KEY = "gemini-cli-test-key"  # what the CLI sends; the fake only checks one is there
COMMAND_ARGS = ["git", "-C", str(REPO), "log", "--stat", "-n", "60"]
COMMAND = shlex.join(COMMAND_ARGS)  # what the model asks the shell tool to run
MIN_OUTPUT = 8_000  # below this nothing is worth compressing, and the test proves nothing
ANSWER = "The last sixty commits mostly touched the proxy and its tests."
ROUTER_ANSWER = '{"complexity_reasoning": "one read-only command", "complexity_score": 5}'


@pytest.fixture(scope="module")
def binary() -> Path:
    return gemini_binary()


@pytest.fixture(scope="module")
def upstream() -> Iterator[LLMUpstream]:
    server = LLMUpstream()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(
    upstream: LLMUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    """The real proxy with the fake as its Gemini upstream only, so a Gemini request that
    it routed anywhere else would fail instead of passing by luck."""
    args = ["--listen", "127.0.0.1:0", *FLAGS, "--gemini-upstream", upstream.url]
    with ProxyGroup() as group:
        yield group.start(args, tmp_path_factory.mktemp("proxy-home"))


@pytest.fixture
def llm(upstream: LLMUpstream, proxy: ProxyProcess) -> LLMUpstream:
    assert proxy.running, f"proxy died\n{proxy.output()}"
    upstream.clear()
    return upstream


def _payload(rec: Recorded) -> dict[str, Any]:
    value = orjson.loads(bytes(rec.body))
    assert isinstance(value, dict)
    return value


def _function_responses(payload: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [
        part["functionResponse"]
        for content in payload.get("contents", [])
        for part in content.get("parts", [])
        if isinstance(part.get("functionResponse"), dict)
        and part["functionResponse"].get("name") == name
    ]


def _declared(payload: dict[str, Any]) -> list[str]:
    return [
        decl.get("name")
        for tool in payload.get("tools", [])
        for decl in tool.get("functionDeclarations", [])
    ]


def test_shell_output_reaches_the_model_compressed_and_the_cli_finishes(
    binary: Path, llm: LLMUpstream, proxy: ProxyProcess, tmp_path: Path
) -> None:
    raw = subprocess.run(
        COMMAND_ARGS, capture_output=True, text=True, check=True, timeout=20
    ).stdout
    assert len(raw) >= MIN_OUTPUT, f"{COMMAND!r} gave only {len(raw)} chars: a shallow clone?"
    llm.script_for(ROUTER_NEEDLE, text_turn(ROUTER_ANSWER))
    llm.script(
        tool_turn(ToolCall(SHELL_TOOL, {"command": COMMAND, "description": "recent commits"})),
        text_turn(ANSWER),
    )
    workspace = tmp_path / "workspace"
    workspace.mkdir()

    run = run_gemini(
        binary,
        "What changed in the repository's recent history?",
        base_url=proxy.url,
        api_key=API_KEY,
        home=tmp_path / "home",
        cwd=workspace,
    )

    # The CLI finishes through the proxy with the scripted answer
    assert run.returncode == 0, run.describe()
    result = run.document
    assert result.get("response", "").strip() == ANSWER, run.describe()
    shell = result["stats"]["tools"]["byName"].get(SHELL_TOOL, {})
    assert shell.get("success") == 1, run.describe()  # it really ran the command

    streams = llm.posts(":streamGenerateContent")
    assert len(streams) == 2, [r.target for r in llm.requests]
    for rec in llm.requests:
        assert rec.header("x-goog-api-key") == API_KEY, rec.target  # the key passes through
    assert all(r.target.endswith(":streamGenerateContent?alt=sse") for r in streams)

    # Every request without a tool output reaches the upstream exactly as the CLI sent it
    # (the proxy logs what it received; X-Request-Id ties its log line to the upstream's).
    first = streams[0]
    side = [r for r in llm.requests if all(r is not s for s in streams)]
    for rec in [first, *side]:
        rid = rec.header("x-request-id")
        assert rid, rec.target
        assert proxy.request_log(rid)["bytes_in"] == len(rec.body), rec.target

    after = _payload(streams[1])
    (response,) = _function_responses(after, SHELL_TOOL)
    output = response["response"]["output"]
    assert isinstance(output, str)
    model_turn = after["contents"][-2]
    (call,) = [p["functionCall"] for p in model_turn["parts"] if "functionCall" in p]
    assert call["args"]["command"] == COMMAND  # the call the model made comes back whole
    assert response.get("id") == call.get("id")
    assert _declared(after)[: len(_declared(_payload(first)))] == _declared(_payload(first))
    head = raw.splitlines()[0]
    assert head in output, output[:500]  # the CLI sent the command's real output

    # The output is shortened, retrievable, and the model
    # is given the tool to retrieve it
    assert len(output) < len(raw), f"output not compressed: {len(output)} >= raw {len(raw)}"
    keys = find_keys(output)
    assert keys and "hash=" in output, output[-2000:]
    assert _declared(after).count("headroom_retrieve") == 1, _declared(after)
    assert "headroom_retrieve" not in _declared(_payload(first))  # nothing to retrieve yet
