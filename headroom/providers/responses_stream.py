"""OpenAI Responses streams with ``headroom_retrieve`` served inside the proxy.

Events of our ``function_call`` items are held back; when the response completes with our
calls alone, ``response.completed`` is held and the stream continues with the follow-up
response. Later rounds drop their ``response.created``/``in_progress``, and their
``output_index`` continues the client's numbering. ``sequence_number`` counts the events
the client receives, so the stream it sees has no gaps where events were held back (ours,
or a follow-up's opening events); the final ``response.completed`` lists every item the
client saw across rounds, with usage summed. Events the client sees unchanged (every one of
the first round until something is held back) keep their exact bytes.
"""

from __future__ import annotations

from typing import Any

import orjson

from headroom.providers.base import is_retrieve_tool
from headroom.providers.retrieval import RetrieveCall, _call, summed_usage
from headroom.providers.sse import Event, event_object, format_event

_DONE_TYPES = ("response.completed", "response.incomplete")
_USAGE_KEYS = ("input_tokens", "output_tokens", "total_tokens")


class ResponsesStream:
    def __init__(self) -> None:
        self._round = 0
        self._next_seq = 0  # the client's next sequence number
        self._index: dict[int, int | None] = {}  # upstream output_index → client's (None: ours)
        self._next_client_index = 0
        self._visible: list[Any] = []  # items the client saw, all rounds
        self._round_output: list[Any] = []
        self._held_usage: dict[str, int] = {}
        self._held_done: dict[str, Any] | None = None
        self._response_id: Any = None  # the client's response keeps one identity
        self.calls: list[RetrieveCall] = []
        self.other_tool_calls = 0
        self.wants_follow_up = False

    def start_round(self) -> None:
        self._round += 1
        self._index.clear()
        self._round_output = []
        self.calls = []
        self.other_tool_calls = 0
        self.wants_follow_up = False

    def feed(self, event: Event) -> bytes:
        payload = event_object(event)
        if payload is None:
            return event.raw
        kind = str(payload.get("type", event.name))
        if kind in ("response.created", "response.in_progress"):
            if self._round:
                return b""
            if isinstance(payload.get("response"), dict) and self._response_id is None:
                self._response_id = payload["response"].get("id")
        if kind in _DONE_TYPES:
            return self._done(event, payload)
        changed = self._track_item(kind, payload)
        index = payload.get("output_index")
        if isinstance(index, int) and index in self._index:
            client_index = self._index[index]
            if client_index is None:
                return b""
            if client_index != index:
                payload["output_index"] = client_index
                changed = True
        return self._emit(event, payload, changed)

    def _track_item(self, kind: str, payload: dict[str, Any]) -> bool:
        index = payload.get("output_index")
        item = payload.get("item")
        if not isinstance(index, int) or not isinstance(item, dict):
            return False
        if kind == "response.output_item.added" and index not in self._index:
            ours = item.get("type") == "function_call" and is_retrieve_tool(
                str(item.get("name", ""))
            )
            self._index[index] = None if ours else self._next_client_index
            if not ours:
                self._next_client_index += 1
                self.other_tool_calls += item.get("type") == "function_call"
        elif kind == "response.output_item.done":
            if self._index.get(index, 0) is None:
                self.calls.append(_call(item.get("call_id"), item.get("arguments", "")))
            else:
                client_item = dict(item)
                self._visible.append(client_item)
        return False

    def _done(self, event: Event, payload: dict[str, Any]) -> bytes:
        response = payload.get("response")
        if not isinstance(response, dict):
            return event.raw
        output = response.get("output")
        self._round_output = list(output) if isinstance(output, list) else []
        usage = response.get("usage")
        if self.calls and not self.other_tool_calls and payload.get("type") == _DONE_TYPES[0]:
            self.wants_follow_up = True
            self._held_done = payload
            if isinstance(usage, dict):
                for key in _USAGE_KEYS:
                    if isinstance(usage.get(key), int):
                        self._held_usage[key] = self._held_usage.get(key, 0) + usage[key]
            return b""
        if self._round == 0 and not self.calls:
            return self._emit(event, payload, False)
        return self._emit(event, self._final(payload), True)

    def _final(self, payload: dict[str, Any]) -> dict[str, Any]:
        response = dict(payload.get("response") or {})
        response["output"] = list(self._visible)
        if self._response_id is not None:
            response["id"] = self._response_id
        usage = response.get("usage")
        if isinstance(usage, dict) and self._held_usage:
            response["usage"] = summed_usage(usage, self._held_usage)
        return {**payload, "response": response}

    def _emit(self, event: Event, payload: dict[str, Any], changed: bool) -> bytes:
        seq = payload.get("sequence_number")
        if isinstance(seq, int):
            client_seq = self._next_seq
            self._next_seq += 1
            if client_seq != seq:
                payload["sequence_number"] = client_seq
                changed = True
        if not changed:
            return event.raw
        return format_event(event.name, orjson.dumps(payload).decode())

    def follow_up_response(self) -> dict[str, Any]:
        return {"output": self._round_output}

    def close_events(self, message: str | None) -> bytes:
        seq = self._next_seq
        if message is not None or self._held_done is None:
            error = {
                "type": "error",
                "code": "api_error",
                "message": message or "headroom_retrieve follow-up failed",
                "sequence_number": seq,
            }
            return format_event("error", orjson.dumps(error).decode())
        done = self._final(self._held_done)
        done["sequence_number"] = seq
        return format_event("response.completed", orjson.dumps(done).decode())
