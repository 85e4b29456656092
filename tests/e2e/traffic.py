"""Request bodies shaped like real agents' traffic, and the tool outputs inside them.

Shapes follow what Claude Code 2.1 and Codex CLI 0.169 were seen sending:
Claude Code posts ``/v1/messages?beta=true`` with a ~76 KB system prompt, signed thinking
blocks, its tool list, ``cat -n`` numbered Read output and Bash output of at most 30,000
characters; Codex streams ``/v1/responses`` with ``exec_command`` calls and their
``function_call_output`` (a header, then the output). Every generator is seeded, so a body
is the same bytes on every run and every worker.
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass
from typing import Any

CLAUDE_MODEL = "claude-sonnet-4-6"
CODEX_MODEL = "gpt-5-codex"
CHAT_MODEL = "gpt-4.1"
BASH_LIMIT = 30_000  # Claude Code never sends more Bash output than this


@dataclass(frozen=True)
class Output:
    """A tool output and the lines a compressor must keep verbatim."""

    text: str
    keep: tuple[str, ...] = ()


@dataclass(frozen=True)
class Step:
    """One tool call and what it returned."""

    tool: str
    arguments: dict[str, Any]
    output: Output
    call_id: str


def encode(body: dict[str, Any], *, pretty: bool = False, ascii_only: bool = False) -> bytes:
    """Body bytes as an agent writes them: compact JS-style JSON, or indented when
    ``pretty`` (to prove whitespace survives); ``ascii_only`` escapes every non-ASCII
    character (``\\u00e9``, surrogate pairs for emoji) the way Python's json does."""
    if pretty:
        return json.dumps(body, ensure_ascii=ascii_only, indent=2).encode()
    return json.dumps(body, ensure_ascii=ascii_only, separators=(",", ":")).encode()


def tokens(value: str) -> tuple[bytes, bytes]:
    """The two ways ``encode`` may spell one string value."""
    return json.dumps(value, ensure_ascii=False).encode(), json.dumps(value).encode()


# -------------------------------------------------------------------- tool outputs


def _ts(i: int) -> str:
    return f"2026-11-21T09:{(i // 60) % 60:02d}:{i % 60:02d}.{(i * 37) % 1000:03d}Z"


