"""A scripted fake LLM API on real sockets: Anthropic Messages, OpenAI Chat and Responses
(and Gemini, in ``tests.support.gemini_api``).

Built on ``tests.support.upstream`` (same h11 connection handling, same ``Recorded``
requests), but every request is answered the way the real API would: JSON, or SSE with the
real event sequence when the body asks for ``stream``. What the model says is scripted per
test as a queue of turns (``llm.script(tool_turn(...), text_turn(...))``); an empty queue
answers a short text. Like the real APIs it rejects (400) conversations that are not valid
— a tool call without its result, a result without its call, two tools of one name — so a
proxy that leaves a broken history behind (the retrieval loop's mixed mode) is caught here
and not in production.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import threading
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import brotli
import orjson
import zstandard

from tests.support.prefix_cache import PrefixCache
from tests.support.upstream import Exchange, FakeUpstream, Recorded, _Conn, _Gone

# -------------------------------------------------------------------- scripted turns


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Thinking:
    thinking: str
    signature: str


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = ""  # given ids make multi-turn tests readable; empty → generated


Block = Text | Thinking | ToolCall


@dataclass
class Turn:
    """One model reply. ``gate``: a stream stops after its first content delta until the
    test sets it (bounded), so a test can prove events reach the client before the end."""

    blocks: tuple[Block, ...]
    status: int = 200
    gate: threading.Event | None = None
    error: str = ""  # for status != 200: the error message
    gate_timed_out: bool | None = None  # set once the stream waited on ``gate``
    linger: float = 0.0  # seconds a stream stays open after its last event (bounded)

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [b for b in self.blocks if isinstance(b, ToolCall)]


def text_turn(text: str, *, gate: threading.Event | None = None) -> Turn:
    return Turn((Text(text),), gate=gate)


def tool_turn(*calls: ToolCall, text: str = "") -> Turn:
    """A turn that calls tools (optionally after a short text)."""
    blocks: tuple[Block, ...] = ((Text(text),) if text else ()) + calls
    return Turn(blocks)


def retrieve_call(key: str, call_id: str = "") -> ToolCall:
    return ToolCall("headroom_retrieve", {"hash": key}, call_id)


def error_turn(status: int, message: str) -> Turn:
    return Turn((), status=status, error=message)


# -------------------------------------------------------------------- the server

GATE_TIMEOUT = 5.0
_DEFAULT_TURN = Turn((Text("ok"),))


@dataclass
class Answer:
    """Which scripted turn answered which request (count_tokens and 4xx have none)."""

    request: Recorded
    turn: Turn | None
    status: int
    stream: bool
    sent: bytearray = field(default_factory=bytearray)  # response body bytes as sent


@dataclass
class _Ctx:
    x: Exchange
    payload: dict[str, Any]
    turn: Turn
    ids: Iterator[int]
    input_tokens: int
    answer: Answer
    cached_tokens: int = 0  # read from the emulated prompt cache (``prefix_cache``)
    model: str = field(init=False)

    def __post_init__(self) -> None:
        self.model = str(self.payload.get("model", "fake-model"))

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self.ids):06d}"


class _LLMConn(_Conn):
    """The base connection with the behaviour table swapped for the LLM routes."""

    server: LLMUpstream

    async def handle(self, x: Exchange) -> None:
        await _route(self.server, x)


class LLMUpstream(FakeUpstream):
    """``start()``; ``url``; ``script(*turns)``; ``requests`` / ``answers`` what happened."""

    conn_class = _LLMConn

    def __init__(self) -> None:
        super().__init__()
        self.answers: list[Answer] = []
        self.validate = True
        # Set to a PrefixCache to report cache reads as the providers do (off: always 0).
        self.prefix_cache: PrefixCache | None = None
        # Set to decide each reply from the request body (a scripted model that reacts to
        # what it sees); the script and keyed turns are used when it answers None.
        self.responder: Callable[[bytes], Turn | None] | None = None
        self._script: deque[Turn] = deque()
        self._keyed: dict[bytes, deque[Turn]] = {}
        self._ids = itertools.count(1)

    def script(self, *turns: Turn) -> None:
        with self._lock:
            self._script.extend(turns)

    def script_for(self, needle: str, *turns: Turn) -> None:
        """Turns only for requests whose body contains ``needle`` (concurrent tests)."""
        with self._lock:
            self._keyed.setdefault(needle.encode(), deque()).extend(turns)

    def clear(self) -> None:
        super().clear()
        with self._lock:
            self._script.clear()
            self._keyed.clear()
            self.answers.clear()
        self.validate = True
        self.prefix_cache = None
        self.responder = None

    @property
    def pending(self) -> int:
        """Scripted turns not yet used."""
        with self._lock:
            return len(self._script) + sum(len(t) for t in self._keyed.values())

    def posts(self, suffix: str) -> list[Recorded]:
        """Completed requests whose path ends with ``suffix``, in arrival order."""
        with self._lock:
            return [r for r in self.requests if r.path.endswith(suffix) and r.complete]

    def _next_turn(self, body: bytes) -> Turn:
        if self.responder is not None:
            turn = self.responder(body)
            if turn is not None:
                return turn
        with self._lock:
            for needle, turns in self._keyed.items():
                if turns and needle in body:
                    return turns.popleft()
            return self._script.popleft() if self._script else _DEFAULT_TURN

    def _answered(self, answer: Answer) -> None:
        with self._changed:
            self.answers.append(answer)
            self._changed.notify_all()


# -------------------------------------------------------------------- routing


async def _route(server: LLMUpstream, x: Exchange) -> None:
    from tests.support import gemini_api  # here: it is built on this module's helpers

    if gemini_api.handles(x.rec.path):
        await gemini_api.route(server, x)
        return
    body = await x.body()
    path = x.rec.path
    if x.rec.method != "POST":
        await _refuse(server, x, 404, {"error": {"type": "not_found", "message": f"no {path}"}})
        return
    try:
        body = _decoded(body, x.rec.header("content-encoding"))
        payload = orjson.loads(body)
    except (orjson.JSONDecodeError, OSError, ValueError, zlib.error, zstandard.ZstdError) as exc:
        await _refuse(server, x, 400, _anthropic_error(f"unreadable body: {exc}"))
        return
    if path.endswith("/v1/messages/count_tokens"):
        count = {"input_tokens": _tokens(body)}
        await _refuse(server, x, 200, count, [("request-id", "req_count")])
        return
    api = _APIS.get(_suffix(path))
    if api is None:
        await _refuse(server, x, 404, {"error": {"type": "not_found", "message": f"no {path}"}})
        return
    stream = payload.get("stream") is True
    problem = api.validate(payload) if server.validate else None
    if problem is not None:
        await _refuse(server, x, 400, api.error(problem), [(api.rid_header, "req_invalid")])
        return
    turn = server._next_turn(body)
    answer = Answer(x.rec, turn, turn.status, stream)
    server._answered(answer)
    ctx = _Ctx(x, payload, turn, server._ids, _tokens(body), answer)
    if server.prefix_cache is not None:
        ctx.input_tokens, ctx.cached_tokens = server.prefix_cache.read(api.name, payload)
    rid = [(api.rid_header, ctx.new_id("req_"))]
    if turn.status != 200:
        await _json(x, turn.status, api.error(turn.error, turn.status), rid, answer.sent)
    elif stream:
        await x.start(200, [("Content-Type", "text/event-stream"), *rid])
        try:
            await api.stream(ctx)
            if turn.linger:
                await asyncio.sleep(min(turn.linger, GATE_TIMEOUT))
        except _Gone:
            return
        await x.end()
    else:
        await _json(x, 200, api.message(ctx), rid, answer.sent)


async def _refuse(
    server: LLMUpstream,
    x: Exchange,
    status: int,
    value: Any,
    headers: list[tuple[str, str]] | None = None,
) -> None:
    """Answer without a scripted turn (errors, count_tokens), recorded like any answer."""
    answer = Answer(x.rec, None, status, False)
    server._answered(answer)
    await _json(x, status, value, headers, answer.sent)


def _decoded(body: bytes, encoding: str | None) -> bytes:
    """The body as the API reads it: a declared Content-Encoding is honoured."""
    name = (encoding or "identity").strip().lower()
    if name == "gzip":
        return gzip.decompress(body)
    if name == "deflate":
        return zlib.decompress(body)
    if name == "zstd":
        return zstandard.ZstdDecompressor().decompress(body, max_output_size=1 << 28)
    if name == "br":
        return brotli.decompress(body)
    if name != "identity":
        raise ValueError(f"unsupported Content-Encoding {encoding!r}")
    return body


def _suffix(path: str) -> str:
    for suffix in _APIS:
        if path.endswith(suffix):
            return suffix
    return ""


def _tokens(body: bytes) -> int:
    """A stand-in token count that moves with the body size (4 bytes a token)."""
    return max(1, len(body) // 4)


async def _json(
    x: Exchange,
    status: int,
    value: Any,
    headers: list[tuple[str, str]] | None = None,
    sink: bytearray | None = None,
) -> None:
    data = orjson.dumps(value)
    if sink is not None:
        sink += data
    await x.respond(
        status, orjson.dumps(value), [("Content-Type", "application/json"), *(headers or [])]
    )


async def _sse(ctx: _Ctx, event: str | None, data: Any) -> None:
    payload = data if isinstance(data, str) else orjson.dumps(data).decode()
    head = f"event: {event}\n" if event else ""
    frame = f"{head}data: {payload}\n\n".encode()
    ctx.answer.sent += frame
    await ctx.x.send(frame)


async def _hold(turn: Turn) -> None:
    """Wait for the test's gate, off this loop, bounded."""
    if turn.gate is not None:
        wait = asyncio.get_running_loop().run_in_executor(None, turn.gate.wait, GATE_TIMEOUT)
        turn.gate_timed_out = not await wait


