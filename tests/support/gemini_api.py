"""The Gemini API (generativelanguage ``v1beta`` and ``v1``) for the scripted LLM upstream.

``LLMUpstream`` hands every Gemini path here: ``models/{model}:generateContent`` (JSON),
``:streamGenerateContent`` (SSE with ``alt=sse``, else one JSON array sent piece by piece)
and ``:countTokens``. The scripted turns are the ones the other APIs answer with, so one
test can script Gemini like Anthropic. What differs is answered as Google does, because
that is what a proxy gets wrong: the model is in the path, not the body; ``stream`` is the
method, not a field; a call has no id unless the model gave one; a stream has no end
marker, only ``finishReason`` on its last chunk; errors carry a gRPC ``status`` name; and
a history whose function responses do not match the calls before them is refused 400, as
is a request without a key (403).
"""

from __future__ import annotations

import asyncio
import re
import zlib
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import zstandard

from tests.support.llm_upstream import (
    GATE_TIMEOUT,
    Answer,
    LLMUpstream,
    Text,
    Thinking,
    ToolCall,
    Turn,
    _decoded,
    _hold,
    _pieces,
    _tokens,
    output_tokens,
)
from tests.support.upstream import Exchange, Recorded, _Gone

_PATH = re.compile(r"/(v1beta|v1)/models/([^/:]+):([A-Za-z]+)$")
_METHODS = frozenset(("generateContent", "streamGenerateContent", "countTokens"))
# Gemini's methods under /v1/: there the path alone tells Gemini from OpenAI.
_V1_METHODS = _METHODS | {"embedContent", "batchEmbedContents", "batchGenerateContent"}
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
_COUNT = (
    "Please ensure that the number of function response parts is equal to the number of "
    "function call parts of the function call turn."
)
_ORPHAN = "Please ensure that function response turn comes immediately after a function call turn."
_CALL_PLACE = (
    "Please ensure that function call turn comes immediately after a user turn or after a "
    "function response turn."
)
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
# A Part is a oneof: exactly one of these holds its data (thought and thoughtSignature ride
# along with one of them).
_DATA = (
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
)


def handles(path: str) -> bool:
    """Whether ``path`` is Gemini's: anything under ``/v1beta/``, and ``/v1/models/M:method``
    for Gemini's methods (an OpenAI fine-tuned model id has colons too, never a method)."""
    if "/v1beta/" in path:
        return True
    match = _PATH.search(path)
    return match is not None and match.group(1) == "v1" and match.group(3) in _V1_METHODS


def api_key(rec: Recorded) -> str | None:
    """The key a request carried, the ``x-goog-api-key`` header first, then ``?key=``."""
    header = rec.header("x-goog-api-key")
    if header:
        return header
    values = parse_qs(urlsplit(rec.target).query).get("key")
    return values[-1] if values and values[-1] else None


def error(status: int, message: str) -> dict[str, Any]:
    """Google's error body: the HTTP code again, the message, the gRPC status name."""
    return {"error": {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}}


# -------------------------------------------------------------------- validation


def _field(obj: dict[str, Any], name: str) -> Any:
    """``obj[name]`` under its JSON name or its proto (snake_case) name: the API takes both."""
    if name in obj:
        return obj[name]
    return obj.get(re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower())


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _tools_problem(tools: Any) -> str | None:
    """Names must be valid and unique across every Tool's declarations (the proxy adds its
    retrieval tool as a Tool of its own, where a clash with the client's would hide)."""
    if tools is not None and not isinstance(tools, list):
        return "Invalid JSON payload received. Proto field is not repeating, cannot start list."
    seen: set[str] = set()
    for t, tool in enumerate(_dicts(tools)):
        for d, decl in enumerate(_dicts(_field(tool, "functionDeclarations"))):
            name = decl.get("name")
            if not isinstance(name, str) or not _NAME_RE.match(name):
                return (
                    f"* GenerateContentRequest.tools[{t}].function_declarations[{d}].name: "
                    "Invalid function name. Must start with a letter or an underscore. Must be "
                    "alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:), or dashes "
                    "(-), with a maximum length of 64.\n"
                )
            if name in seen:
                return f"Duplicate function declaration found: {name}"
            seen.add(name)
    return None


