"""Answer the model's ``headroom_retrieve`` calls inside the proxy (non-streaming answers).

The client never sees the tool: when an answer's tool calls are all ours, the proxy looks
the hashes up in the CCR store, appends the model's turn and the tool results to the
forwarded body, asks the upstream again (up to ``MAX_ROUNDS`` times) and hands the client
the final answer. An answer that also calls the client's own tools, or one still asking
after the last round, reaches the client with our calls removed.
"""

from __future__ import annotations

from typing import Any

import orjson

from headroom.ccr.store import Entry, StoreError
from headroom.protocol.events import ResponseHead
from headroom.providers.anthropic_stream import AnthropicStream
from headroom.providers.base import Provider
from headroom.providers.gemini_stream import GeminiStream
from headroom.providers.openai_stream import OpenAIChatStream
from headroom.providers.responses_stream import ResponsesStream
from headroom.providers.retrieval import (
    RetrieveCall,
    find_calls,
    follow_up,
    strip_calls,
    tool_result_text,
    with_earlier_rounds,
)
from headroom.providers.rounds import Served, record_for
from headroom.providers.sse import SSEError, SSEParser, StreamFilter
from headroom.proxy.client import fetch
from headroom.proxy.encoding import DecodedTooLarge, DecodeError, content_coding, decode
from headroom.proxy.headers import header_value
from headroom.proxy.retrieval_learning import Fetched, learn_from_answer, learn_from_retrievals
from headroom.proxy.seams import ExchangeView, Outcome

MAX_ROUNDS = 3
_FILTERS: dict[str, type] = {
    "anthropic": AnthropicStream,
    "openai_chat": OpenAIChatStream,
    "openai_responses": ResponsesStream,
    "gemini_stream": GeminiStream,
}


async def complete(
    ex: ExchangeView,
    provider: Provider,
    body: bytes,
    head: ResponseHead,
    raw: bytes,
    context: str = "",
) -> tuple[ResponseHead, bytes]:
    """The answer the client gets, after as many retrieval rounds as the model needs.
    ``context``: what the rounds' record is keyed after (``Decision.context``)."""
    app = ex.app
    earlier: list[dict[str, Any]] = []  # what the rounds so far showed, our calls stripped
    served: list[Served] = []
    fetched: list[Fetched] = []
    for round_no in range(MAX_ROUNDS + 1):
        response = _parse(head, raw, app.config.max_body_bytes)
        if response is None:
            return head, raw
        calls = find_calls(provider, response)
        if not calls.ours:
            if not earlier:
                return head, raw  # no round served: the upstream's exact bytes
            if app.learner is not None and fetched:
                app.learner.in_background(learn_from_answer(ex, provider, fetched, response))
            await remember_rounds(ex, provider, context, served, response, fetched)
            return _rewritten(head, with_earlier_rounds(provider, earlier, response))
        if calls.others or round_no == MAX_ROUNDS:
            app.log.info(
                "retrieve_calls_removed",
                request_id=ex.request_id.decode(),
                ours=len(calls.ours),
                others=calls.others,
                round=round_no,
            )
            await remember_rounds(ex, provider, context, served, response, fetched)
            final = strip_calls(provider, response)
            return _rewritten(head, with_earlier_rounds(provider, earlier, final))
        earlier.append(strip_calls(provider, response))
        round_served = await serve(ex, provider, calls.ours, body, response, fetched)
        served.append(round_served)
        body = follow_up(provider, body, response, round_served.results)
        headers = ex.upstream_headers(len(body))
        got = await fetch(
            ex.pool, ex.head.method, ex.upstream_target, headers, body, app.config.upstream_timeout
        )
        head = ResponseHead(got.status, got.headers, b"", [n for n, _ in got.headers])
        raw = got.body
    return head, raw


async def _lookup(ex: ExchangeView, key: str | None, raw: str) -> tuple[str, Entry | None]:
    stats = ex.app.stats
    store = ex.app.store
    if key is None or store is None:
        stats.ccr_loop_misses += 1
        return tool_result_text(key, raw, None, "not_found"), None
    try:
        found = await store.get(key)
    except StoreError as exc:
        stats.ccr_loop_misses += 1
        ex.app.log.warning("ccr_get_failed", request_id=ex.request_id.decode(), error=str(exc))
        return tool_result_text(key, raw, None, "not_found"), None
    if isinstance(found, Entry):
        stats.ccr_loop_retrievals += 1
        return tool_result_text(key, raw, found.original, "ok"), found
    stats.ccr_loop_misses += 1
    return tool_result_text(key, raw, None, found.status), None