def _pieces(text: str, n: int = 3) -> list[str]:
    """``text`` cut into up to ``n`` deltas (at least one, even when empty)."""
    if not text:
        return [""]
    step = max(1, -(-len(text) // n))
    return [text[i : i + step] for i in range(0, len(text), step)]


def _args_json(call: ToolCall) -> str:
    return orjson.dumps(call.arguments).decode()


# -------------------------------------------------------------------- Anthropic Messages


def _anthropic_error(message: str, status: int = 400) -> dict[str, Any]:
    kind = {400: "invalid_request_error", 429: "rate_limit_error", 529: "overloaded_error"}
    return {"type": "error", "error": {"type": kind.get(status, "api_error"), "message": message}}


def _anthropic_validate(payload: dict[str, Any]) -> str | None:
    problem = _unique_tools([t.get("name") for t in _dicts(payload.get("tools"))])
    if problem:
        return problem
    messages = _dicts(payload.get("messages"))
    for i, msg in enumerate(messages):
        content = msg.get("content") if isinstance(msg.get("content"), list) else []
        results = {b.get("tool_use_id") for b in _dicts(content) if b.get("type") == "tool_result"}
        prev = messages[i - 1] if i else {}
        prev_content = prev.get("content") if isinstance(prev.get("content"), list) else []
        calls = {b.get("id") for b in _dicts(prev_content) if b.get("type") == "tool_use"}
        if msg.get("role") == "user" and results - calls:
            return f"messages.{i}: tool_result for unknown tool_use ids {sorted(results - calls)}"
        if msg.get("role") == "assistant":
            own = {b.get("id") for b in _dicts(content) if b.get("type") == "tool_use"}
            nxt = messages[i + 1] if i + 1 < len(messages) else None
            if own and nxt is not None:
                nxt_content = nxt.get("content") if isinstance(nxt.get("content"), list) else []
                answered = {
                    b.get("tool_use_id")
                    for b in _dicts(nxt_content)
                    if b.get("type") == "tool_result"
                }
                if own - answered:
                    return (
                        f"messages.{i}: tool_use ids were found without tool_result blocks "
                        f"immediately after: {sorted(own - answered)}"
                    )
    return None


def _anthropic_block(ctx: _Ctx, block: Block) -> dict[str, Any]:
    if isinstance(block, Text):
        return {"type": "text", "text": block.text}
    if isinstance(block, Thinking):
        return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    return {
        "type": "tool_use",
        "id": block.id or ctx.new_id("toolu_"),
        "name": block.name,
        "input": block.arguments,
    }


def _anthropic_message(ctx: _Ctx) -> dict[str, Any]:
    stop = "tool_use" if ctx.turn.tool_calls else "end_turn"
    return {
        "id": ctx.new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": ctx.model,
        "content": [_anthropic_block(ctx, b) for b in ctx.turn.blocks],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": _anthropic_usage(ctx, output_tokens(ctx.turn)),
    }


def _anthropic_usage(ctx: _Ctx, output_tokens: int) -> dict[str, Any]:
    """Anthropic counts cache reads beside ``input_tokens`` (the uncached rest)."""
    return {
        "input_tokens": ctx.input_tokens - ctx.cached_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": ctx.cached_tokens,
        "output_tokens": output_tokens,
    }


def output_tokens(turn: Turn) -> int:
    """The output token count the fake reports for ``turn`` (tests sum it across rounds)."""
    size = sum(len(orjson.dumps(b.__dict__)) for b in turn.blocks)
    return max(1, size // 4)


async def _anthropic_stream(ctx: _Ctx) -> None:
    turn = ctx.turn
    start = _anthropic_message(ctx)
    start.update(content=[], stop_reason=None, usage=_anthropic_usage(ctx, 1))
    await _sse(ctx, "message_start", {"type": "message_start", "message": start})
    await _sse(ctx, "ping", {"type": "ping"})
    held = False
    for index, block in enumerate(turn.blocks):
        shell = _anthropic_block(ctx, block)
        if isinstance(block, Text):
            shell["text"] = ""
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(block.text)]
        elif isinstance(block, Thinking):
            shell.update(thinking="", signature="")
            deltas = [{"type": "thinking_delta", "thinking": p} for p in _pieces(block.thinking)]
            deltas.append({"type": "signature_delta", "signature": block.signature})
        else:
            shell["input"] = {}
            deltas = [
                {"type": "input_json_delta", "partial_json": p} for p in _pieces(_args_json(block))
            ]
        await _sse(
            ctx,
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": shell},
        )
        for delta in deltas:
            await _sse(
                ctx,
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
            if not held:
                held = True
                await _hold(turn)
        await _sse(ctx, "content_block_stop", {"type": "content_block_stop", "index": index})
    stop = "tool_use" if turn.tool_calls else "end_turn"
    await _sse(
        ctx,
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": output_tokens(turn)},
        },
    )
    await _sse(ctx, "message_stop", {"type": "message_stop"})


# -------------------------------------------------------------------- OpenAI Chat


def _openai_error(message: str, status: int = 400) -> dict[str, Any]:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _chat_validate(payload: dict[str, Any]) -> str | None:
    names = [t.get("function", {}).get("name") for t in _dicts(payload.get("tools"))]
    problem = _unique_tools(names)
    if problem:
        return problem
    messages = _dicts(payload.get("messages"))
    waiting: set[str] = set()
    for i, msg in enumerate(messages):
        role = msg.get("role")
        if role == "tool":
            if msg.get("tool_call_id") not in waiting:
                return (
                    f"messages.[{i}]: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'"
                )
            waiting.discard(msg["tool_call_id"])
            continue
        if waiting:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages "
                f"responding to each 'tool_call_id'. Missing: {sorted(waiting)}"
            )
        if role == "assistant":
            waiting = {c.get("id") for c in _dicts(msg.get("tool_calls"))}
    return None


def _chat_call(ctx: _Ctx, call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id or ctx.new_id("call_"),
        "type": "function",
        "function": {"name": call.name, "arguments": _args_json(call)},
    }


def _chat_usage(ctx: _Ctx) -> dict[str, Any]:
    out = output_tokens(ctx.turn)
    return {
        "prompt_tokens": ctx.input_tokens,
        "completion_tokens": out,
        "total_tokens": ctx.input_tokens + out,
        "prompt_tokens_details": {"cached_tokens": ctx.cached_tokens},
    }


def _chat_message(ctx: _Ctx) -> dict[str, Any]:
    turn = ctx.turn
    text = "".join(b.text for b in turn.blocks if isinstance(b, Text))
    message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
    if turn.tool_calls:
        message["tool_calls"] = [_chat_call(ctx, c) for c in turn.tool_calls]
    return {
        "id": ctx.new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": ctx.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if turn.tool_calls else "stop",
            }
        ],
        "usage": _chat_usage(ctx),
    }