def _part_problem(part: Any, where: str) -> str | None:
    if not isinstance(part, dict) or not any(_field(part, k) is not None for k in _DATA):
        return (
            f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have "
            "one initialized field\n"
        )
    for name, kind, body in (
        ("functionCall", "function_call", "args"),
        ("functionResponse", "function_response", "response"),
    ):
        value = _field(part, name)
        if value is None:
            continue
        if not isinstance(value, dict) or not value.get("name"):
            return f"* GenerateContentRequest.{where}.{kind}.name: Name cannot be empty.\n"
        if body in value and not isinstance(value[body], dict):
            return (
                f"Invalid value at '{where}.{kind}.{body}' (type.googleapis.com/"
                "google.protobuf.Struct)"
            )
    return None


def validate(payload: dict[str, Any]) -> str | None:
    """What the real API refuses (400) in a GenerateContentRequest, or None."""
    problem = _tools_problem(payload.get("tools"))
    if problem:
        return problem
    contents = payload.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified\n"
    pending, prev_role = 0, ""  # function calls of the turn before, awaiting responses
    for i, content in enumerate(contents):
        if not isinstance(content, dict):
            return f"Invalid value at 'contents[{i}]' (type.googleapis.com/google.ai.Content)"
        role = content.get("role") or "user"
        if role not in ("user", "model"):
            return "Please use a valid role: user, model."
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            where = f"GenerateContentRequest.contents[{i}].parts"
            return f"* {where}: contents.parts must not be empty.\n"
        for j, part in enumerate(parts):
            problem = _part_problem(part, f"contents[{i}].parts[{j}]")
            if problem:
                return problem
        calls = sum(_field(p, "functionCall") is not None for p in parts)
        responses = sum(_field(p, "functionResponse") is not None for p in parts)
        if responses and not pending:
            return _ORPHAN
        if pending and responses != pending:
            return _COUNT
        if calls and prev_role != "user":
            return _CALL_PLACE
        pending, prev_role = (calls if role == "model" else 0), role
    return None


def _count_request(payload: dict[str, Any]) -> dict[str, Any]:
    """The GenerateContentRequest a countTokens body counts: its own, or bare ``contents``."""
    inner = _field(payload, "generateContentRequest")
    return inner if isinstance(inner, dict) else {"contents": payload.get("contents")}


# -------------------------------------------------------------------- answers


def _call_part(call: ToolCall) -> dict[str, Any]:
    body: dict[str, Any] = {"name": call.name, "args": call.arguments}
    if call.id:  # the Gemini API gives ids only sometimes; a proxy must not rely on one
        body = {"id": call.id, **body}
    return {"functionCall": body}


def _groups(turn: Turn, thoughts: bool, stream: bool) -> list[list[dict[str, Any]]]:
    """The turn's parts as the chunks a stream sends them in (flattened for JSON): text in a
    few pieces, consecutive calls whole in one chunk, thoughts only when asked for. A
    Thinking block's signature (base64, as Gemini's) becomes the ``thoughtSignature`` of the
    first call after it, or else of the answer's end: the last part of a JSON answer, an
    empty text part in a stream's last chunk. A proxy must hand it back with its call."""
    groups: list[list[dict[str, Any]]] = []
    signature = ""
    calling = False  # the last group holds calls: a next call joins it
    for block in turn.blocks:
        if isinstance(block, Thinking):
            signature = block.signature
            if thoughts:
                pieces = _pieces(block.thinking) if stream else [block.thinking]
                groups += [[{"text": p, "thought": True}] for p in pieces]
            calling = False
        elif isinstance(block, Text):
            groups += [[{"text": p}] for p in (_pieces(block.text) if stream else [block.text])]
            calling = False
        else:
            part = _call_part(block)
            if signature:
                part["thoughtSignature"], signature = signature, ""
            if calling:
                groups[-1].append(part)
            else:
                groups.append([part])
            calling = True
    if signature and groups and not stream:
        groups[-1][-1]["thoughtSignature"] = signature
    elif signature:
        groups.append([{"text": "", "thoughtSignature": signature}])
    return groups or [[{"text": ""}]]


