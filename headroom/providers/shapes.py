"""Where each API keeps a conversation's tool calls and results: one class per API.

The retrieval loop and the mixed-turn restore are written once over these shapes (finding
the model's calls, appending the follow-up turn, removing our calls from an answer, and
putting them back into a later request); an API is added by writing its shape, not by a
branch in each of those places.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from headroom.providers.base import Call, Json, Plan, Results, is_retrieve_tool, text_of


def dumps(items: list[Any]) -> str:
    return ",".join(orjson.dumps(i).decode() for i in items)


def in_place(
    path: tuple[str | int, ...], current: Any, calls: list[Json], positions: tuple[int, ...]
) -> Plan:
    """Steps that put ``calls`` back at their original indices in the array at ``path``
    (which now holds the turn without them); without positions, at the end."""
    size = len(current) if isinstance(current, list) else 0
    if len(positions) != len(calls):
        return [(path, "append", dumps(calls))]
    steps: Plan = []
    for before, (position, call) in enumerate(
        sorted(zip(positions, calls, strict=True), key=lambda pc: pc[0])
    ):
        slot = position - before  # index in the stripped array it must precede
        if slot < size:
            steps.append(((*path, slot), "before", dumps([call])))
        else:
            steps.append((path, "append", dumps([call])))
    return steps


def restore_in_turns(
    where: tuple[str, str],
    items: list[Any],
    i: int,
    calls: list[Json],
    answers: list[Json],
    positions: tuple[int, ...],
) -> Plan:
    """Steps for APIs whose calls are parts of the model's turn and whose results are parts
    of the next user turn (``where``: the history key and the parts key): the calls back at
    their places in turn ``i``, their results first in the turn after it (a new user turn
    when there is none)."""
    key, field = where
    steps = in_place((key, i, field), items[i].get(field), calls, positions)
    nxt = items[i + 1] if i + 1 < len(items) else None
    if isinstance(nxt, dict) and isinstance(nxt.get(field), list) and nxt[field]:
        steps.append(((key, i + 1, field, 0), "before", dumps(answers)))
    else:
        steps.append(((key, i), "after", dumps([{"role": "user", field: answers}])))
    return steps


class _Named(Protocol):
    def call_name(self, item: Json) -> str: ...


def ours(shape: _Named, item: Any) -> bool:
    """Whether an answer's element is a call of our retrieval tool."""
    return isinstance(item, dict) and is_retrieve_tool(shape.call_name(item))


def _tool_results(results: Results) -> list[Json]:
    """Anthropic: the ``tool_result`` blocks of a user turn."""
    return [{"type": "tool_result", "tool_use_id": c, "content": t} for c, t in results]


def _tool_messages(results: Results) -> list[Json]:
    """Chat Completions: one ``tool`` message per result."""
    return [{"role": "tool", "tool_call_id": c, "content": t} for c, t in results]


def _call_outputs(results: Results) -> list[Json]:
    """Responses: one ``function_call_output`` item per result."""
    return [{"type": "function_call_output", "call_id": c, "output": t} for c, t in results]


class AnthropicShape:
    history_key = "messages"
    usage_key = "usage"
    output_hints: tuple[bytes, ...] = (b'"tool_result"',)

    def tool_calls(self, response: Json) -> list[Call]:
        return [
            (str(b.get("name", "")), b.get("id"), b.get("input"))
            for b in response.get("content") or []
            if isinstance(b, dict) and b.get("type") == "tool_use"
        ]

    def call_items(self, response: Json) -> list[Any]:
        return list(response.get("content") or [])

    def call_name(self, item: Json) -> str:
        return str(item.get("name", "")) if item.get("type") == "tool_use" else ""

    def answer_text(self, response: Json) -> str:
        return text_of(response.get("content"))

    def follow_up(self, response: Json, results: Results) -> list[Json]:
        blocks = _tool_results(results)
        return [
            {"role": "assistant", "content": response.get("content") or []},
            {"role": "user", "content": blocks},
        ]

    def strip_calls(self, response: Json) -> Json:
        out = dict(response)
        content = [b for b in self.call_items(response) if not ours(self, b)]
        out["content"] = content
        if out.get("stop_reason") == "tool_use" and not any(
            isinstance(b, dict) and b.get("type") == "tool_use" for b in content
        ):
            out["stop_reason"] = "end_turn"
        return out

    def merge_rounds(self, earlier: list[Json], final: Json) -> Json:
        shown = [b for r in earlier for b in r.get("content") or []]
        return {**final, "content": [*shown, *(final.get("content") or [])]}

    def ids_in(self, item: Json) -> list[str]:
        if item.get("role") != "assistant":
            return []
        return [
            str(b.get("id"))
            for b in item.get("content") or []
            if isinstance(b, dict) and b.get("type") == "tool_use"
        ]

    def restore(
        self,
        items: list[Any],
        i: int,
        calls: list[Json],
        results: Results,
        positions: tuple[int, ...],
    ) -> Plan:
        return restore_in_turns(
            (self.history_key, "content"), items, i, calls, _tool_results(results), positions
        )


