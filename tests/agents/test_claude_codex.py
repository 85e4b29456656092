"""The real Claude Code and Codex CLIs (and, beside them, Gemini CLI), each finishing a
non-interactive task through one headroom process with ``--anthropic-upstream``,
``--openai-upstream`` and ``--gemini-upstream``.

Each task makes the (scripted) model call the CLI's own shell tool on a command with a big
real output; the CLI runs it and sends the output back through the proxy. What is proved is
what a user relies on: the upstream got that output compressed (shorter than what the CLI
sent, with a marker whose hash names the stored original, ``headroom_retrieve`` declared),
the CLI got the model's answer and exited 0, the CLIs can do this at the same time through
the one process without either upstream seeing the other's API, and a ``headroom_retrieve``
call the model makes is served by the proxy without the CLI ever seeing it.

The model is ``tests.support.llm_upstream`` on 127.0.0.1 (through ``AgentUpstream``, see
``claude_codex_support``); the CLIs are pinned npm packages, installed once per machine by
``tests.agents.npm`` (the module is skipped only when npm is missing).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from headroom.ccr.markers import content_key, find_keys
from tests.agents import npm
from tests.agents.claude_codex_support import (
    CLAUDE_PACKAGE,
    CODEX_PACKAGE,
    Agents,
    AgentUpstream,
    Deferred,
    body_json,
    claude_command,
    claude_env,
    claude_result,
    claude_tool_names,
    claude_tool_result,
    codex_command,
    codex_env,
    codex_items,
    declared_tools,
    tool_output,
)
from tests.agents.gemini_cli_agent import SHELL_TOOL, gemini_binary, run_gemini
from tests.agents.process import CLI_TIMEOUT, Agent, Run
from tests.e2e.conftest import FLAGS
from tests.support import llm_upstream as fake
from tests.support.llm_upstream import (
    LLMUpstream,
    ToolCall,
    Turn,
    retrieve_call,
    text_turn,
    tool_turn,
)
from tests.support.proxy_process import REPO, ProxyGroup, ProxyProcess
from tests.support.upstream import Recorded, serving

# A backstop only: every CLI run is bounded by CLI_TIMEOUT, but the first test of a fresh
# machine also waits for both npm installs (each bounded by npm.INSTALL_TIMEOUT).
pytestmark = [pytest.mark.timeout(2 * npm.INSTALL_TIMEOUT + 3 * CLI_TIMEOUT)]

# A real listing of a few KB (the proxy's own source tree): under the ~30 KB past which
# Claude Code saves an output to a file and sends a 2 KB preview instead, and within the
# output budget Codex gives a command (it sends a 20 KB listing whole), so each CLI sends
# the whole output and the proxy is what cuts it.
LISTING = f"ls -lR {REPO / 'headroom'}"
MIN_OUTPUT = 4000
RETRIEVE = "headroom_retrieve"
OURS = "call_headroom"  # the id of the model's headroom_retrieve call


@dataclass
class Fleet:
    anthropic: AgentUpstream
    openai: AgentUpstream
    gemini: LLMUpstream
    proxy: ProxyProcess
    claude: Path
    codex: Path
    gemini_cli: Path


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    claude, codex = npm.cli(*CLAUDE_PACKAGE), npm.cli(*CODEX_PACKAGE)
    gemini_cli = gemini_binary()
    anthropic, openai, gemini = AgentUpstream(), AgentUpstream(), LLMUpstream()
    with serving(anthropic, openai, gemini), ProxyGroup() as group:
        args = [
            "--listen", "127.0.0.1:0", *FLAGS, "--anthropic-upstream", anthropic.url,
            "--openai-upstream", openai.url, "--gemini-upstream", gemini.url,
        ]  # fmt: skip
        proxy = group.start(args, tmp_path_factory.mktemp("proxy-home"))
        yield Fleet(anthropic, openai, gemini, proxy, claude, codex, gemini_cli)


@pytest.fixture
def routed(fleet: Fleet) -> Fleet:
    assert fleet.proxy.running, fleet.proxy.output()
    fleet.anthropic.clear()
    fleet.openai.clear()
    fleet.gemini.clear()
    return fleet


@pytest.fixture
def agents() -> Iterator[Agents]:
    with Agents() as group:
        yield group


def start_claude(fleet: Fleet, agents: Agents, tmp: Path, prompt: str) -> Agent:
    home, work = tmp / "claude-home", tmp / "claude-work"
    home.mkdir()
    work.mkdir()
    return agents.start(
        claude_command(fleet.claude, prompt), claude_env(home, fleet.proxy.url), work
    )


def start_codex(fleet: Fleet, agents: Agents, tmp: Path, prompt: str) -> Agent:
    home, work = tmp / "codex-home", tmp / "codex-work"
    home.mkdir()
    work.mkdir()
    return agents.start(codex_command(fleet.codex, prompt), codex_env(home, fleet.proxy.url), work)


# -------------------------------------------------------------------- checks


@dataclass
class Compressed:
    """The upstream request that carried the CLI's tool output, and what it held."""

    request: Recorded
    payload: dict[str, Any]
    output: str  # the tool output as the upstream got it
    key: str  # the one hash its marker names
    original: str  # what the proxy stored under that hash