def _parse(head: ResponseHead, raw: bytes, limit: int) -> dict[str, Any] | None:
    if head.status != 200:
        return None
    ctype = (header_value(head.headers, b"content-type") or b"").lower()
    if b"json" not in ctype:
        return None
    coding = content_coding(head.headers)
    data = raw
    if coding is not None:
        try:
            data = decode(coding, raw, limit)
        except (DecodeError, DecodedTooLarge):
            return None
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _rewritten(head: ResponseHead, response: dict[str, Any]) -> tuple[ResponseHead, bytes]:
    body = orjson.dumps(response)
    headers = [
        (n, v)
        for n, v in head.headers
        if n not in (b"content-length", b"content-encoding", b"transfer-encoding")
    ]
    headers.append((b"content-length", str(len(body)).encode("ascii")))
    return ResponseHead(head.status, headers, head.reason, [n for n, _ in headers]), body


class StreamRetrieval:
    """The client's side of a streamed answer whose ``headroom_retrieve`` calls the proxy
    serves: the first round's head is relayed, later rounds continue the same body."""

    def __init__(self, provider: Provider) -> None:
        self.parser = SSEParser()
        self.stream: StreamFilter = _FILTERS[provider.name]()
        self.round = 0
        self.active = False  # the first answer is an SSE stream we can follow
        self.error: str | None = None  # a follow-up round failed
        self.trailers: list[tuple[bytes, bytes]] | None = None  # held until ``finish``

    def on_head(self, ex: ExchangeView, head: ResponseHead) -> None:
        if self.round == 0:
            ctype = (header_value(head.headers, b"content-type") or b"").lower()
            encoded = header_value(head.headers, b"content-encoding") not in (None, b"identity")
            self.active = head.status == 200 and b"text/event-stream" in ctype and not encoded
            ex.relay_head(head)
        elif head.status != 200:
            self.error = f"follow-up request answered {head.status}"

    def on_body(self, ex: ExchangeView, data: bytes) -> None:
        if not self.active:
            if self.round == 0:
                ex.relay_body(data)
            return
        if self.error is not None:
            return
        try:
            events = self.parser.feed(data)
        except SSEError as exc:
            self.error = str(exc)
            return
        out = b"".join(self.stream.feed(event) for event in events)
        if out:
            ex.relay_body(out)

    def on_end(self, ex: ExchangeView, trailers: list[tuple[bytes, bytes]]) -> Outcome:
        if self.wants_follow_up():
            return Outcome.FOLLOW_UP
        if self.round and self.error is not None:
            return Outcome.FAILED  # a follow-up went wrong: the stream ends with an error
        if self.active:
            # The flow records the rounds first (``finish``): a client that sends its next
            # turn once the stream ends finds them on any worker.
            self.trailers = trailers
            return Outcome.OK
        ex.end_response(trailers)
        return Outcome.OK

    def finish(self, ex: ExchangeView) -> None:
        """End the client's stream held by ``on_end``."""
        if self.trailers is not None:
            ex.end_response(self.trailers)
            self.trailers = None

    def wants_follow_up(self) -> bool:
        return self.active and self.error is None and self.stream.wants_follow_up

    def next_round(self) -> None:
        self.round += 1
        self.parser = SSEParser()
        self.stream.start_round()


async def remember_rounds(
    ex: ExchangeView,
    provider: Provider,
    context: str,
    served: list[Served],
    final: dict[str, Any],
    fetched: list[Fetched],
) -> None:
    """Record what the upstream saw in place of the answer the client gets, for the client's
    next requests (``providers.rounds``). ``context``: the words the client's history
    ended with (``Decision.context``);
    ``final``: the last answer, our calls still in it. Calls of ours beside the client's own
    are answered now: their results go into the client's next turn."""
    ledger = ex.app.rounds
    if ledger is None:
        return
    calls = find_calls(provider, final)
    last = None
    if calls.ours and calls.others:
        last = await serve(ex, provider, calls.ours, b"", final, fetched)
    if not served and last is None:
        return
    made = record_for(provider, context, served, final, last)
    if made is not None:
        originals = {f.key: f.original.decode("utf-8", errors="replace") for f in fetched}
        await ledger.remember(*made, originals)


async def serve(
    ex: ExchangeView,
    provider: Provider,
    calls: list[RetrieveCall],
    body: bytes,
    response: dict[str, Any],
    fetched: list[Fetched],
) -> Served:
    """Our calls of ``response``, answered, as the round records them. Each original found
    is evidence for the learner (``body``: what the model was sent; empty when unknown)
    and is added to ``fetched``, for the answer that follows to be read against it."""
    results: list[tuple[str, str]] = []
    found: list[Fetched] = []
    for call in calls:
        text, entry = await _lookup(ex, call.key, call.raw)
        results.append((call.call_id, text))
        if entry is not None:
            found.append(Fetched(entry.key, entry.original, body))
    learner = ex.app.learner
    if learner is not None and found:
        learner.in_background(learn_from_retrievals(ex, provider, found, response))
    fetched.extend(found)
    keys = {f.key for f in found}
    named = tuple(c.key if c.key in keys else None for c in calls)
    return Served(response, results, named)
