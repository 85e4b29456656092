"""Anthropic Messages streams with ``headroom_retrieve`` served inside the proxy.

The client sees one message. Events flow through as they arrive, byte for byte, except:

* a ``tool_use`` block for ``headroom_retrieve`` is held back (start, deltas, stop);
* when the model stops to wait for those calls alone, ``message_delta``/``message_stop`` are
  held too and the proxy continues the same stream with a follow-up request, whose
  ``message_start`` is dropped and whose block indices continue where the client's left off;
* ``message_delta`` usage is summed over the rounds, so the client's accounting is whole.

Renumbered or summed events are re-serialised; every other event keeps its exact bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from headroom.providers.base import is_retrieve_tool
from headroom.providers.retrieval import RetrieveCall, _call
from headroom.providers.sse import Event, event_object, format_event


@dataclass
class _Block:
    kind: str
    data: dict[str, Any]
    ours: bool
    client_index: int | None
    parts: list[str] = field(default_factory=list)  # input_json_delta pieces


class AnthropicStream:
    """One client stream across rounds. ``feed`` per upstream event, ``start_round`` before
    each follow-up's events."""

    def __init__(self) -> None:
        self._next_client_index = 0
        self._round = 0
        self._blocks: dict[int, _Block] = {}
        self._order: list[int] = []
        self._output_tokens_before = 0  # output tokens of finished rounds
        self.calls: list[RetrieveCall] = []
        self.other_tool_calls = 0
        self.wants_follow_up = False

    def start_round(self) -> None:
        self._round += 1
        self._blocks.clear()
        self._order.clear()
        self.calls = []
        self.other_tool_calls = 0
        self.wants_follow_up = False

    def feed(self, event: Event) -> bytes:
        """Bytes to write to the client for this event (possibly none)."""
        handler = _HANDLERS.get(event.name)
        payload = event_object(event) if handler is not None else None
        if handler is None or payload is None:
            return event.raw
        return handler(self, event, payload)

    # ------------------------------------------------------------------ per event type

    def _message_start(self, event: Event, payload: dict[str, Any]) -> bytes:
        return event.raw if self._round == 0 else b""

    def _block_start(self, event: Event, payload: dict[str, Any]) -> bytes:
        index = payload.get("index")
        block = payload.get("content_block")
        if not isinstance(index, int) or not isinstance(block, dict):
            return event.raw
        kind = str(block.get("type", ""))
        ours = kind == "tool_use" and is_retrieve_tool(str(block.get("name", "")))
        client_index = None if ours else self._next_client_index
        if not ours:
            self._next_client_index += 1
            if kind in ("tool_use", "server_tool_use"):
                self.other_tool_calls += kind == "tool_use"
        self._blocks[index] = _Block(kind, dict(block), ours, client_index)
        self._order.append(index)
        return b"" if ours else self._renumbered(event, payload, index, client_index)

    def _block_delta(self, event: Event, payload: dict[str, Any]) -> bytes:
        index = payload.get("index")
        block = self._blocks.get(index) if isinstance(index, int) else None
        if block is None:
            return event.raw
        delta = payload.get("delta")
        if isinstance(delta, dict):
            _accumulate(block, delta)
        if block.ours:
            return b""
        return self._renumbered(event, payload, index, block.client_index)  # type: ignore[arg-type]

    def _block_stop(self, event: Event, payload: dict[str, Any]) -> bytes:
        index = payload.get("index")
        block = self._blocks.get(index) if isinstance(index, int) else None
        if block is None:
            return event.raw
        if block.ours:
            self.calls.append(_call(block.data.get("id"), "".join(block.parts) or "{}"))
            return b""
        return self._renumbered(event, payload, index, block.client_index)  # type: ignore[arg-type]

    def _message_delta(self, event: Event, payload: dict[str, Any]) -> bytes:
        delta = payload.get("delta")
        stop = delta.get("stop_reason") if isinstance(delta, dict) else None
        usage = payload.get("usage")
        tokens = usage.get("output_tokens") if isinstance(usage, dict) else None
        if stop == "tool_use" and self.calls and not self.other_tool_calls:
            self.wants_follow_up = True
            if isinstance(tokens, int):
                self._output_tokens_before += tokens
            return b""
        if self._round == 0 or not isinstance(tokens, int):
            return event.raw
        summed = dict(payload)
        summed["usage"] = {**usage, "output_tokens": tokens + self._output_tokens_before}  # type: ignore[dict-item]
        return format_event(event.name, orjson.dumps(summed).decode())

    def _message_stop(self, event: Event, payload: dict[str, Any]) -> bytes:
        return b"" if self.wants_follow_up else event.raw

    # ------------------------------------------------------------------ helpers

    def _renumbered(
        self, event: Event, payload: dict[str, Any], index: int, client_index: int | None
    ) -> bytes:
        if client_index is None or client_index == index:
            return event.raw
        return format_event(event.name, orjson.dumps({**payload, "index": client_index}).decode())

    def follow_up_response(self) -> dict[str, Any]:
        """This round's answer in the non-streaming shape ``retrieval.follow_up`` takes."""
        return {"content": self.assistant_content()}

    def close_events(self, message: str | None) -> bytes:
        """Events that end the client's stream when no further round can run."""
        if message is not None:
            error = {"type": "error", "error": {"type": "api_error", "message": message}}
            return format_event("error", orjson.dumps(error).decode())
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": self._output_tokens_before},
        }
        return format_event("message_delta", orjson.dumps(delta).decode()) + format_event(
            "message_stop", '{"type":"message_stop"}'
        )

    def assistant_content(self) -> list[dict[str, Any]]:
        """This round's assistant turn, rebuilt from the stream, for the follow-up request."""
        content: list[dict[str, Any]] = []
        for index in self._order:
            block = self._blocks[index]
            data = dict(block.data)
            if block.kind in ("tool_use", "server_tool_use"):
                joined = "".join(block.parts)
                try:
                    data["input"] = orjson.loads(joined) if joined else data.get("input", {})
                except orjson.JSONDecodeError:
                    data["input"] = {}
            content.append(data)
        return content


def _accumulate(block: _Block, delta: dict[str, Any]) -> None:
    kind = delta.get("type")
    data = block.data
    if kind == "text_delta":
        data["text"] = data.get("text", "") + str(delta.get("text", ""))
    elif kind == "thinking_delta":
        data["thinking"] = data.get("thinking", "") + str(delta.get("thinking", ""))
    elif kind == "signature_delta":
        data["signature"] = data.get("signature", "") + str(delta.get("signature", ""))
    elif kind == "input_json_delta":
        block.parts.append(str(delta.get("partial_json", "")))
    elif kind == "citations_delta":
        data.setdefault("citations", []).append(delta.get("citation"))


_HANDLERS = {
    "message_start": AnthropicStream._message_start,
    "content_block_start": AnthropicStream._block_start,
    "content_block_delta": AnthropicStream._block_delta,
    "content_block_stop": AnthropicStream._block_stop,
    "message_delta": AnthropicStream._message_delta,
    "message_stop": AnthropicStream._message_stop,
}
