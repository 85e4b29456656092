"""A deliberately fast fake upstream for the proxy benchmark, run as its own process.

The proxy bench compares "through the proxy" with "direct to the same upstream", so the
upstream must cost far less per request than the proxy, or the ratio only measures the
upstream. Hence a raw ``asyncio.Protocol`` on uvloop, canned response bytes, a request-head
scan that looks only for the three headers it needs, request bodies counted and dropped
without being buffered, and downloads written from one reused buffer.

Routes (anything else is 404):

- ``GET /small`` → 200, 2-byte body (the keep-alive throughput and latency probe).
- ``GET /healthz`` → 200 ``{"ok":true}``.
- ``POST /sink...`` and ``POST /v1/...`` → reads and discards the body (Content-Length or
  chunked) and answers ``{"bytes":N}``, so a client can check every byte arrived.
- ``GET /download?bytes=N`` → N bytes with Content-Length, written under the transport's
  flow control (pauses while the socket buffer is full), so memory stays flat.
- ``GET /sse?delay_ms=D&events=K&keep=1`` → SSE headers at once, the first event after D ms,
  then K-1 more 1 ms apart; with ``keep=1`` the stream then stays open until the client
  leaves, otherwise it ends cleanly (chunked terminator) and the connection is reusable.

Start: ``python -m bench.fake_upstream [--listen 127.0.0.1:0]``; stdout gets
``{"event":"listening","addr":"HOST:PORT"}`` then ``{"event":"ready"}`` (the proxy's own
startup contract, so one reader serves both).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import cast
from urllib.parse import parse_qs

_SMALL = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
_HEALTH = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
)
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
_BAD = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
_SSE_EVENT = b'event: message\ndata: {"type":"ping","n":%d}\n\n'
_CHUNK = 256 * 1024
_FILL = memoryview(b"x" * _CHUNK)
_WRITES_PER_TURN = 32  # bounds one download callback so other connections get the loop
_MAX_HEAD = 64 * 1024
_MAX_EVENTS = 10_000


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class _ChunkedCounter:
    """Counts the payload bytes of a chunked body without keeping them."""

    def __init__(self) -> None:
        self.count = 0
        self.done = False
        self._left = 0  # payload bytes still due in the current chunk
        self._need_crlf = False
        self._trailers = False
        self._line = bytearray()

    def feed(self, data: memoryview) -> int:
        """Consume from ``data``; return how many bytes were used (the rest follows the body)."""
        pos, end = 0, len(data)
        while pos < end and not self.done:
            if self._left:
                take = min(self._left, end - pos)
                self.count += take
                self._left -= take
                pos += take
                self._need_crlf = self._left == 0
                continue
            nl = bytes(data[pos:end]).find(b"\n")
            if nl < 0:
                self._line += data[pos:end]
                if len(self._line) > 4096:
                    raise ValueError("chunk line too long")
                return end
            self._line += data[pos : pos + nl]
            pos += nl + 1
            line = bytes(self._line).rstrip(b"\r")
            self._line.clear()
            if self._need_crlf:
                self._need_crlf = False
                if line:
                    raise ValueError("missing CRLF after chunk")
            elif self._trailers:
                self.done = not line
            else:
                size = int(line.split(b";", 1)[0], 16)
                self._left = size
                self._trailers = size == 0
        return pos


class UpstreamProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False  # a response is in progress; later input waits in buf
        self.paused = False
        self.body_left = 0  # Content-Length bytes still to discard
        self.chunked: _ChunkedCounter | None = None
        self.body_count = 0
        self.download_left = 0
        self.timers: list[asyncio.TimerHandle] = []

    # ------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.set_write_buffer_limits(high=1 << 20)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()
        self.download_left = 0

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.download_left:
            self._pump()

    def data_received(self, data: bytes) -> None:
        if self.body_left or self.chunked:
            data = self._discard(memoryview(data))
            if not data:
                return
        self.buf += data
        self._serve()

    # ------------------------------------------------------------ request handling

    def _discard(self, data: memoryview) -> bytes:
        """Count body bytes; answer the sink once the body ends; return what follows it."""
        if self.chunked is not None:
            try:
                used = self.chunked.feed(data)
            except ValueError:
                self._fail()
                return b""
            if not self.chunked.done:
                return b""
            self.body_count = self.chunked.count
            self.chunked = None
        else:
            used = min(self.body_left, len(data))
            self.body_left -= used
            self.body_count += used
            if self.body_left:
                return b""
        self._answer_sink()
        return bytes(data[used:])

    def _answer_sink(self) -> None:
        body = b'{"bytes":%d}' % self.body_count
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        self.busy = False

    def _serve(self) -> None:
        """Answer every complete request head in ``buf`` (bounded by its length)."""
        while not self.busy and not (self.body_left or self.chunked):
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > _MAX_HEAD:
                    self._fail()
                return
            head = bytes(self.buf[:end])
            del self.buf[: end + 4]
            self._route(head)
            if (self.body_left or self.chunked) and self.buf:
                rest, self.buf = self.buf, bytearray()
                self.buf += self._discard(memoryview(rest))

    def _route(self, head: bytes) -> None:
        assert self.transport is not None
        line, _, fields = head.partition(b"\r\n")
        parts = line.split(b" ")
        if len(parts) != 3:
            self._fail()
            return
        method, target = parts[0], parts[1].decode("latin-1")
        path, _, query = target.partition("?")
        length, chunked = _body_framing(fields.lower())
        if method == b"POST" and (path.startswith("/sink") or path.startswith("/v1/")):
            self.busy = True
            self.body_count = 0
            if chunked:
                self.chunked = _ChunkedCounter()
            elif length:
                self.body_left = length
            else:
                self._answer_sink()
            return
        if length or chunked:  # a body on a route that ignores bodies: refuse, stay simple
            self._fail()
            return
        if method != b"GET":
            self.transport.write(_NOT_FOUND)
        elif path == "/small":
            self.transport.write(_SMALL)
        elif path == "/healthz":
            self.transport.write(_HEALTH)
        elif path == "/download":
            self._start_download(int(_arg(query, "bytes", "0")))
        elif path == "/sse":
            self._start_sse(query)
        else:
            self.transport.write(_NOT_FOUND)

    def _fail(self) -> None:
        assert self.transport is not None
        self.transport.write(_BAD)
        self.transport.close()
        self.busy = True

    # ------------------------------------------------------------ download

    def _start_download(self, size: int) -> None:
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % size
        )
        if size:
            self.busy = True
            self.download_left = size
            self._pump()

    def _pump(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        for _ in range(_WRITES_PER_TURN):
            if self.paused or not self.download_left:
                break
            n = min(_CHUNK, self.download_left)
            transport.write(_FILL[:n])
            self.download_left -= n
        if not self.download_left:
            self.busy = False
            self._serve()
        elif not self.paused:
            asyncio.get_running_loop().call_soon(self._pump)

    # ------------------------------------------------------------ server-sent events

    def _start_sse(self, query: str) -> None:
        assert self.transport is not None
        delay = float(_arg(query, "delay_ms", "0")) / 1000
        events = max(1, min(int(_arg(query, "events", "1")), _MAX_EVENTS))
        keep = _arg(query, "keep", "0") == "1"
        self.busy = True
        self.transport.write(_SSE_HEAD)
        loop = asyncio.get_running_loop()
        for n in range(events):
            self.timers.append(loop.call_later(delay + n / 1000, self._event, n, events, keep))

    def _event(self, n: int, events: int, keep: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(_chunk(_SSE_EVENT % n))
        if n == events - 1 and not keep:
            transport.write(b"0\r\n\r\n")
            self.timers.clear()
            self.busy = False
            self._serve()


def _body_framing(lower_fields: bytes) -> tuple[int, bool]:
    """(Content-Length, chunked?) from the lower-cased header block."""
    length = 0
    chunked = False
    for field in lower_fields.split(b"\r\n"):
        name, _, value = field.partition(b":")
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value
    return length, chunked


def _arg(query: str, name: str, default: str) -> str:
    return parse_qs(query).get(name, [default])[0]


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, host, port, backlog=4096)
    for sock in server.sockets:
        addr = sock.getsockname()
        print(json.dumps({"event": "listening", "addr": f"{addr[0]}:{addr[1]}"}), flush=True)
    print(json.dumps({"event": "ready"}), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fake_upstream")
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (default 127.0.0.1:0)")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    try:
        import uvloop
    except ImportError:
        print("fake_upstream: uvloop not installed, using asyncio", file=sys.stderr)
        asyncio.run(serve(host, int(port)))
    else:
        uvloop.run(serve(host, int(port)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
