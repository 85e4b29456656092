"""The retrieval loop's provider knowledge: finding the model's ``headroom_retrieve`` calls in
a response, building the follow-up request that answers them, and removing them from what
the client finally sees. Pure functions over parsed JSON; the proxy does the I/O.

The follow-up request is the forwarded (compressed) body with the assistant turn and the
tool results appended at the end of ``messages`` / ``input`` by byte splicing, so every
earlier byte — and so the provider's prompt cache — stays as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from headroom.ccr.markers import normalize_key
from headroom.providers.base import Provider, is_retrieve_tool
from headroom.providers.jsondoc import JsonDoc


@dataclass(frozen=True)
class RetrieveCall:
    call_id: str
    key: str | None  # normalised hash, None when the argument is not a valid hash
    raw: str  # the argument as the model wrote it


@dataclass(frozen=True)
class Calls:
    ours: list[RetrieveCall]
    others: int  # tool calls meant for the client


def _hash_arg(arguments: Any) -> str:
    if isinstance(arguments, str):
        try:
            arguments = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            return arguments
    if isinstance(arguments, dict):
        value = arguments.get("hash")
        return value if isinstance(value, str) else ""
    return ""


def _call(call_id: Any, arguments: Any) -> RetrieveCall:
    raw = _hash_arg(arguments)
    return RetrieveCall(str(call_id), normalize_key(raw), raw)


def find_calls(provider: Provider, response: dict[str, Any]) -> Calls:
    ours: list[RetrieveCall] = []
    others = 0
    for name, call_id, arguments in tool_calls(provider, response):
        if is_retrieve_tool(name):
            ours.append(_call(call_id, arguments))
        else:
            others += 1
    return Calls(ours, others)


def tool_calls(provider: Provider, response: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    out: list[tuple[str, Any, Any]] = []
    if provider.name == "anthropic":
        for block in response.get("content") or []:
            if isinstance(block, dict) and block.get("type") == "tool_use":
                out.append((str(block.get("name", "")), block.get("id"), block.get("input")))
    elif provider.name == "openai_chat":
        for call in _chat_message(response).get("tool_calls") or []:
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                out.append((str(fn.get("name", "")), call.get("id"), fn.get("arguments")))
    else:
        for item in response.get("output") or []:
            if isinstance(item, dict) and item.get("type") == "function_call":
                out.append((str(item.get("name", "")), item.get("call_id"), item.get("arguments")))
    return out


def _chat_message(response: dict[str, Any]) -> dict[str, Any]:
    choices = response.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = choices[0].get("message")
        if isinstance(message, dict):
            return message
    return {}


def follow_up(
    provider: Provider, body: bytes, response: dict[str, Any], results: list[tuple[str, str]]
) -> bytes:
    """The forwarded body plus the model's turn and one tool result per ``(call_id, text)``."""
    turns: list[dict[str, Any]]
    if provider.name == "anthropic":
        turns = [
            {"role": "assistant", "content": response.get("content") or []},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": cid, "content": text}
                    for cid, text in results
                ],
            },
        ]
        return _append(body, "messages", turns)
    if provider.name == "openai_chat":
        message = dict(_chat_message(response))
        message.setdefault("role", "assistant")
        turns = [
            message,
            *({"role": "tool", "tool_call_id": cid, "content": text} for cid, text in results),
        ]
        return _append(body, "messages", turns)
    outputs = [item for item in response.get("output") or [] if isinstance(item, dict)]
    items = [
        *outputs,
        *(
            {"type": "function_call_output", "call_id": cid, "output": text}
            for cid, text in results
        ),
    ]
    return _append(body, "input", items)


def _append(body: bytes, key: str, elements: list[dict[str, Any]]) -> bytes:
    doc = JsonDoc(body)
    span = doc.spans([(key,)]).get((key,))
    if span is None:
        raise ValueError(f"request has no {key!r} to continue")
    current = doc.value(span)
    if isinstance(current, str):  # Responses: a bare string input is one user message
        items = [{"role": "user", "content": current}, *elements]
        doc.replace(span, "[" + ",".join(orjson.dumps(e).decode() for e in items) + "]")
    elif isinstance(current, list):
        for element in elements:
            doc.append_to_array(span, orjson.dumps(element).decode())
    else:
        raise ValueError(f"request {key!r} is neither a list nor a string")
    return doc.render()


def strip_calls(provider: Provider, response: dict[str, Any]) -> dict[str, Any]:
    """The response without our calls, for the client: it never learns the tool exists."""
    out = dict(response)
    if provider.name == "anthropic":
        content = [
            b
            for b in response.get("content") or []
            if not (
                isinstance(b, dict)
                and b.get("type") == "tool_use"
                and is_retrieve_tool(str(b.get("name", "")))
            )
        ]
        out["content"] = content
        if out.get("stop_reason") == "tool_use" and not any(
            isinstance(b, dict) and b.get("type") == "tool_use" for b in content
        ):
            out["stop_reason"] = "end_turn"
    elif provider.name == "openai_chat":
        choices = [dict(c) if isinstance(c, dict) else c for c in response.get("choices") or []]
        if choices and isinstance(choices[0], dict):
            message = dict(_chat_message(response))
            kept = [
                c
                for c in message.get("tool_calls") or []
                if not (
                    isinstance(c, dict)
                    and isinstance(c.get("function"), dict)
                    and is_retrieve_tool(str(c["function"].get("name", "")))
                )
            ]
            if kept:
                message["tool_calls"] = kept
            else:
                message.pop("tool_calls", None)
                if choices[0].get("finish_reason") == "tool_calls":
                    choices[0]["finish_reason"] = "stop"
            choices[0]["message"] = message
            out["choices"] = choices
    else:
        out["output"] = [
            i
            for i in response.get("output") or []
            if not (
                isinstance(i, dict)
                and i.get("type") == "function_call"
                and is_retrieve_tool(str(i.get("name", "")))
            )
        ]
    return out


def tool_result_text(key: str | None, raw: str, original: bytes | None, status: str) -> str:
    """What the model reads back: the original, or a plain sentence saying why not."""
    if key is None:
        return (
            f"headroom_retrieve: {raw!r} is not a valid hash (expected the 24 hex "
            "characters shown in the marker). Nothing was retrieved."
        )
    if original is not None:
        return original.decode("utf-8", errors="replace")
    if status == "expired":
        return (
            f"headroom_retrieve: the original for hash {key} has expired and is gone for "
            "good. Continue with the shortened content you have; do not ask for it again."
        )
    return (
        f"headroom_retrieve: no original is stored under hash {key}. Continue with the "
        "shortened content you have; do not ask for it again."
    )
