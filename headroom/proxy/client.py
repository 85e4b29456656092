"""A small one-shot HTTP client over the upstream pool, for requests the proxy makes itself
(the upstream health probe now; the retrieval loop's follow-up calls later)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from headroom.protocol.events import Informational, ResponseHead
from headroom.protocol.pool import UpstreamPool


@dataclass
class Fetched:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass
class _Collector:
    done: asyncio.Future[Fetched]
    head: ResponseHead | None = None
    chunks: list[bytes] = field(default_factory=list)

    def on_response_head(self, head: ResponseHead) -> None:
        self.head = head

    def on_response_body(self, data: bytes) -> None:
        self.chunks.append(data)

    def on_response_end(self, trailers: list[tuple[bytes, bytes]]) -> None:
        if self.head is not None and not self.done.done():
            self.done.set_result(
                Fetched(self.head.status, self.head.headers, b"".join(self.chunks))
            )

    def on_upstream_error(self, message: str, retryable: bool = False) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(message))

    def on_upstream_writable(self, writable: bool) -> None:
        pass

    def on_response_batch(self, start: bool) -> None:
        pass

    def on_informational(self, event: Informational) -> None:
        pass


async def fetch(
    pool: UpstreamPool,
    method: bytes,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    timeout: float,
) -> Fetched:
    """Raises ConnectError/ConnectTimeout (pool), TimeoutError, or ConnectionError."""
    conn = None
    ok = False
    try:
        async with asyncio.timeout(timeout):
            conn, _ = await pool.acquire()
            collector = _Collector(asyncio.get_running_loop().create_future())
            conn.handler = collector
            has_length = any(name.lower() == b"content-length" for name, _ in headers)
            framing = (
                [] if has_length or not body else [(b"content-length", str(len(body)).encode())]
            )
            conn.cork()
            conn.send_head(method, target, [*headers, *framing])
            if body:
                conn.send_body(body)
            conn.send_end()
            conn.uncork()
            result = await collector.done
            ok = True
            return result
    finally:
        if conn is not None:
            if ok:
                pool.release(conn)
            else:
                pool.discard(conn)