def first_with_output(upstream: AgentUpstream, needle: str, call_id: str) -> Recorded:
    """The first request of the task's conversation that carries the output of ``call_id``."""
    for answer in upstream.main_answers(needle):
        if tool_output(body_json(answer.request.body), call_id) is not None:
            return answer.request
    seen = [(a.request.target, a.status) for a in upstream.answers]
    raise AssertionError(f"no request with the output of {call_id}; answered {seen}")


def output_of(request: Recorded, call_id: str) -> str:
    output = tool_output(body_json(request.body), call_id)
    assert output is not None, f"{request.target} holds no output for {call_id}"
    return output


def check_compressed(fleet: Fleet, request: Recorded, call_id: str, sent: str) -> Compressed:
    """``request`` holds the output of ``call_id`` compressed: a marker naming a stored
    original that is exactly what the CLI sent (``sent`` is the CLI's own report of it, or
    a part of it), shorter than it, the retrieval tool declared, and the whole body
    forwarded smaller than the CLI's (the proxy's log says how big that was)."""
    payload = body_json(request.body)
    output = output_of(request, call_id)
    keys = find_keys(output)
    assert len(keys) == 1, f"want one marker in the forwarded output, got {keys}:\n{output}"
    got = httpx.get(f"{fleet.proxy.url}/v1/retrieve/{keys[0]}", trust_env=False, timeout=10)
    assert got.status_code == 200, got.text
    original = got.json()["original"]
    assert isinstance(original, str) and content_key(original) == keys[0]
    assert sent in original, "the stored original is not the output the CLI sent"
    assert len(original) >= MIN_OUTPUT, len(original)
    assert len(output) < len(original), (len(output), len(original))
    assert RETRIEVE in declared_tools(payload)
    log = fleet.proxy.request_log(str(request.header("x-request-id")))
    assert log["upstream_status"] == 200
    assert len(request.body) < log["bytes_in"], (len(request.body), log["bytes_in"])
    return Compressed(request, payload, output, keys[0], original)


def only_own_api(fleet: Fleet, upstream: AgentUpstream, name: str, suffix: str) -> None:
    """Every request this upstream got was for its own API, and the proxy's log line for
    each says it went to the upstream called ``name``."""
    assert upstream.requests
    for request in upstream.requests:
        assert request.path.endswith(suffix), request.target
        log = fleet.proxy.request_log(str(request.header("x-request-id")))
        assert log["upstream"] == name, log


def check_claude_run(run: Run, final: str) -> None:
    assert run.returncode == 0, run.describe()
    result = claude_result(run)
    assert result.get("is_error") is False and result.get("result") == final, run.describe()


def check_codex_run(run: Run, final: str) -> None:
    assert run.returncode == 0, run.describe()
    messages = [item.get("text") for item in codex_items(run, "agent_message")]
    assert messages[-1:] == [final], run.describe()


def codex_listing(run: Run) -> str:
    """The listing's output as Codex reports it (Codex sends it with a header of its own)."""
    commands = [
        i for i in codex_items(run, "command_execution") if LISTING in str(i.get("command"))
    ]
    assert len(commands) == 1, run.describe()
    assert commands[0].get("exit_code") == 0, commands[0]
    output = str(commands[0].get("aggregated_output", ""))
    assert len(output) >= MIN_OUTPUT, run.describe()
    return output


