"""Compress the tool outputs of one request body: pure CPU work, run off the event loop.

Only the replaced string values change; if nothing qualifies or nothing shrinks, the
original bytes come back untouched (same object), so an untransformed body is forwarded
byte-for-byte. Originals of what was dropped are recorded in a ``PendingWrites``; the proxy
stores them before the new body leaves (durable before visible).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from headroom.ccr.markers import has_marker
from headroom.ccr.store import PendingWrites
from headroom.jsondoc import JsonDoc, JsonDocError, Path, Span, dump_string, root_span
from headroom.learning.learner import Seen
from headroom.learning.model import decode_steer, encode_steer, steer_for
from headroom.providers.base import RETRIEVE_TOOL, Provider, ToolOutput, has_tool, value_at
from headroom.providers.memo import MemoPipeline, Sight, decision_key, memo_key
from headroom.providers.rounds import Resolved, Where, answer_runs, context_of, restore
from headroom.transforms.base import CompressContext, CompressResult, Steer
from headroom.transforms.pipeline import Pipeline

# Outputs shorter than this are left alone: the saving would not pay for a marker.
DEFAULT_MIN_CHARS = 1000


@dataclass(frozen=True)
class Steering:
    """What learning tells one rewrite: the steers for outputs seen for the first time (by
    tool name, then strategy) and, once fetched, what was decided for the others by their
    decision key (``None``: not fetched yet)."""

    steers: Mapping[str, Mapping[str, Steer]]
    decided: Mapping[str, bytes] | None = None


@dataclass(frozen=True)
class Steered:
    """A first-seen output compressed with a steer: what the learner measures its cost on
    (compressing it again without the steer, beside the request)."""

    tool: str
    program: str
    strategy: str
    text: str
    query: str
    model: str
    tokens_after: int


class RoundFinder(Protocol):
    """Where the records of served rounds are found (``proxy.round_ledger``)."""

    def find(self, keys: list[str]) -> dict[str, Resolved]: ...


class KeysSeen:
    """A finder that finds nothing and notes what it was asked: where the ledger cannot be
    read (the compression process), the caller checks these keys afterwards."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def find(self, keys: list[str]) -> dict[str, Resolved]:
        self.keys += keys
        return {}


@dataclass(frozen=True)
class Plan:
    """A request body parsed for compression, kept between the two passes of a steered
    rewrite in one process (the second pass then parses nothing)."""

    body: bytes
    payload: dict[str, Any]
    restored: int  # answers replaced by the rounds the proxy served in them
    outputs: list[ToolOutput]
    model: str
    put_back: Where = frozenset()  # what was restored: its outputs are not compressed again
    context: str = ""  # ``rounds.context_of`` the client's history (before any restore)


class Cancelled(Exception):
    """The client went away or the deadline passed; stop spending CPU on this body."""


@dataclass
class StrategyTally:
    count: int = 0
    tokens_saved: int = 0


@dataclass
class Rewrite:
    body: bytes
    provider: str
    outputs_compressed: int = 0
    tokens_before: int = 0  # over the compressed outputs only
    tokens_after: int = 0
    by_strategy: dict[str, StrategyTally] = field(default_factory=dict)
    by_tool: dict[str, StrategyTally] = field(default_factory=dict)  # "" when unnamed
    writes: PendingWrites = field(default_factory=PendingWrites)
    stages: dict[str, float] = field(default_factory=dict)  # pipeline stage → total ms
    restored: int = 0  # answers replaced by the rounds the proxy served in them
    declared: bool = False  # headroom_retrieve was added to the request's tools
    seconds: float = 0.0
    skipped_reason: str = ""
    streams: bool = False  # the top-level "stream" is true (never a nested tool input's)
    memo_size: tuple[int, int] | None = None  # the compression process's memo after this
    same_body: bool = False  # from the compression process: nothing changed, ``body`` is left empty
    # Learning: decision keys to fetch before this body can be compressed (nothing was
    # compressed yet), the outputs compressed or kept whole, and decisions taken for those
    # seen for the first time.
    needs: list[str] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    decided: dict[str, bytes] = field(default_factory=dict)
    steered: list[Steered] = field(default_factory=list)
    plan: Plan | None = None  # set with ``needs`` when the caller asked to keep it
    round_keys: list[str] = field(default_factory=list)  # answers seen (``KeysSeen``)
    context: str = ""  # what a served round's record is keyed after (``Plan.context``)

    @property
    def changed(self) -> bool:
        return self.outputs_compressed > 0 or self.restored > 0 or self.declared

    @property
    def tokens_saved(self) -> int:
        return self.tokens_before - self.tokens_after