def usage(prompt: int, turn: Turn | None, cached: int = 0) -> dict[str, Any]:
    """``usageMetadata``: with ``turn`` the full counts (a JSON answer, a stream's last
    chunk); without, what earlier stream chunks carry (the prompt count only). Cache reads
    are counted inside the prompt, as Gemini does."""
    out = output_tokens(turn) if turn is not None else 0
    meta: dict[str, Any] = {"promptTokenCount": prompt}
    if cached:
        meta["cachedContentTokenCount"] = cached
    if turn is not None:
        meta["candidatesTokenCount"] = out
    meta["totalTokenCount"] = prompt + out
    meta["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    return meta


def _chunk(
    parts: list[dict[str, Any]], meta: dict[str, Any], model: str, rid: str, last: bool
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
    if last:
        candidate["finishReason"] = "STOP"  # function calls end with STOP too
    candidate["index"] = 0
    return {
        "candidates": [candidate],
        "usageMetadata": meta,
        "modelVersion": model,
        "responseId": rid,
    }


async def _reply(server: LLMUpstream, x: Exchange, status: int, value: Any) -> None:
    """A JSON answer without a scripted turn (errors, countTokens), recorded as one."""
    answer = Answer(x.rec, None, status, False)
    server._answered(answer)
    await _json(x, status, value, answer)


async def _json(x: Exchange, status: int, value: Any, answer: Answer) -> None:
    data = orjson.dumps(value)
    answer.sent += data
    await x.respond(status, data, [("Content-Type", "application/json; charset=UTF-8")])


async def _stream(x: Exchange, turn: Turn, chunks: list[dict[str, Any]], answer: Answer) -> None:
    """``alt=sse``: ``data:`` events ended by CRLF CRLF, nothing after the last. Otherwise one
    JSON array whose elements arrive as they are made. Each waits on the gate after the first
    chunk, lingers after the last."""
    sse = x.query.get("alt") == "sse"
    ctype = "text/event-stream" if sse else "application/json; charset=UTF-8"
    await x.start(200, [("Content-Type", ctype)])
    for i, chunk in enumerate(chunks):
        data = orjson.dumps(chunk)
        frame = b"data: " + data + b"\r\n\r\n" if sse else (b"[" if i == 0 else b"\r\n,") + data
        answer.sent += frame
        await x.send(frame)
        if i == 0:
            await _hold(turn)
    if not sse:
        answer.sent += b"]"
        await x.send(b"]")
    if turn.linger:
        await asyncio.sleep(min(turn.linger, GATE_TIMEOUT))
    await x.end()


async def route(server: LLMUpstream, x: Exchange) -> None:
    """Answer one Gemini request: the key, the body, validation, then the scripted turn."""
    raw = await x.body()
    match = _PATH.search(x.rec.path)
    if x.rec.method != "POST" or match is None or match.group(3) not in _METHODS:
        await _reply(server, x, 404, error(404, f"Method not found: {x.rec.path}"))
        return
    if api_key(x.rec) is None:
        await _reply(server, x, 403, error(403, _NO_KEY))
        return
    try:
        body = _decoded(raw, x.rec.header("content-encoding"))
        payload = orjson.loads(body)
    except (orjson.JSONDecodeError, OSError, ValueError, zlib.error, zstandard.ZstdError) as exc:
        await _reply(server, x, 400, error(400, f"Invalid JSON payload received. {exc}"))
        return
    if not isinstance(payload, dict):
        await _reply(server, x, 400, error(400, "Invalid JSON payload received. Not an object."))
        return
    model, method = match.group(2), match.group(3)
    request = _count_request(payload) if method == "countTokens" else payload
    problem = validate(request) if server.validate else None
    if problem is not None:
        await _reply(server, x, 400, error(400, problem))
        return
    prompt = _tokens(body)
    if method == "countTokens":
        details = [{"modality": "TEXT", "tokenCount": prompt}]
        await _reply(server, x, 200, {"totalTokens": prompt, "promptTokensDetails": details})
        return
    cached = 0
    if server.prefix_cache is not None:
        prompt, cached = server.prefix_cache.read("gemini", payload)
    turn = server._next_turn(body)
    stream = method == "streamGenerateContent"
    answer = Answer(x.rec, turn, turn.status, stream)
    server._answered(answer)
    if turn.status != 200:
        await _json(x, turn.status, error(turn.status, turn.error), answer)
        return
    config = _field(payload, "generationConfig")
    thinking = _field(config, "thinkingConfig") if isinstance(config, dict) else None
    thoughts = isinstance(thinking, dict) and _field(thinking, "includeThoughts") is True
    rid = f"gemini{next(server._ids):06d}"
    groups = _groups(turn, thoughts, stream)
    if not stream:
        parts = [p for g in groups for p in g]
        await _json(x, 200, _chunk(parts, usage(prompt, turn, cached), model, rid, True), answer)
        return
    last = len(groups) - 1
    chunks = [
        _chunk(g, usage(prompt, turn if i == last else None, cached), model, rid, i == last)
        for i, g in enumerate(groups)
    ]
    try:
        await _stream(x, turn, chunks, answer)
    except _Gone:
        return
