"""The three APIs: where each keeps tool outputs, and its spelling of the retrieval tool.

* Anthropic Messages: ``tool_result`` blocks in user messages; content is a string or a
  list of blocks whose ``text`` blocks are compressed (images and documents never).
* OpenAI Chat Completions: ``role: tool`` messages; content is a string or text parts.
* OpenAI Responses: ``function_call_output`` and every other ``*_call_output`` item in
  ``input``; ``output`` is a string or a list of ``input_text``/``output_text`` parts.

Never returned: system and developer prompts, user-typed text, assistant text, thinking
blocks, tool definitions, and outputs of ``headroom_retrieve`` itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from headroom.jsondoc import Path
from headroom.providers.base import (
    RETRIEVE_DESCRIPTION,
    RETRIEVE_SCHEMA,
    RETRIEVE_TOOL,
    Provider,
    ToolOutput,
    is_retrieve_tool,
    make_query,
    program_of,
    text_of,
)
from headroom.providers.shapes import AnthropicShape, ChatShape, ResponsesShape

# tool name, arguments, what the assistant said in the calling message, the user turn before
_Call = tuple[str, Any, str, str]
Piece = tuple[Path, str]  # where a compressible string lives, and the string


def _parts(base: Path, content: Any, text_key: str, types: tuple[str, ...]) -> list[Piece]:
    """(path, text) of the compressible strings of a tool output's content."""
    if isinstance(content, str):
        return [(base, content)]
    out: list[Piece] = []
    if isinstance(content, list):
        for k, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") in types:
                value = part.get(text_key)
                if isinstance(value, str):
                    out.append(((*base, k, text_key), value))
    return out


def call_outputs(
    pieces: list[tuple[Path, str]], call: _Call | None, fallback_turn: str, beside: str = ""
) -> list[ToolOutput]:
    """``beside``: the user's own text in the message that carries the result."""
    name, args, said, turn = call if call is not None else ("", None, "", fallback_turn)
    if is_retrieve_tool(name):
        return []
    query = make_query(args, said, turn, beside)
    program = program_of(args)
    return [ToolOutput(path, text, name, query, program) for path, text in pieces]