def rewrite_request(
    body: bytes,
    provider: Provider,
    pipeline: Pipeline | MemoPipeline,
    *,
    min_chars: int = DEFAULT_MIN_CHARS,
    cancel: threading.Event | None = None,
    rounds: RoundFinder | None = None,
    steering: Steering | None = None,
    plan: Plan | None = None,
    keep_plan: bool = False,
    declare: bool = False,
) -> Rewrite:
    """``steering``: what was learned (see ``Steering``); a first pass may end with
    ``needs`` and, with ``keep_plan``, the parsed body to hand to the second as ``plan``.
    ``declare`` (``--retrieve-tool always``): a request with tools of the client's gets
    ``headroom_retrieve`` among them even when nothing is compressed."""
    started = time.perf_counter()
    result = Rewrite(body, provider.name)
    if plan is None:
        plan = _plan(result, body, provider, rounds)
        if plan is None:
            return result
    body, payload = plan.body, plan.payload
    result.body, result.restored, result.context = body, plan.restored, plan.context
    result.streams = provider.streams(payload)
    candidates = [
        (o, CompressContext(query=o.query, store=result.writes, model=plan.model))
        for o in plan.outputs
        if len(o.text) >= min_chars and not has_marker(o.text) and not _put_back(o, plan)
    ]
    # With learning, each output's memo key names its decision too: hashed once here.
    keys = [memo_key(o.text, ctx) if steering is not None else None for o, ctx in candidates]
    if steering is not None and steering.decided is None:
        known = pipeline.has if isinstance(pipeline, MemoPipeline) else lambda _: False
        result.needs = [decision_key(k) for k in keys if k is not None and not known(k)]
        if result.needs:
            result.plan = plan if keep_plan else None
            return result  # the caller fetches these decisions and calls again
        steering = Steering(steering.steers, {})
    edits = _compress_all(candidates, keys, pipeline, steering, result, cancel)
    if edits or (declare and _client_tools(payload, provider)):
        _apply(result, body, payload, provider, edits, declare)
    result.seconds = time.perf_counter() - started
    return result


def _compress_all(
    candidates: list[tuple[ToolOutput, CompressContext]],
    keys: list[bytes | None],
    pipeline: Pipeline | MemoPipeline,
    steering: Steering | None,
    result: Rewrite,
    cancel: threading.Event | None,
) -> list[tuple[ToolOutput, str]]:
    """Each candidate compressed (or its memo), the ones that got smaller as edits; the
    tokens and the per-strategy and per-tool tallies go on ``result``."""
    edits: list[tuple[ToolOutput, str]] = []
    for (output, ctx), memoed in zip(candidates, keys, strict=True):
        if cancel is not None and cancel.is_set():
            raise Cancelled
        compressed = _compress(output, ctx, memoed, pipeline, steering, result)
        if compressed.output == output.text or compressed.tokens_after >= compressed.tokens_before:
            continue
        edits.append((output, compressed.output))
        result.tokens_before += compressed.tokens_before
        result.tokens_after += compressed.tokens_after
        saved = compressed.tokens_before - compressed.tokens_after
        for tallies, name in (
            (result.by_strategy, compressed.strategy),
            (result.by_tool, output.tool_name),
        ):
            tally = tallies.setdefault(name, StrategyTally())
            tally.count += 1
            tally.tokens_saved += saved
    return edits


def _plan(
    result: Rewrite, body: bytes, provider: Provider, rounds: RoundFinder | None
) -> Plan | None:
    """Parse the body (and put the rounds the proxy served back into it); None, with the
    reason on ``result``, when it is not a JSON object."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        result.skipped_reason = "invalid_json"
        return None
    if not isinstance(payload, dict):
        result.skipped_reason = "not_an_object"
        return None
    restored_body, restored, put_back = body, 0, frozenset[tuple[str | int, ...]]()
    items = payload.get(provider.shape.history_key)
    context = context_of(items)
    if rounds is not None and isinstance(items, list):
        keys = [key for _, _, key in answer_runs(provider, items)]
        found = rounds.find(keys) if keys else {}
        restored_body, restored, put_back, payload = restore(provider, body, payload, found)
    outputs = provider.find_outputs(payload)
    model = str(payload.get("model", ""))
    return Plan(restored_body, payload, restored, outputs, model, put_back, context)


def _put_back(output: ToolOutput, plan: Plan) -> bool:
    """Whether an output is an original the model fetched, put back with its round."""
    return bool(plan.put_back) and (
        output.path[:2] in plan.put_back or output.path[:4] in plan.put_back
    )


def _compress(
    output: ToolOutput,
    ctx: CompressContext,
    memoed: bytes | None,
    pipeline: Pipeline | MemoPipeline,
    steering: Steering | None,
    result: Rewrite,
) -> CompressResult:
    """One output, steered by what was decided for it before or, at its first sight, by
    what was learned about its tool. Every output sent compressed or kept whole is noted
    for the learner (what each request saved or cost), its first sight marked.
    ``memoed``: the output's memo key (given when steering is)."""
    decided, key = None, ""
    if steering is not None and memoed is not None:
        key = decision_key(memoed)
        decided = (steering.decided or {}).get(key)
        steer = (
            decode_steer(decided)
            if decided is not None
            else steer_for(steering.steers, output.tool_name, output.program)
        )
        ctx = CompressContext(ctx.query, ctx.store, ctx.model, steer)
    if isinstance(pipeline, MemoPipeline):
        compressed, sight = pipeline.compress_seen(output.text, ctx, result.stages, memoed)
    else:
        compressed, sight = pipeline.compress(output.text, ctx), Sight(False, ())
    first = decided is None and not sight.hit
    if steering is not None and first and (compressed.modified or sight.held):
        result.decided[key] = encode_steer(ctx.steer)
    if steering is not None and (compressed.keys or sight.held):
        result.seen.append(
            Seen(
                output.tool_name,
                output.program,
                compressed.strategy,
                compressed.tokens_before,
                compressed.tokens_after,
                compressed.keys,
                sight.held,
                first,
            )
        )
    if steering is not None and first and ctx.steer:
        result.steered.append(
            Steered(
                output.tool_name,
                output.program,
                sight.held[0] if sight.held else compressed.strategy,
                output.text,
                ctx.query,
                ctx.model,
                compressed.tokens_after,
            )
        )
    return compressed


def _apply(
    result: Rewrite,
    body: bytes,
    payload: dict[str, Any],
    provider: Provider,
    edits: list[tuple[ToolOutput, str]],
    declare: bool = False,
) -> None:
    tools_at = provider.tools_path(payload)
    wanted = [o.path for o, _ in edits]
    if tools_at is not None:
        wanted += [tools_at, tools_at[:-1]] if len(tools_at) > 1 else [tools_at]
    try:
        doc = JsonDoc(body)
        spans = doc.spans(wanted)
        for output, new_text in edits:
            span = spans.get(output.path)
            # The scanner must see the same string the parse did (duplicate keys could
            # make them differ); otherwise leave this body alone.
            if span is None or doc.value(span) != output.text:
                _undo(result, body, "span_mismatch")
                return
            doc.replace(span, dump_string(new_text))
        if len(result.writes) or declare:
            declared = _declare_retrieve(doc, spans, payload, provider, tools_at)
            if declared is None:
                _undo(result, body, "tools_not_a_list")
                return
            result.declared = declared
        result.body = doc.render()
        result.outputs_compressed = len(edits)
    except JsonDocError as exc:
        _undo(result, body, f"json_scan: {exc}")


def _declare_retrieve(
    doc: JsonDoc,
    spans: Mapping[Path, Span],
    payload: dict[str, Any],
    provider: Provider,
    tools_at: Path | None,
) -> bool | None:
    """Declare the retrieval tool in the request's tools list (made when there is none):
    whether it was added. None when that place holds something else: a marker could never
    be retrieved. ``tools_at`` None: the request has no tools list to declare it in."""
    if tools_at is None:
        return False
    parent_path, key = tools_at[:-1], tools_at[-1]
    parent = value_at(payload, parent_path)
    if not isinstance(parent, dict):
        return None
    tools = parent.get(key)
    if has_tool(tools, provider, RETRIEVE_TOOL):
        return False
    if isinstance(tools, list) and tools_at in spans:
        doc.append_to_array(spans[tools_at], provider.retrieve_tool_json)
        return True
    holder = spans.get(parent_path) if parent_path else root_span(doc)
    if key in parent or holder is None:
        return None
    doc.add_member(holder, str(key), "[" + provider.retrieve_tool_json + "]")
    return True


def _client_tools(payload: dict[str, Any], provider: Provider) -> bool:
    """Whether the request declares tools of its own (a non-empty list where this API
    keeps them): only then is the model in a tool-using conversation to add ours to."""
    at = provider.tools_path(payload)
    value = value_at(payload, at) if at is not None else None
    return isinstance(value, list) and len(value) > 0


def _undo(result: Rewrite, body: bytes, reason: str) -> None:
    """Forget every edit: the original body goes out, and nothing is stored or counted."""
    result.body = body
    result.skipped_reason = reason
    result.outputs_compressed = 0
    result.tokens_before = result.tokens_after = 0
    result.by_strategy.clear()
    result.by_tool.clear()
    result.declared = False
    result.writes = PendingWrites()
