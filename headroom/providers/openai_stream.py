"""OpenAI Chat Completions streams with ``headroom_retrieve`` served inside the proxy.

Chunks flow through as they arrive, byte for byte, except: tool-call deltas of our tool are
cut out of their chunk (the client's own tool calls keep flowing, renumbered when ours came
first); when the model finishes with our calls alone, the finishing chunk, the usage chunk
and ``[DONE]`` are held and the same stream continues with the follow-up answer, whose
usage chunk is summed with the held ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from headroom.providers.base import is_retrieve_tool
from headroom.providers.retrieval import RetrieveCall, _call, summed_usage
from headroom.providers.sse import Event, event_object, format_event


@dataclass
class _ToolCall:
    ours: bool
    client_index: int | None
    call_id: str = ""
    name: str = ""
    parts: list[str] = field(default_factory=list)


class OpenAIChatStream:
    def __init__(self) -> None:
        self._round = 0
        self._tools: dict[int, _ToolCall] = {}
        self._next_client_index = 0
        self._text: list[str] = []
        self._held_usage: dict[str, int] = {}
        self.calls: list[RetrieveCall] = []
        self.other_tool_calls = 0
        self.wants_follow_up = False

    def start_round(self) -> None:
        self._round += 1
        self._tools.clear()
        self._text = []
        self.calls = []
        self.other_tool_calls = 0
        self.wants_follow_up = False

    def feed(self, event: Event) -> bytes:
        if event.data.strip() == "[DONE]":
            return b"" if self.wants_follow_up else event.raw
        chunk = event_object(event)
        if chunk is None:
            return event.raw
        choices = chunk.get("choices")
        if not choices:
            return self._usage_chunk(event, chunk)
        choice: dict[str, Any] = choices[0] if isinstance(choices[0], dict) else {}
        raw_delta = choice.get("delta")
        delta: dict[str, Any] = raw_delta if isinstance(raw_delta, dict) else {}
        changed = False
        if isinstance(delta.get("content"), str):
            self._text.append(delta["content"])
        if isinstance(delta.get("tool_calls"), list):
            kept, changed = self._tool_deltas(delta["tool_calls"])
            delta = {k: v for k, v in delta.items() if k != "tool_calls"}
            if kept:
                delta["tool_calls"] = kept
        finish = choice.get("finish_reason")
        if finish == "tool_calls" and self._finish_ours():
            self.wants_follow_up = True
            if not any(delta.get(k) for k in ("content", "tool_calls")):
                return b""
            choice = {**choice, "finish_reason": None}
            changed = True
        if not changed:
            return event.raw
        if not delta and choice.get("finish_reason") is None:
            return b""  # the chunk carried only our tool call
        out = {**chunk, "choices": [{**choice, "delta": delta}, *choices[1:]]}
        return format_event(event.name, orjson.dumps(out).decode())

    def _tool_deltas(self, deltas: list[Any]) -> tuple[list[Any], bool]:
        kept: list[Any] = []
        changed = False
        for tc in deltas:
            if not isinstance(tc, dict) or not isinstance(tc.get("index"), int):
                kept.append(tc)
                continue
            index = tc["index"]
            raw_fn = tc.get("function")
            fn: dict[str, Any] = raw_fn if isinstance(raw_fn, dict) else {}
            call = self._tools.get(index)
            if call is None:
                ours = is_retrieve_tool(str(fn.get("name", "")))
                call = _ToolCall(ours, None if ours else self._next_client_index)
                if not ours:
                    self._next_client_index += 1
                    self.other_tool_calls += 1
                self._tools[index] = call
            call.call_id = call.call_id or str(tc.get("id") or "")
            call.name = call.name or str(fn.get("name") or "")
            if isinstance(fn.get("arguments"), str):
                call.parts.append(fn["arguments"])
            if call.ours:
                changed = True
                continue
            if call.client_index != index:
                tc = {**tc, "index": call.client_index}
                changed = True
            kept.append(tc)
        return kept, changed

    def _finish_ours(self) -> bool:
        ours = [c for c in self._tools.values() if c.ours]
        if not ours or self.other_tool_calls:
            return False
        self.calls = [_call(c.call_id, "".join(c.parts)) for c in ours]
        return True

    def _usage_chunk(self, event: Event, chunk: dict[str, Any]) -> bytes:
        usage = chunk.get("usage")
        if not isinstance(usage, dict):
            return event.raw
        if self.wants_follow_up:
            for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
                if isinstance(usage.get(key), int):
                    self._held_usage[key] = self._held_usage.get(key, 0) + usage[key]
            return b""
        if not self._held_usage:
            return event.raw
        summed = summed_usage(usage, self._held_usage)
        return format_event(event.name, orjson.dumps({**chunk, "usage": summed}).decode())

    def follow_up_response(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self._text) or None}
        message["tool_calls"] = [
            {
                "id": c.call_id,
                "type": "function",
                "function": {"name": c.name, "arguments": "".join(c.parts)},
            }
            for _, c in sorted(self._tools.items())
        ]
        return {"choices": [{"message": message}]}

    def close_events(self, message: str | None) -> bytes:
        if message is not None:
            error = {"error": {"type": "api_error", "message": message}}
            return format_event("", orjson.dumps(error).decode()) + format_event("", "[DONE]")
        finish = {
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
        return format_event("", orjson.dumps(finish).decode()) + format_event("", "[DONE]")