def check_retrieval_round(
    fleet: Fleet, upstream: AgentUpstream, needle: str, call_id: str, sent: str
) -> str:
    """Three model turns for the CLI's two requests: the proxy asked the third itself,
    answering the model's ``headroom_retrieve`` with the stored original, which it returns.
    """
    answers = upstream.main_answers(needle)
    assert [a.status for a in answers] == [200, 200, 200], [a.request.target for a in answers]
    compressed, follow_up = answers[1].request, answers[2].request
    asked = answers[1].turn.tool_calls if answers[1].turn is not None else []
    assert [c.name for c in asked] == [RETRIEVE], answers[1].turn
    seen = check_compressed(fleet, compressed, call_id, sent)
    assert output_of(follow_up, OURS) == seen.original
    # Asked within the CLI's request, not by the CLI: the proxy's follow-up carries the
    # request id of the client request it answers.
    assert follow_up.header("x-request-id") == compressed.header("x-request-id")
    return seen.original


def claude_listing_turn(call_id: str) -> Turn:
    return tool_turn(ToolCall("Bash", {"command": LISTING, "description": "List"}, call_id))


def codex_listing_turn(call_id: str) -> Turn:
    return tool_turn(ToolCall("exec_command", {"cmd": LISTING}, call_id))


def retrieve_what_was_compressed(call_id: str) -> Deferred:
    """The model asks for the hash the proxy wrote into the request it is answering."""

    def decide(body: bytes) -> Turn:
        keys = find_keys(body.decode("utf-8", "replace"))
        if len(keys) != 1:
            return text_turn(f"expected one marker, saw {keys}")
        return tool_turn(retrieve_call(keys[0], call_id))

    return Deferred((), decide=decide)


# -------------------------------------------------------------------- tests


def test_claude_code_bash_output_reaches_anthropic_compressed(
    routed: Fleet, agents: Agents, tmp_path: Path
) -> None:
    needle, final = "[task claude-listing]", "The tree holds the proxy's source."
    routed.anthropic.script_for(needle, claude_listing_turn("toolu_listing"), text_turn(final))
    run = start_claude(routed, agents, tmp_path, f"{needle} What is in the source tree?").wait()
    check_claude_run(run, final)
    sent = claude_tool_result(run, "toolu_listing")
    request = first_with_output(routed.anthropic, needle, "toolu_listing")
    seen = check_compressed(routed, request, "toolu_listing", sent)
    assert seen.original == sent  # Claude Code sends the command's output as it is
    assert request.path == "/v1/messages" and body_json(request.body).get("stream") is True
    first = routed.anthropic.main_answers(needle)[0].request
    assert RETRIEVE not in declared_tools(body_json(first.body))  # nothing compressed yet
    only_own_api(routed, routed.anthropic, "anthropic", "/v1/messages")
    assert not routed.openai.requests


def test_codex_shell_output_reaches_openai_compressed(
    routed: Fleet, agents: Agents, tmp_path: Path
) -> None:
    needle, final = "[task codex-listing]", "The tree holds the proxy's source."
    routed.openai.script_for(needle, codex_listing_turn("call_listing"), text_turn(final))
    run = start_codex(routed, agents, tmp_path, f"{needle} What is in the source tree?").wait()
    check_codex_run(run, final)
    request = first_with_output(routed.openai, needle, "call_listing")
    check_compressed(routed, request, "call_listing", codex_listing(run))
    assert request.path == "/v1/responses" and body_json(request.body).get("stream") is True
    assert {r.method for r in routed.openai.requests} == {"POST"}  # SSE, no WebSocket
    only_own_api(routed, routed.openai, "openai", "/v1/responses")
    assert not routed.anthropic.requests


