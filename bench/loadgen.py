"""Raw-socket clients for the proxy bench: the parts ``wrk`` cannot measure.

``wrk`` (C, multi-threaded) drives the throughput rows. The rows here need something else:
per-request latency on one quiet keep-alive connection (``perf_counter_ns`` around a blocking
``sendall``/``recv_into`` pair, nothing between them but a header scan), byte-counted 1 GiB
transfers written from and read into reused buffers (so the client allocates nothing per
chunk), the time to the first SSE event byte, and many idle SSE streams held open at once.
Plain sockets keep the client's own cost small and identical on the direct and proxied runs.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

_READ = 256 * 1024
_MAX_HEAD = 64 * 1024


class BenchError(RuntimeError):
    """A transfer that did not complete as expected (wrong status, short body, timeout)."""


@dataclass(frozen=True)
class Addr:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Addr:
        host, _, port = text.rpartition(":")
        return cls(host.strip("[]"), int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def connect(addr: Addr, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection((addr.host, addr.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def request_head(method: str, path: str, addr: Addr, extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}\r\n".encode("latin-1")


class Reader:
    """Reads HTTP/1.1 responses off one keep-alive socket; leftover bytes carry over."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.scratch = bytearray(_READ)
        self.view = memoryview(self.scratch)

    def fill(self) -> None:
        n = self.sock.recv_into(self.scratch)
        if not n:
            raise BenchError("connection closed mid-response")
        self.buf += self.view[:n]

    def head(self) -> tuple[int, bytes]:
        """(status, lower-cased header block); the head is removed from the buffer."""
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self.buf) > _MAX_HEAD:
                raise BenchError("response head too large")
            self.fill()
        head = bytes(self.buf[:end])
        del self.buf[: end + 4]
        status = int(head[9:12])
        return status, head.lower()

    def body(self, fields: bytes) -> int:
        """Read and drop a Content-Length or chunked body; return its payload size."""
        length = _content_length(fields)
        if length is not None:
            return self._drop(length)
        if b"transfer-encoding: chunked" in fields:
            return self._chunked()
        raise BenchError("response without Content-Length or chunked framing")

    def _drop(self, length: int) -> int:
        have = min(len(self.buf), length)
        del self.buf[:have]
        left = length - have
        while left:
            n = self.sock.recv_into(self.scratch, min(left, _READ))
            if not n:
                raise BenchError(f"connection closed with {left} body bytes missing")
            left -= n
        return length

    def _line(self) -> bytes:
        while (nl := self.buf.find(b"\r\n")) < 0:
            self.fill()
        line = bytes(self.buf[:nl])
        del self.buf[: nl + 2]
        return line

    def _chunked(self) -> int:
        total = 0
        for _ in range(10_000_000):  # chunk count bound
            size = int(self._line().split(b";", 1)[0], 16)
            if size == 0:
                while self._line():  # trailers end at an empty line
                    pass
                return total
            total += self._drop(size)
            if self._line():
                raise BenchError("chunk not followed by CRLF")
        raise BenchError("too many chunks")

    def small_body(self, fields: bytes, limit: int = 65536) -> bytes:
        """Read a short Content-Length body and return it."""
        length = _content_length(fields)
        if length is None or length > limit:
            raise BenchError(f"expected a short Content-Length body, got {length}")
        while len(self.buf) < length:
            self.fill()
        body = bytes(self.buf[:length])
        del self.buf[:length]
        return body

    def response(self) -> tuple[int, int]:
        status, fields = self.head()
        return status, self.body(fields)


def _content_length(fields: bytes) -> int | None:
    i = fields.find(b"\r\ncontent-length:")
    if i < 0:
        return None
    end = fields.find(b"\r\n", i + 2)
    return int(fields[i + 17 : end if end >= 0 else None])


# ------------------------------------------------------------------ measurements


def _interleaved(
    addrs: list[Addr], count: int, warmup: int, probe: Callable[[Reader, Addr], int]
) -> list[list[int]]:
    """One keep-alive connection per address, probed in turn (A, B, A, B, ...), so every
    series sees the same background load on a shared machine; warm-up rounds are dropped."""
    out: list[list[int]] = [[] for _ in addrs]
    with ExitStack() as stack:
        readers = [Reader(stack.enter_context(connect(a))) for a in addrs]
        for i in range(warmup + count):
            for series, reader, addr in zip(out, readers, addrs, strict=True):
                sample = probe(reader, addr)
                if i >= warmup:
                    series.append(sample)
    return out


def latencies_ns(addrs: list[Addr], path: str, count: int, warmup: int = 200) -> list[list[int]]:
    """Sequential GET round trips (send to last response byte), one series per address."""

    def probe(reader: Reader, addr: Addr) -> int:
        req = request_head("GET", path, addr)
        t0 = time.perf_counter_ns()
        reader.sock.sendall(req)
        status, _ = reader.response()
        t1 = time.perf_counter_ns()
        if status != 200:
            raise BenchError(f"GET {path} via {addr}: status {status}")
        return t1 - t0

    return _interleaved(addrs, count, warmup, probe)