async def _chat_stream(ctx: _Ctx) -> None:
    turn = ctx.turn
    head = {
        "id": ctx.new_id("chatcmpl-"),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": ctx.model,
    }

    async def chunk(delta: dict[str, Any], finish: str | None = None) -> None:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        await _sse(ctx, None, {**head, "choices": [choice]})

    await chunk({"role": "assistant", "content": "", "refusal": None})
    held = False
    for block in turn.blocks:
        if isinstance(block, Text):
            for piece in _pieces(block.text):
                await chunk({"content": piece})
                if not held:
                    held = True
                    await _hold(turn)
    for index, call in enumerate(turn.tool_calls):
        shell = _chat_call(ctx, call)
        shell["function"]["arguments"] = ""
        await chunk({"tool_calls": [{"index": index, **shell}]})
        for piece in _pieces(_args_json(call)):
            await chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            if not held:
                held = True
                await _hold(turn)
    await chunk({}, "tool_calls" if turn.tool_calls else "stop")
    options = ctx.payload.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        await _sse(ctx, None, {**head, "choices": [], "usage": _chat_usage(ctx)})
    await _sse(ctx, None, "[DONE]")


# -------------------------------------------------------------------- OpenAI Responses


def _responses_validate(payload: dict[str, Any]) -> str | None:
    problem = _unique_tools([t.get("name") for t in _dicts(payload.get("tools"))])
    if problem or payload.get("previous_response_id"):
        return problem
    called: set[str] = set()
    for item in _dicts(payload.get("input")):
        kind = str(item.get("type", ""))
        if kind.endswith("_call_output"):
            call_id = item.get("call_id")
            if call_id not in called:
                return f"No tool call found for function call output with call_id {call_id}."
        elif kind.endswith("_call"):
            called.add(item.get("call_id"))
    return None


