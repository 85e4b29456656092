"""The client's request body on its way upstream, before and while it streams
(``ClientBody``, one per exchange, over the buffer ``RequestBody``).

Until a flow decides, body chunks are held here: up to the flow's limit when it buffers
(past it the body is too large), up to ``MAX_PENDING_BODY`` while a streamed request
waits for its upstream (past it the client is paused, not refused). Once streaming, the
start of the body (up to ``REPLAY_LIMIT``) is kept, so a request the origin provably never
processed (refused stream, GOAWAY, stale pooled socket) can be sent once more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from headroom.protocol.limits import MAX_PENDING_BODY
from headroom.proxy.buffering import BodyOwner, BodyWatch
from headroom.proxy.headers import request_trailers
from headroom.proxy.seams import BodyTooLarge, ClientStream, Pairs, Services

if TYPE_CHECKING:
    from headroom.protocol.pool import Upstream

# A streamed request body up to this size is kept until the answer starts; larger bodies
# are not replayable.
REPLAY_LIMIT = 64 * 1024


class RequestBody:
    """What is held of the body until it goes upstream.

    A buffering flow's body is gathered in place, one read at a time, into one bytearray
    that is then handed on as it is: joining 21 MB of held chunks at the end was one C
    call of 25-30 ms (mostly page faults of the fresh memory) during which the loop served
    nobody, while appending each read as it comes costs the same in slices of at most one
    read. Until a flow decides (and for a streamed body) chunks are kept as they came.
    """

    __slots__ = ("_replay_size", "chunks", "limit", "replay", "size", "whole")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.whole: bytearray | None = None  # a buffering flow's body, gathered as it comes
        self.size = 0
        self.limit: int | None = None  # the buffering flow's cap; None: not buffering
        self.replay: list[bytes] | None = []  # None once past REPLAY_LIMIT
        self._replay_size = 0

    def hold(self, data: bytes) -> bool:
        """Keep ``data`` until the flow takes it; True when that passes the bound."""
        if self.whole is not None:
            self.whole += data
        else:
            self.chunks.append(data)
        self.size += len(data)
        return self.size > (self.limit if self.limit is not None else MAX_PENDING_BODY)

    @property
    def over_limit(self) -> bool:
        return self.limit is not None and self.size > self.limit

    def buffer(self, limit: int) -> None:
        """From now on the body is read whole, up to ``limit``: what is held already (at
        most ``MAX_PENDING_BODY``) starts the gathered body."""
        self.limit = limit
        if self.whole is not None:
            return
        chunks, self.chunks = self.chunks, []
        # h11 hands out each read as a fresh bytearray, which can be grown in place
        whole = chunks.pop(0) if chunks and isinstance(chunks[0], bytearray) else bytearray()
        for chunk in chunks:
            whole += chunk
        self.whole = whole

    def take(self) -> bytearray:
        """The gathered body; nothing is held afterwards. The caller owns the bytearray and
        must not change it (retries send it again)."""
        body = self.whole if self.whole is not None else bytearray()
        self.whole = None
        self.size = 0
        return body

    def start_streaming(self) -> list[bytes]:
        """What to send upstream now that the body streams: what is held, or on a retry
        what the first try already sent."""
        self.limit = None
        if self.replay is not None and not self.chunks:
            out = list(self.replay)
        else:
            out = self.chunks
            self.remember(out)
        self.chunks = []
        self.size = 0
        return out

    def drop(self) -> None:
        """Let go of everything held: the exchange is over."""
        self.chunks = []
        self.whole = None
        self.size = 0
        self.replay = None
        self._replay_size = 0

    def remember(self, chunks: list[bytes]) -> None:
        """Keep the start of a streamed body for one safe retry."""
        if self.replay is None:
            return
        self.replay.extend(chunks)
        self._replay_size += sum(len(c) for c in chunks)
        if self._replay_size > REPLAY_LIMIT:
            self.replay = None


class ClientBody:
    """The client's body as its exchange handles it.

    Until a flow decides, chunks are held (``RequestBody``); then a buffering flow reads
    the body whole (``read``), a forwarding one streams it to its upstream (``stream_to``)
    and a WebSocket bridge takes the bytes as they come (``sink``). The body timeout's
    watch lives here too, and the client's read pause: the client is held back while what
    is held passes its bound or the upstream cannot take more, and a held-back client's
    silence is not the client's fault.
    """

    __slots__ = (
        "_held",
        "_loop",
        "_waiter",
        "_watch",
        "blocked",
        "conn",
        "ended",
        "sink",
        "streaming",
        "trailers",
    )

    def __init__(self, app: Services, conn: ClientStream, owner: BodyOwner) -> None:
        self.conn = conn
        self._loop = app.loop
        self._held = RequestBody()
        self._waiter: asyncio.Future[None] | None = None
        self._watch = BodyWatch(app.loop, app.budget, app.config.body_timeout, conn, owner)
        self.blocked = False
        self.sink: Callable[[bytes], None] | None = None  # a WebSocket bridge's
        self.streaming = False  # chunks go straight upstream
        self.ended = False
        self.trailers: Pairs = []

    # ------------------------------------------------------------ for the flows

    def watch(self, reserve: int = 0) -> None:
        """Time the body's silences (not a WebSocket's: its stream is a session); a
        buffering flow reserves its declared length in the buffer budget."""
        if not self.ended:
            self._watch.watch(reserve)

    async def read(self, limit: int) -> bytearray:
        """The whole body (a buffering flow); raises ``BodyTooLarge`` past ``limit``."""
        held = self._held
        held.buffer(limit)
        if held.over_limit:
            raise BodyTooLarge
        self.hold_client(False)  # held back while the route was undecided; read on now
        if not self.ended:
            self.conn.send_continue()
            self._waiter = self._loop.create_future()
            await self._waiter
        return held.take()

    def replayable(self, body: bytes | bytearray | None) -> bool:
        """The request is still in hand: buffered, or a streamed body within the replay
        limit (what a retry would send again)."""
        return body is not None or self._held.replay is not None

    def stream_to(self, upstream: Upstream) -> None:
        self.streaming = True
        for chunk in self._held.start_streaming():
            upstream.send_body(chunk)
        self._watch.release()  # streamed from here on: nothing is held for the budget
        if self.ended:
            upstream.send_end(self.trailers)
        else:
            self.conn.send_continue()
            self.hold_client(upstream.write_paused)

    def hold_client(self, block: bool) -> None:
        if block and not self.blocked:
            self.blocked = True
            self.conn.block_reading()
        elif not block and self.blocked:
            self.blocked = False
            self.conn.unblock_reading()

    # ------------------------------------------------------------ for the exchange

    def received(self, data: bytes, upstream: Upstream | None) -> None:
        if self.streaming:
            if upstream is not None:
                upstream.send_body(data)
            self._held.remember([data])
            return
        self._watch.received(len(data))
        if self._held.hold(data):
            # Over the buffering limit (too large), or the upstream is not attached yet
            # and a streamed body's first bytes fill the pending bound: hold the client.
            self.hold_client(True)
            waiter = self._waiter
            if self._held.limit is not None and waiter is not None and not waiter.done():
                waiter.set_exception(BodyTooLarge())

    def end(self, trailers: Pairs, upstream: Upstream | None) -> None:
        self.ended = True
        self.trailers = request_trailers(trailers) if trailers else trailers
        self._watch.ended()
        if self.streaming:
            if upstream is not None:
                upstream.send_end(self.trailers)
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def stop(self) -> None:
        """The exchange is over: the watch ends and what is held goes now. An exchange sits
        in reference cycles (its timers and this body call back into it), so it is freed by
        the cycle collector, which may not run for many requests; a body that was never
        read whole (timed out, refused, cut) must not wait for it."""
        self._watch.stop()
        self._held.drop()