def entries(payload: dict[str, Any], key: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(index, entry)`` of the objects in ``payload[key]``; nothing if it is not a list."""
    entries = payload.get(key)
    if isinstance(entries, list):
        for i, entry in enumerate(entries):
            if isinstance(entry, dict):
                yield i, entry


# ---------------------------------------------------------------- Anthropic Messages


def anthropic_outputs(payload: dict[str, Any]) -> list[ToolOutput]:
    calls: dict[str, _Call] = {}
    user_turn = ""
    found: list[ToolOutput] = []
    for i, msg in entries(payload, "messages"):
        content = msg.get("content")
        role = msg.get("role")
        if role == "assistant" and isinstance(content, list):
            said = text_of(content)
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    calls[str(block.get("id"))] = (
                        str(block.get("name", "")),
                        block.get("input"),
                        said,
                        user_turn,
                    )
        elif role == "user":
            typed = text_of(content)
            if isinstance(content, list):
                for j, block in enumerate(content):
                    if isinstance(block, dict) and block.get("type") == "tool_result":
                        pieces = _parts(
                            ("messages", i, "content", j, "content"),
                            block.get("content"),
                            "text",
                            ("text",),
                        )
                        call = calls.get(str(block.get("tool_use_id")))
                        found.extend(call_outputs(pieces, call, user_turn, typed))
            if typed:
                user_turn = typed
    return found


# ---------------------------------------------------------------- OpenAI Chat Completions


def openai_chat_outputs(payload: dict[str, Any]) -> list[ToolOutput]:
    calls: dict[str, _Call] = {}
    user_turn = ""
    found: list[ToolOutput] = []
    for i, msg in entries(payload, "messages"):
        role = msg.get("role")
        if role == "assistant":
            said = text_of(msg.get("content"))
            for call in msg.get("tool_calls") or []:
                if isinstance(call, dict) and isinstance(call.get("function"), dict):
                    fn = call["function"]
                    calls[str(call.get("id"))] = (
                        str(fn.get("name", "")),
                        fn.get("arguments"),
                        said,
                        user_turn,
                    )
        elif role == "user":
            typed = text_of(msg.get("content"))
            if typed:
                user_turn = typed
        elif role == "tool":
            pieces = _parts(("messages", i, "content"), msg.get("content"), "text", ("text",))
            found.extend(call_outputs(pieces, calls.get(str(msg.get("tool_call_id"))), user_turn))
    return found


# ---------------------------------------------------------------- OpenAI Responses

_RESPONSES_CALLS = (
    "function_call",
    "custom_tool_call",
    "local_shell_call",
    "shell_call",
    "apply_patch_call",
    "computer_call",
    "mcp_call",
)


def openai_responses_outputs(payload: dict[str, Any]) -> list[ToolOutput]:
    calls: dict[str, _Call] = {}
    user_turn = ""
    said = ""  # the assistant's text since the last user turn: calls follow it as items
    found: list[ToolOutput] = []
    for i, item in entries(payload, "input"):
        kind = item.get("type")
        if kind in _RESPONSES_CALLS:
            args = item.get("arguments", item.get("input", item.get("action")))
            name = str(item.get("name", kind))
            calls[str(item.get("call_id"))] = (name, args, said, user_turn)
        elif isinstance(kind, str) and kind.endswith("_call_output"):
            pieces = _parts(
                ("input", i, "output"),
                item.get("output"),
                "text",
                ("input_text", "output_text", "text"),
            )
            found.extend(call_outputs(pieces, calls.get(str(item.get("call_id"))), user_turn))
        elif (kind in (None, "message")) and item.get("role") == "user":
            typed = text_of(item.get("content"), ("input_text", "text"))
            if typed:
                user_turn, said = typed, ""
        elif (kind in (None, "message")) and item.get("role") == "assistant":
            said = "\n".join(
                x for x in (said, text_of(item.get("content"), ("output_text", "text"))) if x
            )
    return found


def _compact(value: Any) -> str:
    return orjson.dumps(value).decode()


def _name_field(tool: dict[str, Any]) -> tuple[str, ...]:
    return (str(tool.get("name", "")),)


def _chat_tool_name(tool: dict[str, Any]) -> tuple[str, ...]:
    fn = tool.get("function")
    return (str(fn.get("name", "")),) if isinstance(fn, dict) else ()


ANTHROPIC = Provider(
    "anthropic",
    anthropic_outputs,
    _compact(
        {
            "name": RETRIEVE_TOOL,
            "description": RETRIEVE_DESCRIPTION,
            "input_schema": RETRIEVE_SCHEMA,
        }
    ),
    _name_field,
    AnthropicShape(),
    (b"\nevent: message_stop", b'"type":"message_stop"', b'"type": "message_stop"'),
)
OPENAI_CHAT = Provider(
    "openai_chat",
    openai_chat_outputs,
    _compact(
        {
            "type": "function",
            "function": {
                "name": RETRIEVE_TOOL,
                "description": RETRIEVE_DESCRIPTION,
                "parameters": RETRIEVE_SCHEMA,
            },
        }
    ),
    _chat_tool_name,
    ChatShape(),
    (b"\ndata: [DONE]", b"\ndata:[DONE]"),
)
OPENAI_RESPONSES = Provider(
    "openai_responses",
    openai_responses_outputs,
    _compact(
        {
            "type": "function",
            "name": RETRIEVE_TOOL,
            "description": RETRIEVE_DESCRIPTION,
            "parameters": RETRIEVE_SCHEMA,
            "strict": False,
        }
    ),
    _name_field,
    ResponsesShape(),
    tuple(
        form % kind.encode()
        for kind in ("response.completed", "response.incomplete", "response.failed")
        for form in (b"\nevent: %s", b'"type":"%s"', b'"type": "%s"')
    ),
)