def test_both_clis_at_once_through_one_proxy(routed: Fleet, agents: Agents, tmp_path: Path) -> None:
    """Each CLI's final answer is held (up to the fake's gate timeout) until the other CLI
    has sent its tool output, so both conversations are in the proxy at the same time."""
    claude_needle, codex_needle = "[task both-claude]", "[task both-codex]"
    claude_final, codex_final = "Claude saw the tree.", "Codex saw the tree."
    claude_gate, codex_gate = threading.Event(), threading.Event()
    claude_last = text_turn(claude_final, gate=claude_gate)
    codex_last = text_turn(codex_final, gate=codex_gate)
    routed.anthropic.script_for(claude_needle, claude_listing_turn("toolu_both"), claude_last)
    routed.openai.script_for(codex_needle, codex_listing_turn("call_both"), codex_last)

    done = threading.Event()

    def open_when(upstream: AgentUpstream, call_id: str, gate: threading.Event) -> None:
        def has_output(r: Recorded) -> bool:
            return r.complete and bytes(r.body).count(call_id.encode()) >= 2

        deadline = time.monotonic() + CLI_TIMEOUT
        while not done.is_set() and time.monotonic() < deadline:
            try:
                upstream.wait_for(has_output, timeout=0.2)
            except TimeoutError:
                continue
            gate.set()
            return

    watchers = [
        threading.Thread(target=open_when, args=(routed.openai, "call_both", claude_gate)),
        threading.Thread(target=open_when, args=(routed.anthropic, "toolu_both", codex_gate)),
    ]
    for watcher in watchers:
        watcher.start()
    try:
        claude = start_claude(routed, agents, tmp_path, f"{claude_needle} What is in the tree?")
        codex = start_codex(routed, agents, tmp_path, f"{codex_needle} What is in the tree?")
        claude_run, codex_run = claude.wait(), codex.wait()
    finally:
        done.set()
        for watcher in watchers:
            watcher.join(5)

    check_claude_run(claude_run, claude_final)
    check_codex_run(codex_run, codex_final)
    assert claude_last.gate_timed_out is False and codex_last.gate_timed_out is False
    check_compressed(
        routed,
        first_with_output(routed.anthropic, claude_needle, "toolu_both"),
        "toolu_both",
        claude_tool_result(claude_run, "toolu_both"),
    )
    check_compressed(
        routed,
        first_with_output(routed.openai, codex_needle, "call_both"),
        "call_both",
        codex_listing(codex_run),
    )
    only_own_api(routed, routed.anthropic, "anthropic", "/v1/messages")
    only_own_api(routed, routed.openai, "openai", "/v1/responses")
    assert not any(codex_needle.encode() in r.body for r in routed.anthropic.requests)
    assert not any(claude_needle.encode() in r.body for r in routed.openai.requests)


GEMINI_KEY = "gemini-cli-test-key"
GEMINI_MODEL = "gemini-2.5-flash"  # named, so the CLI asks no router model first


