"""The Gemini API (``generateContent``, ``streamGenerateContent``, ``countTokens``): where it
keeps tool outputs and calls, and its spelling of the retrieval tool.

A conversation is ``contents``: turns with a ``role`` ("user" or "model") and ``parts``. The
model's calls are ``functionCall`` parts (``name``, ``args``, sometimes an ``id``); their
results come back as ``functionResponse`` parts of the next user turn, whose ``response``
is a JSON object (``{"output": "..."}`` from Gemini CLI, any object from SDK users): each
string leaf of it is a tool output. A result finds its call by ``id`` when both have one,
otherwise by name, in order (the API's own rule: a user turn answers the calls of the
model turn before it). The JSON names are accepted in both spellings the API takes
(``functionResponse`` and ``function_response``).

Never returned: ``systemInstruction``, user-typed text, model text and thoughts, tool
declarations, and outputs of ``headroom_retrieve`` itself.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from headroom.jsondoc import Path
from headroom.providers.apis import call_outputs, entries
from headroom.providers.base import (
    RETRIEVE_DESCRIPTION,
    RETRIEVE_SCHEMA,
    RETRIEVE_TOOL,
    Call,
    Json,
    Provider,
    Results,
    ToolOutput,
    first_member,
)
from headroom.providers.shapes import ours

# A response object is walked this deep for string leaves; deeper values stay as they are.
MAX_LEAF_DEPTH = 8
_Pending = tuple[str, Any, str, str]  # name, args, what the model said, the user turn before


def spelling(obj: Json, camel: str, snake: str) -> str:
    """Which of a member's two accepted spellings the object uses (camel when it has it)."""
    return snake if obj.get(camel) is None else camel


def field(obj: Json, camel: str, snake: str) -> Any:
    """A member under either of its two accepted spellings."""
    return obj.get(spelling(obj, camel, snake))


def function_call(part: Any) -> Json | None:
    call = field(part, "functionCall", "function_call") if isinstance(part, dict) else None
    return call if isinstance(call, dict) else None


