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
from headroom.jsondoc import JsonDoc
from headroom.providers.base import Provider, ToolOutput, is_retrieve_tool


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
        text = arguments
        try:
            arguments = orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
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


def output_naming(provider: Provider, body: bytes, key: str) -> ToolOutput | None:
    """The tool output of a request body whose marker names ``key``: what the model saw."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict):
        return None
    return next((o for o in provider.find_outputs(payload) if key in o.text), None)


def tool_calls(provider: Provider, response: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    return provider.shape.tool_calls(response)


def follow_up(
    provider: Provider, body: bytes, response: dict[str, Any], results: list[tuple[str, str]]
) -> bytes:
    """The forwarded body plus the model's turn and one tool result per ``(call_id, text)``."""
    shape = provider.shape
    return _append(body, shape.history_key, shape.follow_up(response, results))


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
    return provider.shape.strip_calls(response)


def with_earlier_rounds(
    provider: Provider, earlier: list[dict[str, Any]], final: dict[str, Any]
) -> dict[str, Any]:
    """The answer a non-streaming client gets after retrieval rounds: what each earlier round
    said (its text, its thinking; our calls stripped) before the final content, and usage
    summed over the rounds, since each was billed."""
    if not earlier:
        return final
    out = provider.shape.merge_rounds(earlier, final)
    key = provider.shape.usage_key
    usage = out.get(key)
    if isinstance(usage, dict):
        spent: dict[str, int] = {}
        for r in earlier:
            round_usage = r.get(key)
            if isinstance(round_usage, dict):
                add_counts(spent, round_usage)
        out[key] = summed_usage(usage, spent)
    return out


def summed_usage(usage: dict[str, Any], spent: dict[str, int]) -> dict[str, Any]:
    """``usage`` with what earlier rounds ``spent`` added to each of its counts (the client
    pays for every round); other fields as they are."""
    return {k: v + spent.get(k, 0) if _count(v) else v for k, v in usage.items()}


def add_counts(spent: dict[str, int], usage: dict[str, Any]) -> None:
    """Add a round's token counts (its integer fields) to ``spent``."""
    for k, v in usage.items():
        if _count(v):
            spent[k] = spent.get(k, 0) + v


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
