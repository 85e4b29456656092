"""Gemini ``streamGenerateContent?alt=sse`` streams with ``headroom_retrieve`` served inside
the proxy.

Each event is one whole ``GenerateContentResponse`` chunk; a ``functionCall`` part arrives
whole in one chunk, and the last chunk is the one with a ``finishReason`` (there is no
closing event). Chunks flow through byte for byte, except: our ``functionCall`` parts are
cut out of their chunk (a chunk left with nothing to say is not sent); when the model
finishes with our calls alone, that chunk loses its finish reason and usage, and the same
stream continues with the follow-up answer, whose ``usageMetadata`` counts carry the held
rounds' counts added (every round was billed).
"""

from __future__ import annotations

from typing import Any

import orjson

from headroom.providers.gemini import GeminiShape, call_key, function_call, with_parts
from headroom.providers.retrieval import RetrieveCall, _call, add_counts, summed_usage
from headroom.providers.shapes import ours
from headroom.providers.sse import Event, event_object, format_event

_SHAPE = GeminiShape()


class GeminiStream:
    def __init__(self) -> None:
        self._parts: list[Any] = []  # every part of this round, ours included, in order
        self._round_usage: dict[str, Any] = {}  # the round's latest usageMetadata
        self._held_usage: dict[str, int] = {}  # counts of the rounds the client did not see end
        self.calls: list[RetrieveCall] = []
        self.other_tool_calls = 0
        self.wants_follow_up = False

    def start_round(self) -> None:
        self._parts = []
        self._round_usage = {}
        self.calls = []
        self.other_tool_calls = 0
        self.wants_follow_up = False

    def feed(self, event: Event) -> bytes:
        chunk = event_object(event)
        if chunk is None:
            return event.raw
        usage = chunk.get("usageMetadata")
        if isinstance(usage, dict):
            self._round_usage = usage
        kept, cut = self._track(_SHAPE.call_items(chunk))
        candidates = chunk.get("candidates")
        first = candidates[0] if isinstance(candidates, list) and candidates else None
        finished = isinstance(first, dict) and first.get("finishReason") is not None
        if finished and self.calls and not self.other_tool_calls:
            self.wants_follow_up = True
            add_counts(self._held_usage, self._round_usage)
            if not kept:
                return b""
            chunk = {k: v for k, v in with_parts(chunk, kept).items() if k != "usageMetadata"}
            chunk["candidates"][0] = {
                k: v for k, v in chunk["candidates"][0].items() if k != "finishReason"
            }
            return format_event(event.name, orjson.dumps(chunk).decode())
        summing = bool(self._held_usage) and isinstance(usage, dict)
        if not cut and not summing:
            return event.raw
        if cut and not kept and not finished and not summing:
            return b""  # the chunk carried only our call
        out = with_parts(chunk, kept) if cut else dict(chunk)
        if summing:
            out["usageMetadata"] = summed_usage(usage, self._held_usage)  # type: ignore[arg-type]
        return format_event(event.name, orjson.dumps(out).decode())

    def _track(self, parts: list[Any]) -> tuple[list[Any], bool]:
        """The parts the client sees, and whether any of ours were cut."""
        kept: list[Any] = []
        for part in parts:
            self._parts.append(part)
            call = function_call(part)
            if call is not None and ours(_SHAPE, part):
                self.calls.append(_call(call_key(part), call.get("args")))
                continue
            self.other_tool_calls += call is not None
            kept.append(part)
        return kept, len(kept) != len(parts)

    def follow_up_response(self) -> dict[str, Any]:
        return {"candidates": [{"content": {"role": "model", "parts": list(self._parts)}}]}

    def close_events(self, message: str | None) -> bytes:
        if message is not None:
            error = {"error": {"code": 502, "message": message, "status": "UNAVAILABLE"}}
            return format_event("", orjson.dumps(error).decode())
        done: dict[str, Any] = {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP"}
            ],
        }
        if self._held_usage:
            done["usageMetadata"] = dict(self._held_usage)
        return format_event("", orjson.dumps(done).decode())