def service_log(lines: int = 600, seed: int = 1) -> Output:
    """An API service log: routine INFO lines, two errors and a warning."""
    rng = random.Random(seed)
    routes = ("/v1/orders", "/v1/users", "/v1/carts", "/v1/search", "/healthz")
    out = []
    for i in range(lines):
        route = rng.choice(routes)
        out.append(
            f"{_ts(i)} INFO  [api-gateway] GET {route}/{rng.randint(1000, 9999)} 200 "
            f"{rng.randint(2, 80)}ms req={rng.getrandbits(48):012x}"
        )
    errors = (
        f"{_ts(lines // 3)} ERROR [payments] charge failed: card_declined for order 5521 "
        "(stripe status 402)",
        f"{_ts(2 * lines // 3)} ERROR [db] connection refused: postgres://db-primary:5432 "
        "after 3 retries",
    )
    out[lines // 3] = errors[0]
    out[2 * lines // 3] = errors[1]
    return Output("\n".join(out), errors)


def grep_output(lines: int = 400, seed: int = 2) -> Output:
    """``rg -n ledger``: many hits of a common word, one of them the definition asked for."""
    rng = random.Random(seed)
    out = []
    for i in range(lines):
        path = f"src/accounts/module_{i % 37}/ledger_{i % 11}.py"
        var = rng.choice(("entry", "row", "posting", "balance"))
        out.append(f"{path}:{rng.randint(1, 900)}:    {var} = ledger.lookup({var}_id, {i})")
    path, line = "src/billing/reconcile.py", "88:def reconcile_ledger(entries, *, strict=True):"
    out[lines // 2] = f"{path}:{line}"
    # A search compressor may group hits under their file, so path and line are kept apart.
    return Output("\n".join(out), (path, line))


def job_rows(rows: int = 300, seed: int = 3) -> Output:
    """A JSON API answer: a list of job records, one failed."""
    rng = random.Random(seed)
    items = []
    for i in range(rows):
        items.append(
            {
                "id": i,
                "name": f"nightly-export-{i}",
                "status": "succeeded",
                "duration_ms": rng.randint(100, 9000),
                "owner": rng.choice(("ana", "bo", "cy")),
            }
        )
    items[rows // 2].update(status="failed", error="disk quota exceeded on /var/exports")
    failed = json.dumps(items[rows // 2], separators=(",", ":"))
    return Output(json.dumps(items, separators=(",", ":")), (failed,))


def python_source(lines: int = 400, seed: int = 4) -> str:
    rng = random.Random(seed)
    out = ['"""Ledger reconciliation."""', "", "from __future__ import annotations", ""]
    while len(out) < lines:
        name = "".join(rng.choices(string.ascii_lowercase, k=8))
        out += [
            f"def {name}(entries, limit={rng.randint(1, 99)}):",
            f'    """Return the {name} total of the entries."""',
            "    total = 0",
            "    for entry in entries[:limit]:",
            f"        total += entry.amount * {rng.randint(2, 9)}",
            "    return total",
            "",
        ]
    return "\n".join(out[:lines])


def numbered(text: str) -> str:
    """Claude Code's Read output: ``cat -n`` numbering (6-wide number, tab)."""
    return "\n".join(f"{i:>6}\t{line}" for i, line in enumerate(text.split("\n"), 1))


def unicode_log(lines: int = 500, seed: int = 6) -> Output:
    """A log full of non-ASCII text (accents, CJK, emoji outside the BMP) and one error."""
    rng = random.Random(seed)
    users = ("José", "Zoë", "李雷", "Ærøskøbing", "Łukasz", "🚀deploy")
    out = [
        f"{_ts(i)} INFO  [i18n] user={rng.choice(users)} locale=fr_FR msg=«café prêt» "
        f"n={rng.randint(1, 999)} ✓"
        for i in range(lines)
    ]
    error = f"{_ts(lines // 2)} ERROR [i18n] rendering failed for user=李雷: UnicodeError 💥"
    out[lines // 2] = error
    return Output("\n".join(out), (error,))


def small(text: str) -> Output:
    return Output(text)


def exec_output(body: str, exit_code: int = 0) -> str:
    """Codex's ``exec_command`` result: a short header, then the (already cut) output."""
    return (
        f"Chunk ID: 5e1f0c\nWall time: 0.4120 seconds\nProcess exited with code {exit_code}\n"
        f"Original token count: {len(body) // 4}\nOutput:\n{body}"
    )


# -------------------------------------------------------------------- Claude Code


def _rand(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choices(alphabet, k=n))


def tool_use_id(n: int) -> str:
    return "toolu_01" + _rand(random.Random(n), 22)


def signature(n: int) -> str:
    return _rand(random.Random(1000 + n), 344, string.ascii_letters + string.digits + "+/") + "=="


def system_prompt(size: int = 76_000) -> str:
    rng = random.Random(5)
    words = ("tool", "file", "edit", "read", "run", "test", "commit", "user", "task", "code")
    parts = ["You are Claude Code, Anthropic's official CLI for Claude."]
    while sum(len(p) for p in parts) < size:
        parts.append(" ".join(rng.choices(words, k=24)) + ".")
    return "\n".join(parts)[:size]


def _schema(**props: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {k: {"type": v, "description": f"The {k}"} for k, v in props.items()},
        "required": [next(iter(props))],
        "additionalProperties": False,
        "$schema": "http://json-schema.org/draft-07/schema#",
    }


def _tool(name: str, summary: str, **props: str) -> dict[str, Any]:
    return {"name": name, "description": summary, "input_schema": _schema(**props)}


CLAUDE_TOOLS = [
    _tool("Bash", "Run a shell command.", command="string", description="string"),
    _tool("Read", "Read a file.", file_path="string", offset="number", limit="number"),
    _tool("Grep", "Search file contents.", pattern="string", path="string", output_mode="string"),
    _tool("Edit", "Edit a file.", file_path="string", old_string="string", new_string="string"),
]


def claude_code_body(
    user: str, steps: list[Step], *, stream: bool = True, thinking: bool = True
) -> dict[str, Any]:
    """A Claude Code request: the user's task, then one assistant turn per tool call (a
    signed thinking block, the call) each answered by a user turn with the result."""
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>\nAs you answer the user's questions, "
                 "you can use the following context.\n</system-reminder>"},
                {"type": "text", "text": user, "cache_control": {"type": "ephemeral"}},
            ],
        }
    ]  # fmt: skip
    for n, step in enumerate(steps):
        content: list[dict[str, Any]] = []
        if thinking:
            content.append(
                {
                    "type": "thinking",
                    "thinking": f'I should use {step.tool} next.\nStep {n}: é ü — "quoted"',
                    "signature": signature(n),
                }
            )
        content.append(
            {"type": "tool_use", "id": step.call_id, "name": step.tool, "input": step.arguments}
        )
        messages.append({"role": "assistant", "content": content})
        messages.append(
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": step.call_id,
                        "content": step.output.text,
                    }
                ],
            }
        )
    body: dict[str, Any] = {
        "model": CLAUDE_MODEL,
        "messages": messages,
        "temperature": 1,
        "system": [
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
            {"type": "text", "text": system_prompt(), "cache_control": {"type": "ephemeral"}},
        ],
        "tools": CLAUDE_TOOLS,
        "metadata": {"user_id": "user_0f3c_account__session_9a1b"},
        "max_tokens": 32000,
    }
    if thinking:
        body["thinking"] = {"type": "enabled", "budget_tokens": 31999}
    body["stream"] = stream
    return body


def claude_step(n: int, tool: str, arguments: dict[str, Any], output: Output) -> Step:
    return Step(tool, arguments, output, tool_use_id(n))


# -------------------------------------------------------------------- Codex (Responses)

CODEX_TOOLS = [
    {
        "type": "function",
        "name": "exec_command",
        "description": "Runs a command in a PTY, returning output or a session ID.",
        "strict": False,
        "parameters": {
            "type": "object",
            "properties": {"cmd": {"type": "string"}, "workdir": {"type": "string"}},
            "required": ["cmd"],
            "additionalProperties": False,
        },
    },
    {
        "type": "function",
        "name": "write_stdin",
        "description": "Writes characters to an existing exec session.",
        "strict": False,
        "parameters": {
            "type": "object",
            "properties": {"session_id": {"type": "number"}, "chars": {"type": "string"}},
            "required": ["session_id"],
            "additionalProperties": False,
        },
    },
]


def codex_body(user: str, steps: list[Step], *, stream: bool = True) -> dict[str, Any]:
    items: list[dict[str, Any]] = [
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "<environment_context>\n  <cwd>/repo</cwd>\n"
                 "  <shell>bash</shell>\n</environment_context>"},
            ],
        },
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": user}]},
    ]  # fmt: skip
    for n, step in enumerate(steps):
        items.append(
            {
                "type": "reasoning",
                "summary": [],
                "content": None,
                "encrypted_content": "gAAAAB" + signature(50 + n),
            }
        )
        items.append(
            {
                "type": "function_call",
                "name": step.tool,
                "arguments": json.dumps(step.arguments),
                "call_id": step.call_id,
            }
        )
        items.append(
            {"type": "function_call_output", "call_id": step.call_id, "output": step.output.text}
        )
    return {
        "model": CODEX_MODEL,
        "instructions": "You are Codex, based on GPT-5. You are running as a coding agent.",
        "input": items,
        "tools": CODEX_TOOLS,
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": False,
        "stream": stream,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "019a8f2e-4c1d-7e3b-9a10-2b6f1d0c5e77",
    }


def codex_step(n: int, cmd: str, output: Output) -> Step:
    wrapped = Output(exec_output(output.text), output.keep)
    return Step("exec_command", {"cmd": cmd, "workdir": "/repo"}, wrapped, f"call_{n:04d}xyz")


# -------------------------------------------------------------------- OpenAI Chat

CHAT_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "run_shell",
            "description": "Run a shell command.",
            "parameters": {
                "type": "object",
                "properties": {"command": {"type": "string"}},
                "required": ["command"],
            },
        },
    }
]


def chat_body(user: str, steps: list[Step], *, stream: bool = False) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a helpful coding agent."},
        {"role": "user", "content": user},
    ]
    for step in steps:
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": step.call_id,
                        "type": "function",
                        "function": {"name": step.tool, "arguments": json.dumps(step.arguments)},
                    }
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": step.call_id, "content": step.output.text})
    body: dict[str, Any] = {"model": CHAT_MODEL, "messages": messages, "tools": CHAT_TOOLS}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def chat_step(n: int, command: str, output: Output) -> Step:
    return Step("run_shell", {"command": command}, output, f"call_chat_{n:03d}")
