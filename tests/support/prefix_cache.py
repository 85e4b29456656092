"""Provider prompt caching, emulated for the scripted fake upstream.

The providers cache a prompt's prefix: what a request shares, from its start, with a prompt
they saw before is read from the cache. The prompt is rendered in the provider's own order
— tools, then the system prompt, then the turns — whatever the JSON key order, and its
whitespace does not count; so the emulation renders that order from the parsed body (each
element compact, in the client's key order) and counts the longest prefix shared with any
earlier prompt, at the fake's 4 bytes a token. A proxy that changed a byte of an earlier
turn, or of the tools, shows up as cache reads lost, as it would on the real API.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import orjson

# The parts of a request each API renders into its prompt, in the order it renders them.
PROMPT_PARTS = {
    "anthropic": ("tools", "system", "messages"),
    "openai_chat": ("tools", "messages"),
    "openai_responses": ("tools", "instructions", "input"),
    "gemini": ("tools", "systemInstruction", "contents"),
}
MAX_PROMPTS = 256


def render(api: str, payload: dict[str, Any]) -> bytes:
    out: list[bytes] = []
    for key in PROMPT_PARTS[api]:
        value = payload.get(key)
        items = value if isinstance(value, list) else [] if value is None else [value]
        out.extend(orjson.dumps(item) for item in items)
    return b"\n".join(out)


class PrefixCache:
    """The prompts seen (bounded, newest kept), and what a new prompt reads of them."""

    def __init__(self) -> None:
        self._seen: dict[str, deque[bytes]] = {}
        self._lock = threading.Lock()

    def read(self, api: str, payload: dict[str, Any]) -> tuple[int, int]:
        """(prompt tokens, cached tokens) of this request; the prompt is remembered."""
        prompt = render(api, payload)
        with self._lock:
            seen = self._seen.setdefault(api, deque(maxlen=MAX_PROMPTS))
            shared = max((_common(prompt, old) for old in seen), default=0)
            seen.append(prompt)
        return len(prompt) // 4, shared // 4


def _common(a: bytes, b: bytes) -> int:
    """Length of the longest common prefix (by halving: bytes compare in C)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo
