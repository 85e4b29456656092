"""What an answer says it cost: each API's token counts, from a whole answer or from one
event of a streamed one (``proxy.usage_tap`` feeds them in).

Anthropic's counts are in a message, its ``message_start`` and its ``message_delta``;
OpenAI Chat's in the answer or its last chunk; Responses' in the response or its
``response.completed`` event; Gemini's in every chunk's ``usageMetadata``. A streamed
answer's counts are running totals, so each reading replaces the one before.

Counts are normalised across APIs: ``input`` is every prompt token, cached ones included
(Anthropic reports cache reads and writes beside ``input_tokens``; OpenAI and Gemini count
them inside the prompt), ``cached`` the prompt tokens read from the provider's cache,
``cache_write`` those written to it (Anthropic only), ``output`` the generated tokens,
thoughts included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from headroom.providers.base import value_at

Json = dict[str, Any]


@dataclass(frozen=True)
class Usage:
    model: str
    input: int = 0
    cached: int = 0
    cache_write: int = 0
    output: int = 0


def _int(obj: Any, *keys: str) -> int:
    """The integer at ``obj[k0][k1]...``, 0 when any step is missing or not a count."""
    value = value_at(obj, keys)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _anthropic(doc: Json, seen: Usage | None) -> Usage | None:
    """A whole message, ``message_start`` (its message) or ``message_delta``, whose usage
    carries the output so far (and, from some versions on, the input counts again)."""
    inner = doc.get("message")
    message: Json = inner if isinstance(inner, dict) else doc
    usage = message.get("usage")
    if not isinstance(usage, dict):
        return seen
    model = str(message.get("model") or (seen.model if seen else ""))
    fresh = _int(usage, "input_tokens")
    read = _int(usage, "cache_read_input_tokens")
    write = _int(usage, "cache_creation_input_tokens")
    if seen is not None and not (fresh or read or write):
        return Usage(model, seen.input, seen.cached, seen.cache_write, _int(usage, "output_tokens"))
    return Usage(model, fresh + read + write, read, write, _int(usage, "output_tokens"))


def _chat(doc: Json, seen: Usage | None) -> Usage | None:
    return _openai(doc, seen, "prompt_tokens", "prompt_tokens_details", "completion_tokens")


def _responses(doc: Json, seen: Usage | None) -> Usage | None:
    """A whole response, or the ``response.completed``/``incomplete`` event holding one."""
    inner = doc.get("response")
    response: Json = inner if isinstance(inner, dict) else doc
    return _openai(response, seen, "input_tokens", "input_tokens_details", "output_tokens")


def _openai(doc: Json, seen: Usage | None, prompt: str, details: str, output: str) -> Usage | None:
    """OpenAI's two APIs spell one usage object with different keys; the prompt count
    already includes the cached tokens, and no cache write is billed apart."""
    usage = doc.get("usage")
    if not isinstance(usage, dict):
        return seen
    return Usage(
        str(doc.get("model", "")),
        _int(usage, prompt),
        _int(usage, details, "cached_tokens"),
        0,
        _int(usage, output),
    )


def _gemini(doc: Json, seen: Usage | None) -> Usage | None:
    usage = doc.get("usageMetadata")
    if not isinstance(usage, dict):
        return seen
    return Usage(
        str(doc.get("modelVersion") or (seen.model if seen else "")),
        _int(usage, "promptTokenCount"),
        _int(usage, "cachedContentTokenCount"),
        0,
        _int(usage, "candidatesTokenCount") + _int(usage, "thoughtsTokenCount"),
    )


Reader = Callable[[Json, Usage | None], Usage | None]
# By provider name; an event is decoded only if its bytes hold one of the hints.
READERS: dict[str, tuple[Reader, tuple[bytes, ...]]] = {
    "anthropic": (_anthropic, (b'"usage"',)),
    "openai_chat": (_chat, (b'"usage"',)),
    "openai_responses": (_responses, (b"response.completed", b"response.incomplete")),
    "gemini": (_gemini, (b'"usageMetadata"',)),
    "gemini_stream": (_gemini, (b'"usageMetadata"',)),
}