def chat_message(response: Json) -> Json:
    """The first choice's message of a Chat Completions answer ({} when there is none)."""
    choices = response.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = choices[0].get("message")
        if isinstance(message, dict):
            return message
    return {}


class ChatShape:
    history_key = "messages"
    usage_key = "usage"
    output_hints: tuple[bytes, ...] = (b'"tool"',)  # the role of a tool message

    def tool_calls(self, response: Json) -> list[Call]:
        out: list[Call] = []
        for call in chat_message(response).get("tool_calls") or []:
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                out.append((str(fn.get("name", "")), call.get("id"), fn.get("arguments")))
        return out

    def call_items(self, response: Json) -> list[Any]:
        return list(chat_message(response).get("tool_calls") or [])

    def call_name(self, item: Json) -> str:
        fn = item.get("function")
        return str(fn.get("name", "")) if isinstance(fn, dict) else ""

    def answer_text(self, response: Json) -> str:
        """A whole answer, or a streamed round's message (what the stream filter rebuilds)."""
        message = chat_message(response) if "choices" in response else response
        return text_of(message.get("content"))

    def follow_up(self, response: Json, results: Results) -> list[Json]:
        message = dict(chat_message(response))
        message.setdefault("role", "assistant")
        tools = _tool_messages(results)
        return [message, *tools]

    def strip_calls(self, response: Json) -> Json:
        out = dict(response)
        choices = [dict(c) if isinstance(c, dict) else c for c in response.get("choices") or []]
        if not choices or not isinstance(choices[0], dict):
            return out
        message = dict(chat_message(response))
        kept = [c for c in self.call_items(response) if not ours(self, c)]
        if kept:
            message["tool_calls"] = kept
        else:
            message.pop("tool_calls", None)
            if choices[0].get("finish_reason") == "tool_calls":
                choices[0]["finish_reason"] = "stop"
        choices[0]["message"] = message
        out["choices"] = choices
        return out

    def merge_rounds(self, earlier: list[Json], final: Json) -> Json:
        """Text content is concatenated, as a streaming client joins the rounds' deltas."""
        texts = [chat_message(r).get("content") for r in earlier]
        shown = "".join(t for t in texts if isinstance(t, str))
        message = chat_message(final)
        own = message.get("content")
        if not shown or not message or not isinstance(own, str | None):
            return final
        choices = list(final.get("choices") or [])
        choices[0] = {**choices[0], "message": {**message, "content": shown + (own or "")}}
        return {**final, "choices": choices}

    def ids_in(self, item: Json) -> list[str]:
        if item.get("role") != "assistant":
            return []
        return [str(c.get("id")) for c in item.get("tool_calls") or [] if isinstance(c, dict)]

    def restore(
        self,
        items: list[Any],
        i: int,
        calls: list[Json],
        results: Results,
        positions: tuple[int, ...],
    ) -> Plan:
        key = self.history_key
        tools = _tool_messages(results)
        steps = in_place((key, i, "tool_calls"), items[i].get("tool_calls"), calls, positions)
        return [*steps, ((key, i), "after", dumps(tools))]


class ResponsesShape:
    history_key = "input"
    usage_key = "usage"
    output_hints: tuple[bytes, ...] = (b'_call_output"',)  # function_call_output, ...

    def tool_calls(self, response: Json) -> list[Call]:
        return [
            (str(item.get("name", "")), item.get("call_id"), item.get("arguments"))
            for item in response.get("output") or []
            if isinstance(item, dict) and item.get("type") == "function_call"
        ]

    def call_items(self, response: Json) -> list[Any]:
        return list(response.get("output") or [])

    def call_name(self, item: Json) -> str:
        return str(item.get("name", "")) if item.get("type") == "function_call" else ""

    def answer_text(self, response: Json) -> str:
        return "\n".join(
            text_of(item.get("content"), ("output_text",))
            for item in response.get("output") or []
            if isinstance(item, dict) and item.get("type") == "message"
        )

    def follow_up(self, response: Json, results: Results) -> list[Json]:
        outputs = [item for item in response.get("output") or [] if isinstance(item, dict)]
        answers = _call_outputs(results)
        return [*outputs, *answers]

    def strip_calls(self, response: Json) -> Json:
        out = dict(response)
        out["output"] = [i for i in self.call_items(response) if not ours(self, i)]
        return out

    def merge_rounds(self, earlier: list[Json], final: Json) -> Json:
        shown = [i for r in earlier for i in r.get("output") or []]
        return {**final, "output": [*shown, *(final.get("output") or [])]}

    def ids_in(self, item: Json) -> list[str]:
        return [str(item.get("call_id"))] if item.get("type") == "function_call" else []

    def restore(
        self,
        items: list[Any],
        i: int,
        calls: list[Json],
        results: Results,
        positions: tuple[int, ...],
    ) -> Plan:
        answers = _call_outputs(results)
        return [((self.history_key, i), "after", dumps(calls + answers))]