def _responses_items(ctx: _Ctx) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for block in ctx.turn.blocks:
        if isinstance(block, Text):
            items.append(
                {
                    "type": "message",
                    "id": ctx.new_id("msg_"),
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": block.text, "annotations": []}],
                }
            )
        elif isinstance(block, ToolCall):
            items.append(
                {
                    "type": "function_call",
                    "id": ctx.new_id("fc_"),
                    "call_id": block.id or ctx.new_id("call_"),
                    "name": block.name,
                    "arguments": _args_json(block),
                    "status": "completed",
                }
            )
    return items


def _responses_object(ctx: _Ctx, rid: str, status: str, output: list[Any]) -> dict[str, Any]:
    out = output_tokens(ctx.turn)
    usage = None
    if status == "completed":
        usage = {
            "input_tokens": ctx.input_tokens,
            "input_tokens_details": {"cached_tokens": ctx.cached_tokens},
            "output_tokens": out,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": ctx.input_tokens + out,
        }
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": ctx.payload.get("instructions"),
        "model": ctx.model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    }


def _responses_message(ctx: _Ctx) -> dict[str, Any]:
    return _responses_object(ctx, ctx.new_id("resp_"), "completed", _responses_items(ctx))


async def _responses_stream(ctx: _Ctx) -> None:
    turn = ctx.turn
    rid = ctx.new_id("resp_")
    seq = itertools.count()

    async def event(kind: str, **fields: Any) -> None:
        await _sse(ctx, kind, {"type": kind, "sequence_number": next(seq), **fields})

    await event("response.created", response=_responses_object(ctx, rid, "in_progress", []))
    await event("response.in_progress", response=_responses_object(ctx, rid, "in_progress", []))
    items = _responses_items(ctx)
    held = False
    for index, item in enumerate(items):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            await event(
                "response.output_item.added",
                output_index=index,
                item={**item, "content": [], "status": "in_progress"},
            )
            part = {"type": "output_text", "text": "", "annotations": []}
            ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
            await event("response.content_part.added", **ids, part=part)
            for piece in _pieces(text):
                await event("response.output_text.delta", **ids, delta=piece, logprobs=[])
                if not held:
                    held = True
                    await _hold(turn)
            await event("response.output_text.done", **ids, text=text, logprobs=[])
            await event("response.content_part.done", **ids, part={**part, "text": text})
        else:
            args = item["arguments"]
            shell = {**item, "arguments": "", "status": "in_progress"}
            await event("response.output_item.added", output_index=index, item=shell)
            ids = {"item_id": item["id"], "output_index": index}
            for piece in _pieces(args):
                await event("response.function_call_arguments.delta", **ids, delta=piece)
                if not held:
                    held = True
                    await _hold(turn)
            await event("response.function_call_arguments.done", **ids, arguments=args)
        await event("response.output_item.done", output_index=index, item=item)
    await event("response.completed", response=_responses_object(ctx, rid, "completed", items))


# -------------------------------------------------------------------- table


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _unique_tools(names: list[Any]) -> str | None:
    dupes = sorted({str(n) for n in names if names.count(n) > 1})
    return f"tools: Tool names must be unique: {dupes}" if dupes else None


@dataclass(frozen=True)
class _Api:
    name: str  # as the prompt cache names the API's rendering
    rid_header: str
    validate: Callable[[dict[str, Any]], str | None]
    error: Callable[..., dict[str, Any]]
    message: Callable[[_Ctx], dict[str, Any]]
    stream: Callable[[_Ctx], Awaitable[None]]


_APIS: dict[str, _Api] = {
    "/v1/messages": _Api(
        "anthropic",
        "request-id",
        _anthropic_validate,
        _anthropic_error,
        _anthropic_message,
        _anthropic_stream,
    ),
    "/v1/chat/completions": _Api(
        "openai_chat", "x-request-id", _chat_validate, _openai_error, _chat_message, _chat_stream
    ),
    "/v1/responses": _Api(
        "openai_responses",
        "x-request-id",
        _responses_validate,
        _openai_error,
        _responses_message,
        _responses_stream,
    ),
}