def percentile(values: list[int] | list[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return float(ordered[k])


def download(addr: Addr, size: int) -> float:
    """GET ``size`` streamed bytes; return seconds from request to last byte."""
    with connect(addr, timeout=30) as sock:
        reader = Reader(sock)
        t0 = time.perf_counter()
        sock.sendall(request_head("GET", f"/download?bytes={size}", addr))
        status, fields = reader.head()
        if status != 200:
            raise BenchError(f"download via {addr}: status {status}")
        got = reader.body(fields)
        elapsed = time.perf_counter() - t0
    if got != size:
        raise BenchError(f"download via {addr}: {got} of {size} bytes")
    return elapsed


def upload(
    addr: Addr, path: str, size: int, content_type: str = "application/octet-stream"
) -> float:
    """POST ``size`` bytes with Content-Length; return seconds until the sink's answer,
    after checking the sink counted every byte."""
    fill = memoryview(b"x" * min(size, 1 << 20))
    extra = f"Content-Type: {content_type}\r\nContent-Length: {size}\r\n"
    with connect(addr, timeout=30) as sock:
        reader = Reader(sock)
        t0 = time.perf_counter()
        sock.sendall(request_head("POST", path, addr, extra))
        left = size
        while left:
            n = min(left, len(fill))
            sock.sendall(fill[:n])
            left -= n
        status, fields = reader.head()
        answer = reader.small_body(fields)
        elapsed = time.perf_counter() - t0
    if status != 200 or answer != b'{"bytes":%d}' % size:
        raise BenchError(f"upload via {addr}: status {status}, sink said {answer[:80]!r}")
    return elapsed


def keepalive_check(addr: Addr, path: str, body: bytes, count: int = 3) -> str:
    """POST ``body`` ``count`` times on one connection; "" if every answer came back within
    3 s, else what went wrong. wrk hides a stalled keep-alive connection in a short run (it
    counts a timeout only after its own timeout), so throughput rows ask this first."""
    extra = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    try:
        with connect(addr, timeout=3) as sock:
            reader = Reader(sock)
            for i in range(count):
                sock.sendall(request_head("POST", path, addr, extra) + body)
                try:
                    status, _ = reader.response()
                except TimeoutError:
                    return f"request {i + 1} of {count} on one keep-alive connection stalled"
                if status != 200:
                    return f"request {i + 1} on one keep-alive connection got {status}"
    except (OSError, BenchError) as exc:
        return f"keep-alive POST failed: {exc!r}"
    return ""


def first_event_ns(addrs: list[Addr], delay_ms: int, count: int) -> list[list[int]]:
    """Time from sending an SSE request to the first body byte (the event the upstream sends
    ``delay_ms`` after the headers), one series per address; each stream ends after it."""

    def probe(reader: Reader, addr: Addr) -> int:
        req = request_head("GET", f"/sse?delay_ms={delay_ms}&events=1", addr)
        t0 = time.perf_counter_ns()
        reader.sock.sendall(req)
        status, fields = reader.head()
        while not reader.buf:
            reader.fill()
        t1 = time.perf_counter_ns()
        if status != 200:
            raise BenchError(f"SSE via {addr}: status {status}")
        reader.body(fields)
        return t1 - t0

    return _interleaved(addrs, count, 2, probe)


async def _open_stream(addr: Addr, timeout: float) -> asyncio.StreamWriter:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(addr.host, addr.port), timeout)
    writer.write(request_head("GET", "/sse?delay_ms=0&keep=1", addr))
    await asyncio.wait_for(reader.readuntil(b"data:"), timeout)
    return writer


async def hold_streams(
    addr: Addr, count: int, batch: int = 100, timeout: float = 10.0
) -> list[asyncio.StreamWriter]:
    """Open ``count`` SSE streams (each has delivered its first event) and return their
    writers; the caller measures, then closes them with ``close_streams``."""
    writers: list[asyncio.StreamWriter] = []
    try:
        for start in range(0, count, batch):
            n = min(batch, count - start)
            got = await asyncio.gather(
                *(_open_stream(addr, timeout) for _ in range(n)), return_exceptions=True
            )
            errors = [g for g in got if isinstance(g, BaseException)]
            writers += [g for g in got if not isinstance(g, BaseException)]
            if errors:
                raise BenchError(f"{len(errors)} of {n} SSE streams failed: {errors[0]!r}")
    except BaseException:
        await close_streams(writers)
        raise
    return writers


async def close_streams(writers: list[asyncio.StreamWriter]) -> None:
    for w in writers:
        w.close()
    await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)
