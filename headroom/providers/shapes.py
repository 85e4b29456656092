"""Where each API keeps a conversation's tool calls and results: one class per API.

The retrieval loop and the restore of served rounds are written once over these shapes
(finding the model's calls, appending the follow-up turn, removing our calls from an
answer, telling the model's turns from the others in a later request); an API is added by
writing its shape, not by a branch in each of those places.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from headroom.providers.base import (
    Call,
    Json,
    Results,
    first_member,
    is_retrieve_tool,
    text_of,
)


def dumps(items: list[Any]) -> str:
    return ",".join(orjson.dumps(i).decode() for i in items)


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

    results_field: str | None = "content"  # results are the next user turn's first blocks

    def answer_elements(self, response: Json) -> list[Json]:
        return [{"role": "assistant", "content": response.get("content") or []}]

    def is_answer(self, item: Json) -> bool:
        return item.get("role") == "assistant"

    def follow_up(self, response: Json, results: Results) -> list[Json]:
        blocks = _tool_results(results)
        return [*self.answer_elements(response), {"role": "user", "content": blocks}]

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


def chat_message(response: Json) -> Json:
    """The first choice's message of a Chat Completions answer ({} when there is none)."""
    return first_member(response, "choices", "message")


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

    results_field: str | None = None  # tool messages follow the assistant message

    def answer_elements(self, response: Json) -> list[Json]:
        message = dict(chat_message(response))
        message.setdefault("role", "assistant")
        return [message]

    def is_answer(self, item: Json) -> bool:
        return item.get("role") == "assistant"

    def follow_up(self, response: Json, results: Results) -> list[Json]:
        return [*self.answer_elements(response), *_tool_messages(results)]

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

    results_field: str | None = None  # function_call_output items follow the calls

    def answer_elements(self, response: Json) -> list[Json]:
        return [item for item in response.get("output") or [] if isinstance(item, dict)]

    def is_answer(self, item: Json) -> bool:
        """Output items the model wrote (messages of its own, reasoning, calls), not the
        inputs between them (user or system messages, tool outputs)."""
        role = item.get("role")
        if role is not None:
            return bool(role == "assistant")
        kind = str(item.get("type", ""))
        return not kind.endswith("_output") and kind != "item_reference"

    def follow_up(self, response: Json, results: Results) -> list[Json]:
        return [*self.answer_elements(response), *_call_outputs(results)]

    def strip_calls(self, response: Json) -> Json:
        out = dict(response)
        out["output"] = [i for i in self.call_items(response) if not ours(self, i)]
        return out

    def merge_rounds(self, earlier: list[Json], final: Json) -> Json:
        shown = [i for r in earlier for i in r.get("output") or []]
        return {**final, "output": [*shown, *(final.get("output") or [])]}