def call_key(part: Json) -> str:
    """A call's identity across requests: its ``id``, or (the API often gives none) a digest
    of its name and arguments, which the client sends back unchanged with the turn."""
    call = function_call(part) or {}
    given = call.get("id")
    if isinstance(given, str) and given:
        return given
    args = orjson.dumps(call.get("args"), option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(str(call.get("name", "")).encode() + b"\0" + args).hexdigest()
    return "fc-" + digest[:24]


def _texts(parts: Any) -> str:
    """The plain text parts of a turn (thoughts left out), joined."""
    if not isinstance(parts, list):
        return ""
    return "\n".join(
        p["text"]
        for p in parts
        if isinstance(p, dict) and isinstance(p.get("text"), str) and not p.get("thought")
    )


def _leaves(base: Path, value: Any, depth: int = 0) -> list[tuple[Path, str]]:
    """(path, text) of the string leaves of a function response, in document order."""
    if isinstance(value, str):
        return [(base, value)]
    if depth >= MAX_LEAF_DEPTH or not isinstance(value, dict | list):
        return []
    out: list[tuple[Path, str]] = []
    for key, child in value.items() if isinstance(value, dict) else enumerate(value):
        out.extend(_leaves((*base, key), child, depth + 1))
    return out


def _history(payload: Json) -> tuple[Path, Json]:
    """Where the turns are: ``contents``, or a token count's ``generateContentRequest``."""
    key = spelling(payload, "generateContentRequest", "generate_content_request")
    inner = payload.get(key)
    if isinstance(inner, dict) and "contents" not in payload:
        return (key,), inner
    return (), payload


def gemini_outputs(payload: Json) -> list[ToolOutput]:
    base, request = _history(payload)
    by_id: dict[str, _Pending] = {}
    by_name: dict[str, list[_Pending]] = {}
    user_turn = ""
    found: list[ToolOutput] = []
    for i, turn in entries(request, "contents"):
        parts = turn.get("parts")
        if not isinstance(parts, list):
            continue
        if turn.get("role") == "model":
            said = _texts(parts)
            for part in parts:
                call = function_call(part)
                if call is not None:
                    pending = (str(call.get("name", "")), call.get("args"), said, user_turn)
                    by_id[call_key(part)] = pending
                    by_name.setdefault(pending[0], []).append(pending)
            continue
        typed = _texts(parts)
        for j, part in enumerate(parts):
            if not isinstance(part, dict):
                continue
            spelled = spelling(part, "functionResponse", "function_response")
            answer = part.get(spelled)
            if not isinstance(answer, dict):
                continue
            where = (*base, "contents", i, "parts", j, spelled, "response")
            pieces = _leaves(where, answer.get("response"))
            caller = _caller(by_id, by_name, answer, user_turn)
            found.extend(call_outputs(pieces, caller, user_turn, typed))
        if typed:
            user_turn = typed
    return found


def _caller(
    by_id: dict[str, _Pending], by_name: dict[str, list[_Pending]], answer: Json, turn: str
) -> _Pending:
    """The call a function response answers; when it is not in view, the response's own
    name and the user turn before it."""
    name = str(answer.get("name", ""))
    given = answer.get("id")
    if isinstance(given, str) and given in by_id:
        pending = by_id[given]
        named = by_name.get(pending[0], [])
        if pending in named:
            named.remove(pending)
        return pending
    queue = by_name.get(name)
    return queue.pop(0) if queue else (name, None, "", turn)


def tool_names(tool: Json) -> tuple[str, ...]:
    declarations = field(tool, "functionDeclarations", "function_declarations")
    if not isinstance(declarations, list):
        return ()
    return tuple(str(d.get("name", "")) for d in declarations if isinstance(d, dict))


def count_tools(payload: Json) -> Path | None:
    """A token count declares tools only inside its ``generateContentRequest``."""
    base, _ = _history(payload)
    return (*base, "tools") if base else None


def candidate_content(response: Json) -> Json:
    return first_member(response, "candidates", "content")


def with_parts(response: Json, parts: list[Any]) -> Json:
    """The answer with its first candidate's parts replaced."""
    candidates = list(response.get("candidates") or [{}])
    first = dict(candidates[0]) if isinstance(candidates[0], dict) else {}
    first["content"] = {"role": "model", **candidate_content(response), "parts": parts}
    candidates[0] = first
    return {**response, "candidates": candidates}


class GeminiShape:
    history_key = "contents"
    usage_key = "usageMetadata"
    output_hints: tuple[bytes, ...] = (b'"functionResponse"', b'"function_response"')

    def tool_calls(self, response: Json) -> list[Call]:
        out: list[Call] = []
        for part in self.call_items(response):
            call = function_call(part)
            if call is not None:
                out.append((str(call.get("name", "")), call_key(part), call.get("args")))
        return out

    def call_items(self, response: Json) -> list[Any]:
        return list(candidate_content(response).get("parts") or [])

    def call_name(self, item: Json) -> str:
        call = function_call(item)
        return str(call.get("name", "")) if call is not None else ""

    def answer_text(self, response: Json) -> str:
        return _texts(candidate_content(response).get("parts"))

    results_field: str | None = "parts"  # function responses open the next user turn

    def answer_elements(self, response: Json) -> list[Json]:
        return [{"role": "model", **candidate_content(response)}]

    def is_answer(self, item: Json) -> bool:
        return item.get("role") == "model"

    def follow_up(self, response: Json, results: Results) -> list[Json]:
        """The model's turn as it came, then one function response per call of ours, in the
        order of the calls (their names and ids copied)."""
        turn = self.answer_elements(response)[0]
        calls = [function_call(p) or {} for p in self.call_items(response) if ours(self, p)]
        answers = [_function_response(c, text) for c, (_, text) in zip(calls, results, strict=True)]
        return [turn, {"role": "user", "parts": answers}]

    def strip_calls(self, response: Json) -> Json:
        return with_parts(response, [p for p in self.call_items(response) if not ours(self, p)])

    def merge_rounds(self, earlier: list[Json], final: Json) -> Json:
        shown = [p for r in earlier for p in self.call_items(r)]
        return with_parts(final, [*shown, *self.call_items(final)])


def _function_response(call: Json, text: str) -> Json:
    answer: Json = {"name": call.get("name", RETRIEVE_TOOL), "response": {"output": text}}
    if isinstance(call.get("id"), str):
        answer["id"] = call["id"]
    return {"functionResponse": answer}


_RETRIEVE_JSON = orjson.dumps(
    {
        "functionDeclarations": [
            {
                "name": RETRIEVE_TOOL,
                "description": RETRIEVE_DESCRIPTION,
                "parameters": RETRIEVE_SCHEMA,
            }
        ]
    }
).decode()
_SHAPE = GeminiShape()
# A streamed answer has no closing event: its last chunk is the one with a finish reason.
# A JSON string cannot hold an unescaped quote, so no text can fake the key.
_STREAM_ENDS = (b'"finishReason"', b'"finish_reason"')

GEMINI = Provider("gemini", gemini_outputs, _RETRIEVE_JSON, tool_names, _SHAPE)
GEMINI_STREAM = Provider(
    "gemini_stream",
    gemini_outputs,
    _RETRIEVE_JSON,
    tool_names,
    _SHAPE,
    _STREAM_ENDS,
    streams=lambda _: True,
    sse_by_query=True,
)
GEMINI_COUNT = Provider(
    "gemini_count", gemini_outputs, _RETRIEVE_JSON, tool_names, _SHAPE, tools_path=count_tools
)
