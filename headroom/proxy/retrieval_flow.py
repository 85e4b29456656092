"""The flows for a forwarded body that carries retrieval markers: the proxy serves the
model's ``headroom_retrieve`` calls itself, so the client never sees the tool.

Non-streamed answers are held whole (``HeldAnswer``), completed through as many rounds as
the model needs (``retrieval_loop.complete``), and relayed in one piece. Streamed answers
are followed event by event (``StreamRetrieval``): the client's stream stays open while the
proxy asks the upstream again and continues the same body with the follow-up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from headroom.protocol.pool import ConnectFailed
from headroom.providers.base import Provider
from headroom.providers.retrieval import follow_up
from headroom.providers.rounds import Served
from headroom.proxy import retrieval_loop
from headroom.proxy.exchange import Exchange
from headroom.proxy.retrieval_learning import Fetched, learn_from_answer
from headroom.proxy.retrieval_loop import StreamRetrieval
from headroom.proxy.seams import ClientGone, Decision, Outcome
from headroom.proxy.sinks import HeldAnswer

Forward = Callable[[Exchange, bytes | bytearray], Awaitable[Outcome | None]]


async def forward_with_retrieval(ex: Exchange, decision: Decision, forward: Forward) -> None:
    provider = decision.retrieval
    assert provider is not None
    # Markers went out, so compression made this body: bytes already (``bytes`` of bytes
    # is the same object), never a client's gathered bytearray.
    body = bytes(decision.body)
    if not decision.streamed:
        held = HeldAnswer()
        ex.sink = held
        if await forward(ex, body) is Outcome.OK:
            await answer_held(ex, provider, body, decision.context, held)
        return
    stream = StreamRetrieval(provider)
    ex.sink = stream
    outcome = await forward(ex, body)
    if outcome is Outcome.FOLLOW_UP:
        await continue_stream(ex, provider, stream, body, decision.context)
    elif outcome is Outcome.OK:
        answer = stream.stream.follow_up_response()
        try:
            await retrieval_loop.remember_rounds(ex, provider, decision.context, [], answer, [])
        finally:
            stream.finish(ex)


async def answer_held(
    ex: Exchange, provider: Provider, body: bytes, context: str, held: HeldAnswer
) -> None:
    """Serve the model's retrieval calls, then relay the final answer in one piece."""
    assert held.head is not None
    raw = b"".join(held.chunks)
    try:
        head, raw = await retrieval_loop.complete(ex, provider, body, held.head, raw, context)
    except (ConnectFailed, ConnectionError, TimeoutError, ValueError) as exc:
        ex.fail(502, "retrieval_failed", f"answering headroom_retrieve failed: {exc}")
        return
    ex.facts.upstream_status = head.status
    ex.conn.cork()
    try:
        ex.relay_head(head)
        if raw and ex.head.method != b"HEAD":
            ex.relay_body(raw)
        ex.conn.send_end()
    finally:
        ex.conn.uncork()
    ex.response_done = True


async def continue_stream(
    ex: Exchange, provider: Provider, stream: StreamRetrieval, body: bytes, context: str
) -> None:
    """Serve the held headroom_retrieve calls and continue the client's stream with the
    follow-up answer, as many rounds as the model needs (bounded)."""
    message: str | None = None
    fetched: list[Fetched] = []
    served: list[Served] = []
    for _ in range(retrieval_loop.MAX_ROUNDS):
        answer = stream.stream.follow_up_response()
        calls = stream.stream.calls
        round_served = await retrieval_loop.serve(ex, provider, calls, body, answer, fetched)
        served.append(round_served)
        body = follow_up(provider, body, answer, round_served.results)
        stream.next_round()
        ex.release_upstream()
        try:
            upstream, _ = await ex.pool.acquire()
        except ConnectFailed as exc:
            message = f"follow-up for headroom_retrieve failed: {exc}"
            break
        outcome = await ex.round_trip(upstream, body)
        if outcome is Outcome.OK:
            answer = stream.stream.follow_up_response()
            try:
                await retrieval_loop.remember_rounds(ex, provider, context, served, answer, fetched)
            finally:
                stream.finish(ex)
            if ex.app.learner is not None and fetched:
                ex.app.learner.in_background(learn_from_answer(ex, provider, fetched, answer))
            return
        if outcome is not Outcome.FOLLOW_UP:
            message = stream.error or ex.failure or f"follow-up {outcome.value}"
            break
    if ex.client_gone:
        raise ClientGone
    ex.relay_body(stream.stream.close_events(message or stream.error))
    ex.conn.send_end()
    ex.response_done = True
