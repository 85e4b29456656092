"""What ``test_claude_codex`` needs to drive the real Claude Code and Codex CLIs through one
headroom proxy: the pinned CLIs, their non-interactive command lines and environments, a
process group that never outlives a test, readers for what each CLI printed and for what
each upstream was sent, and a fake-upstream subclass with the two things the shared fake
lacks for these CLIs (a turn decided from the request it answers; unnamed hosted tools).

Everything the CLIs are given points at 127.0.0.1: HOME, CODEX_HOME and the working
directory are the test's tmp dirs, the environment is built from nothing (no proxy
variables, no API keys of the developer's, no CLAUDECODE of an outer session), and
retries are off so a proxy error fails the run instead of being retried away.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tests.agents.process import Agent, Run
from tests.support import llm_upstream as fake
from tests.support.llm_upstream import Answer, LLMUpstream, Turn

# Pinned: a new release must not change what is tested (checked with `npm view`).
CLAUDE_PACKAGE = ("@anthropic-ai/claude-code", "2.1.332", "claude")
CODEX_PACKAGE = ("@openai/codex", "0.171.0", "codex")
# A model Codex has metadata for: an unknown slug makes it fall back to generic defaults
# (and print an error item), so it would not send what it sends in real use.
CODEX_MODEL = "gpt-5.5"


# -------------------------------------------------------------------- the fake upstream


@dataclass
class Deferred(Turn):
    """A turn chosen when its request arrives, from that request's body: the model's
    ``headroom_retrieve`` call must name the hash the proxy wrote, known only then."""

    decide: Callable[[bytes], Turn] | None = None


class _AgentConn(fake._LLMConn):
    server: AgentUpstream

    async def handle(self, x: fake.Exchange) -> None:
        body = await x.body()  # read once; the base route then gets the same bytes
        problem = _problem(x.rec.path, x.rec.header("content-encoding"), body)
        if problem is not None and self.server.strict:
            api, message = problem
            await fake._refuse(
                self.server, x, 400, api.error(message), [(api.rid_header, "req_invalid")]
            )
            return
        await super().handle(x)


def _problem(path: str, encoding: str | None, body: bytes) -> tuple[Any, str] | None:
    """The shared fake's own validation, with hosted tools that have no ``name`` left out.

    Codex (0.171.0, with real model metadata) declares ``{"type": "tool_search"}`` and
    ``{"type": "web_search"}`` without names, as the Responses API allows; the shared fake
    counts both as the name ``None`` and answers 400 "Tool names must be unique: ['None']".
    """
    api = fake._APIS.get(fake._suffix(path))
    if api is None:
        return None
    try:
        payload = orjson.loads(fake._decoded(body, encoding))
    except Exception:  # unreadable bodies: the base route answers them as it always does
        return None
    if not isinstance(payload, dict):
        return None
    tools = payload.get("tools")
    if isinstance(tools, list):
        named = [t for t in tools if not isinstance(t, dict) or _tool_name(t) is not None]
        payload = {**payload, "tools": named}
    message = api.validate(payload)
    return (api, message) if message else None


class AgentUpstream(LLMUpstream):
    """``LLMUpstream`` that accepts unnamed hosted tools (still rejecting broken histories
    and duplicate names) and plays ``Deferred`` turns."""

    conn_class = _AgentConn

    @property  # type: ignore[override]
    def validate(self) -> bool:
        return False  # the base route's check is replaced by the one in ``_AgentConn``

    @validate.setter
    def validate(self, value: bool) -> None:
        self.strict = value  # the base sets it in __init__ and clear()

    def _next_turn(self, body: bytes) -> Turn:
        turn = super()._next_turn(body)
        if isinstance(turn, Deferred) and turn.decide is not None:
            return turn.decide(body)
        return turn

    def main_answers(self, needle: str) -> list[Answer]:
        """Answers to requests carrying ``needle`` (the task's conversation), in order."""
        with self._lock:
            return [a for a in self.answers if needle.encode() in a.request.body]


# -------------------------------------------------------------------- the CLIs


def base_env(home: Path) -> dict[str, str]:
    """An environment from nothing: the developer's keys, proxies and an outer agent's
    variables (CLAUDECODE, CODEX_*) must not reach the CLI under test."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TMPDIR": str(home),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
    }


def claude_env(home: Path, proxy_url: str) -> dict[str, str]:
    return {
        **base_env(home),
        "ANTHROPIC_BASE_URL": proxy_url,
        "ANTHROPIC_API_KEY": "dummy",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",
    }


def claude_command(binary: Path, prompt: str) -> list[str]:
    """``-p`` with stream-json, which (with ``--verbose``) prints every message, so the
    tool output Claude Code sent is on stdout to compare with what the upstream got.
    ``--allowedTools Bash`` instead of ``--dangerously-skip-permissions``: the latter is
    refused when running as root."""
    return [
        str(binary), "-p", prompt, "--output-format", "stream-json", "--verbose",
        "--allowedTools", "Bash", "--no-session-persistence",
    ]  # fmt: skip


def codex_home(home: Path, proxy_url: str) -> Path:
    """A CODEX_HOME whose config sends Codex to the proxy over HTTP.

    A provider of our own with ``wire_api = "responses"``: Codex 0.171.0 ignores
    OPENAI_BASE_URL, and its built-in provider (``openai_base_url``) tries a WebSocket on
    ``/v1/responses`` first, which headroom relays without compressing anything."""
    path = home / "codex"
    path.mkdir(exist_ok=True)
    (path / "config.toml").write_text(
        f'model = "{CODEX_MODEL}"\n'
        'model_provider = "headroom"\n'
        "check_for_update_on_startup = false\n"
        "\n[analytics]\nenabled = false\n"
        "\n[model_providers.headroom]\n"
        'name = "headroom"\n'
        f'base_url = "{proxy_url}/v1"\n'
        'env_key = "OPENAI_API_KEY"\n'
        'wire_api = "responses"\n'
        "request_max_retries = 0\n"
        "stream_max_retries = 0\n"
    )
    return path


def codex_env(home: Path, proxy_url: str) -> dict[str, str]:
    return {
        **base_env(home),
        "CODEX_HOME": str(codex_home(home, proxy_url)),
        "OPENAI_API_KEY": "dummy",
    }


def codex_command(binary: Path, prompt: str) -> list[str]:
    return [
        str(binary), "exec", "--json", "--color", "never", "--ephemeral",
        "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", prompt,
    ]  # fmt: skip


class Agents:
    """Every CLI a test starts, killed (with its group) at teardown."""

    def __init__(self) -> None:
        self.started: list[Agent] = []

    def start(self, argv: Sequence[str], env: dict[str, str], cwd: Path) -> Agent:
        agent = Agent(argv, env, cwd)
        self.started.append(agent)
        return agent

    def __enter__(self) -> Agents:
        return self

    def __exit__(self, *_: object) -> None:
        for agent in self.started:
            agent.kill()
            for pipe in (agent.proc.stdout, agent.proc.stderr):
                if pipe is not None:
                    pipe.close()


# -------------------------------------------------------------------- what the CLIs printed


def claude_result(run: Run) -> dict[str, Any]:
    """Claude Code's final ``result`` line."""
    results = [e for e in run.events if e.get("type") == "result"]
    assert len(results) == 1, run.describe()
    return results[0]


def claude_tool_result(run: Run, call_id: str) -> str:
    """The tool_result Claude Code sent for ``call_id``, as it printed it."""
    for event in run.events:
        if event.get("type") != "user":
            continue
        for block in _list(event.get("message", {}).get("content")):
            if block.get("type") == "tool_result" and block.get("tool_use_id") == call_id:
                return _text(block.get("content"))
    raise AssertionError(f"no tool_result for {call_id}\n{run.describe()}")


def claude_tool_names(run: Run) -> list[str]:
    """Every tool_use name in the assistant messages Claude Code received."""
    return [
        str(block.get("name"))
        for event in run.events
        if event.get("type") == "assistant"
        for block in _list(event.get("message", {}).get("content"))
        if block.get("type") == "tool_use"
    ]


def codex_items(run: Run, kind: str) -> list[dict[str, Any]]:
    """Codex's completed items of one type (``command_execution``, ``agent_message``)."""
    return [
        e["item"]
        for e in run.events
        if e.get("type") == "item.completed"
        and isinstance(e.get("item"), dict)
        and e["item"].get("type") == kind
    ]


# -------------------------------------------------------------------- what upstreams got


def body_json(body: bytes | bytearray) -> dict[str, Any]:
    value = orjson.loads(bytes(body))
    assert isinstance(value, dict)
    return value


def tool_output(payload: dict[str, Any], call_id: str) -> str | None:
    """The tool output for ``call_id`` in an Anthropic Messages or Responses body."""
    for message in _list(payload.get("messages")):
        for block in _list(message.get("content")):
            if block.get("type") == "tool_result" and block.get("tool_use_id") == call_id:
                return _text(block.get("content"))
    for item in _list(payload.get("input")):
        if str(item.get("type", "")).endswith("_call_output") and item.get("call_id") == call_id:
            return _text(item.get("output"))
    return None


def declared_tools(payload: dict[str, Any]) -> list[str]:
    return [name for t in _list(payload.get("tools")) if (name := _tool_name(t)) is not None]


def _tool_name(tool: dict[str, Any]) -> str | None:
    name = tool.get("name", tool.get("function", {}).get("name"))
    return name if isinstance(name, str) else None


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _text(content: Any) -> str:
    """A tool output as text: a string, or the text of its text blocks."""
    if isinstance(content, str):
        return content
    return "".join(str(b.get("text", "")) for b in _list(content))
