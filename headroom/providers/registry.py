"""Which adapter reads a request: one table from request path to ``Provider``.

Anthropic and OpenAI paths end in a fixed suffix (also under a base path). Gemini's name a
model and a method (``/v1beta/models/gemini-2.5-flash:streamGenerateContent``, also
``tunedModels/…`` and the ``/v1/`` versions): matched on the method after the last colon of
a ``models/`` or ``tunedModels/`` path.
"""

from __future__ import annotations

from headroom.providers.apis import ANTHROPIC, OPENAI_CHAT, OPENAI_RESPONSES
from headroom.providers.base import Provider
from headroom.providers.gemini import GEMINI, GEMINI_COUNT, GEMINI_STREAM

PROVIDERS = {
    p.name: p
    for p in (ANTHROPIC, OPENAI_CHAT, OPENAI_RESPONSES, GEMINI, GEMINI_STREAM, GEMINI_COUNT)
}

_BY_SUFFIX = (
    ("/v1/messages", ANTHROPIC),
    ("/v1/messages/count_tokens", ANTHROPIC),
    ("/v1/chat/completions", OPENAI_CHAT),
    ("/v1/responses", OPENAI_RESPONSES),
)
_BY_METHOD = {
    "generateContent": GEMINI,
    "streamGenerateContent": GEMINI_STREAM,
    "countTokens": GEMINI_COUNT,
}
_MODEL_DIRS = ("/models/", "/tunedModels/")


def provider_for(path: str) -> Provider | None:
    """The adapter for a request path, or None for a path no adapter reads."""
    for suffix, provider in _BY_SUFFIX:
        if path == suffix or path.endswith(suffix):
            return provider
    gemini = _model_method(path)
    return _BY_METHOD[gemini[2]] if gemini is not None else None


def path_label(path: str) -> str:
    """A request path as a ``/stats`` and ``/metrics`` label: a Gemini path with its model
    replaced by ``{model}``, so the label set does not grow with every model a client
    names; other paths as they are."""
    gemini = _model_method(path)
    if gemini is None:
        return path
    prefix, _, method = gemini
    return f"{prefix}{{model}}:{method}"


def _model_method(path: str) -> tuple[str, str, str] | None:
    """(everything up to the model directory, the model, the method) of a Gemini path."""
    head, colon, method = path.rpartition(":")
    if not colon or method not in _BY_METHOD:
        return None
    for directory in _MODEL_DIRS:
        at = head.find(directory)
        if at >= 0:
            end = at + len(directory)
            return head[:end], head[end:], method
    return None
