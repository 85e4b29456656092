"""The client's request body on its way upstream, before and while it streams.

Until a flow decides, body chunks are held here: up to the flow's limit when it buffers
(past it the body is too large), up to ``MAX_PENDING_BODY`` while a streamed request
waits for its upstream (past it the client is paused, not refused). Once streaming, the
start of the body (up to ``REPLAY_LIMIT``) is kept, so a request the origin provably never
processed (refused stream, GOAWAY, stale pooled socket) can be sent once more.
"""

from __future__ import annotations

from headroom.protocol.limits import MAX_PENDING_BODY

# A streamed request body up to this size is kept until the answer starts; larger bodies
# are not replayable.
REPLAY_LIMIT = 64 * 1024


class RequestBody:
    __slots__ = ("_replay_size", "chunks", "limit", "replay", "size")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit: int | None = None  # the buffering flow's cap; None: not buffering
        self.replay: list[bytes] | None = []  # None once past REPLAY_LIMIT
        self._replay_size = 0

    def hold(self, data: bytes) -> bool:
        """Keep ``data`` until the flow takes it; True when that passes the bound."""
        self.chunks.append(data)
        self.size += len(data)
        return self.size > (self.limit if self.limit is not None else MAX_PENDING_BODY)

    @property
    def over_limit(self) -> bool:
        return self.limit is not None and self.size > self.limit

    def take(self) -> bytes:
        """The held body, whole; nothing is held afterwards."""
        body = b"".join(self.chunks)
        self.chunks.clear()
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

    def remember(self, chunks: list[bytes]) -> None:
        """Keep the start of a streamed body for one safe retry."""
        if self.replay is None:
            return
        self.replay.extend(chunks)
        self._replay_size += sum(len(c) for c in chunks)
        if self._replay_size > REPLAY_LIMIT:
            self.replay = None