def test_three_clis_at_once_through_one_proxy(
    routed: Fleet, agents: Agents, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claude Code, Codex and Gemini CLI on one listener at the same time. Gemini starts
    first; Claude's final answer is held until Codex has sent its tool output and Gemini's
    conversation has begun, Codex's likewise, and Gemini's final answer until both others
    have sent their outputs: so all three conversations are in the proxy together (the
    holds end within seconds: Claude Code retries a stream that stalls ~10 s). Each
    upstream sees only its own API and each output arrives compressed."""
    monkeypatch.setattr(fake, "GATE_TIMEOUT", 20.0)  # three CLIs start slower than two
    claude_needle, codex_needle = "[task three-claude]", "[task three-codex]"
    finals = {"claude": "Claude saw the tree.", "codex": "Codex saw the tree."}
    gemini_final = "Gemini saw the tree."
    gates = {name: threading.Event() for name in ("claude", "codex", "gemini")}
    claude_last = text_turn(finals["claude"], gate=gates["claude"])
    codex_last = text_turn(finals["codex"], gate=gates["codex"])
    gemini_last = text_turn(gemini_final, gate=gates["gemini"])
    routed.anthropic.script_for(claude_needle, claude_listing_turn("toolu_three"), claude_last)
    routed.openai.script_for(codex_needle, codex_listing_turn("call_three"), codex_last)
    routed.gemini.script(
        tool_turn(ToolCall(SHELL_TOOL, {"command": LISTING, "description": "List"})),
        gemini_last,
    )
    done = threading.Event()

    def carries(upstream: LLMUpstream, needle: bytes, times: int) -> bool:
        return any(r.complete and bytes(r.body).count(needle) >= times for r in upstream.requests)

    def coordinate() -> None:
        deadline = time.monotonic() + 2 * CLI_TIMEOUT
        while not done.is_set() and time.monotonic() < deadline:
            claude_sent = carries(routed.anthropic, b"toolu_three", 2)
            codex_sent = carries(routed.openai, b"call_three", 2)
            gemini_began = carries(routed.gemini, b"What is in the tree?", 1)
            if codex_sent and gemini_began:
                gates["claude"].set()
            if claude_sent and gemini_began:
                gates["codex"].set()
            if claude_sent and codex_sent:
                gates["gemini"].set()
            done.wait(0.05)

    coordinator = threading.Thread(target=coordinate)
    home, work = tmp_path / "gemini-home", tmp_path / "gemini-work"
    work.mkdir()
    runs: dict[str, Run] = {}

    def gemini() -> None:
        runs["gemini"] = run_gemini(
            routed.gemini_cli, "What is in the tree?", base_url=routed.proxy.url,
            api_key=GEMINI_KEY, home=home, cwd=work, model=GEMINI_MODEL,
        )  # fmt: skip

    gemini_thread = threading.Thread(target=gemini)
    try:
        coordinator.start()
        gemini_thread.start()
        claude = start_claude(routed, agents, tmp_path, f"{claude_needle} What is in the tree?")
        codex = start_codex(routed, agents, tmp_path, f"{codex_needle} What is in the tree?")
        claude_run, codex_run = claude.wait(), codex.wait()
        gemini_thread.join(CLI_TIMEOUT + 10)
    finally:
        done.set()
        coordinator.join(5)

    check_claude_run(claude_run, finals["claude"])
    check_codex_run(codex_run, finals["codex"])
    gemini_run = runs["gemini"]
    assert gemini_run.returncode == 0, gemini_run.describe()
    assert gemini_run.document.get("response", "").strip() == gemini_final, gemini_run.describe()
    for last in (claude_last, codex_last, gemini_last):
        assert last.gate_timed_out is False
    check_compressed(
        routed,
        first_with_output(routed.anthropic, claude_needle, "toolu_three"),
        "toolu_three",
        claude_tool_result(claude_run, "toolu_three"),
    )
    check_compressed(
        routed,
        first_with_output(routed.openai, codex_needle, "call_three"),
        "call_three",
        codex_listing(codex_run),
    )
    streams = routed.gemini.posts(":streamGenerateContent")
    assert len(streams) == 2, [r.target for r in routed.gemini.requests]
    output = str(gemini_output(body_json(streams[1].body)))
    keys = find_keys(output)
    assert len(keys) == 1, output[-2000:]
    assert RETRIEVE in gemini_declared(body_json(streams[1].body))
    only_own_api(routed, routed.anthropic, "anthropic", "/v1/messages")
    only_own_api(routed, routed.openai, "openai", "/v1/responses")
    only_own_api(routed, routed.gemini, "gemini", ":streamGenerateContent")
    for rec in routed.gemini.requests:
        assert rec.header("x-goog-api-key") == GEMINI_KEY


def gemini_output(payload: dict[str, Any]) -> Any:
    """The one shell ``functionResponse`` output of a Gemini request."""
    (output,) = [
        part["functionResponse"]["response"].get("output")
        for content in payload.get("contents", [])
        for part in content.get("parts", [])
        if isinstance(part.get("functionResponse"), dict)
        and part["functionResponse"].get("name") == SHELL_TOOL
    ]
    return output


def gemini_declared(payload: dict[str, Any]) -> list[str]:
    return [
        str(decl.get("name"))
        for tool in payload.get("tools", [])
        for decl in tool.get("functionDeclarations", [])
    ]


def test_claude_code_never_sees_a_retrieval_the_proxy_serves(
    routed: Fleet, agents: Agents, tmp_path: Path
) -> None:
    needle, final = "[task claude-retrieve]", "Having read it all: the proxy's source."
    routed.anthropic.script_for(
        needle,
        claude_listing_turn("toolu_read"),
        retrieve_what_was_compressed(OURS),
        text_turn(final),
    )
    run = start_claude(routed, agents, tmp_path, f"{needle} Read the whole tree.").wait()
    check_claude_run(run, final)
    assert claude_tool_names(run) == ["Bash"]
    assert RETRIEVE not in run.stdout
    sent = claude_tool_result(run, "toolu_read")
    original = check_retrieval_round(routed, routed.anthropic, needle, "toolu_read", sent)
    assert original == sent


def test_codex_never_sees_a_retrieval_the_proxy_serves(
    routed: Fleet, agents: Agents, tmp_path: Path
) -> None:
    needle, final = "[task codex-retrieve]", "Having read it all: the proxy's source."
    routed.openai.script_for(
        needle,
        codex_listing_turn("call_read"),
        retrieve_what_was_compressed(OURS),
        text_turn(final),
    )
    run = start_codex(routed, agents, tmp_path, f"{needle} Read the whole tree.").wait()
    check_codex_run(run, final)
    assert RETRIEVE not in run.stdout
    assert len(codex_items(run, "command_execution")) == 1
    check_retrieval_round(routed, routed.openai, needle, "call_read", codex_listing(run))
