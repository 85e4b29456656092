"""A fake upstream on real sockets that records exactly what the proxy sent it.

It runs its own asyncio loop in a background thread so tests can drive the proxy with
blocking clients (httpx, curl, raw sockets) while it answers. Behaviour is chosen by the
first path segment that names one (``/echo``, ``/base/echo`` and ``/v1/x/echo`` all echo),
which keeps base-path tests and route tests on the same table. Every connection watches
its socket for EOF the whole time, so a test can see *when* the proxy let go of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import itertools
import json
import random
import socket
import ssl
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import h11

# One pattern block; streamed bodies are this block repeated, so any offset error shows.
PATTERN = random.Random(7).randbytes(65521)


def pattern(n: int) -> bytes:
    """The first ``n`` bytes of the endless pattern the ``/bytes`` behaviour streams."""
    reps, rest = divmod(n, len(PATTERN))
    return PATTERN * reps + PATTERN[:rest]


@dataclass
class ConnRecord:
    """One TCP connection the proxy opened to us."""

    id: int
    opened_at: float
    closed_at: float | None = None
    closed: threading.Event = field(default_factory=threading.Event)


@dataclass
class Recorded:
    """One request as it arrived on the wire (header names keep their case and order)."""

    conn: ConnRecord
    method: str
    target: str
    headers: list[tuple[str, str]]
    http_version: str
    received_at: float
    body: bytearray = field(default_factory=bytearray)
    complete: bool = False  # whole body arrived (EndOfMessage)
    trailers: list[tuple[str, str]] = field(default_factory=list)  # of a chunked body
    sent_times: list[float] = field(default_factory=list)  # monotonic, one per body send
    bytes_sent: int = 0
    client_gone_at: float | None = None  # EOF seen while this exchange was running

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def framing(self) -> str:
        """How the request body was framed: ``chunked``, ``content-length`` or ``none``."""
        if any(v.lower() == "chunked" for v in self.header_all("transfer-encoding")):
            return "chunked"
        return "content-length" if self.header("content-length") is not None else "none"

    def header(self, name: str) -> str | None:
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def names(self) -> list[str]:
        return [k.lower() for k, _ in self.headers]


class _Gone(Exception):
    """The proxy closed the connection under us."""


class Exchange:
    """What a behaviour sees: the recorded request plus ways to answer it."""

    def __init__(self, conn: _Conn, rec: Recorded) -> None:
        self.conn = conn
        self.rec = rec
        self.query = {k: v[-1] for k, v in parse_qs(urlsplit(rec.target).query).items()}
        self.segments = [s for s in rec.path.split("/") if s]

    def arg(self, name: str, default: int) -> int:
        return int(self.query.get(name, default))

    async def body(self) -> bytes:
        while not self.rec.complete:
            event = await self.conn.next_event()
            if isinstance(event, h11.Data):
                self.rec.body += event.data
            elif isinstance(event, h11.EndOfMessage):
                self.rec.complete = True
                self.rec.trailers = [(k.decode(), v.decode()) for k, v in event.headers.raw_items()]
            else:
                raise _Gone(f"body ended by {event!r}")
        return bytes(self.rec.body)

    async def start(self, status: int, headers: list[tuple[str, str]]) -> None:
        await self.conn.send(h11.Response(status_code=status, headers=headers))

    async def send(self, data: bytes) -> None:
        if self.rec.method != "HEAD":
            await self.conn.send(h11.Data(data=data))
            self.rec.bytes_sent += len(data)
        self.rec.sent_times.append(time.monotonic())

    async def end(self) -> None:
        await self.conn.send(h11.EndOfMessage())

    async def respond(
        self, status: int, body: bytes = b"", headers: list[tuple[str, str]] | None = None
    ) -> None:
        headers = list(headers or [])
        bodiless = status < 200 or status in (204, 304)
        if not bodiless and not any(k.lower() == "content-length" for k, _ in headers):
            headers.append(("Content-Length", str(len(body))))
        await self.start(status, headers)
        if body and not bodiless:
            await self.send(body)
        await self.end()

    async def pause(self, seconds: float) -> bool:
        """Sleep, but wake early when the proxy closes; False means it went away."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.conn.eof.wait(), seconds)
        if self.conn.eof.is_set():
            self.rec.client_gone_at = self.rec.client_gone_at or time.monotonic()
            return False
        return True

    def reset(self) -> None:
        """Abort with RST (SO_LINGER 0), the way a crashed or cut-off server looks."""
        self.conn.reset()


Behaviour = Callable[[Exchange], Awaitable[None]]


async def _echo(x: Exchange) -> None:
    body = await x.body()
    ctype = x.rec.header("content-type") or "application/octet-stream"
    await x.respond(
        200,
        body,
        [("Content-Type", ctype), ("X-Method", x.rec.method), ("X-Body-Length", str(len(body)))],
    )


async def _status(x: Exchange) -> None:
    await x.body()
    code = int(x.segments[x.segments.index("status") + 1])
    await x.respond(code, f"status-{code}".encode(), [("Content-Type", "text/plain")])


async def _nobody(x: Exchange) -> None:
    await x.body()
    code = int(x.segments[x.segments.index("nobody") + 1])
    await x.respond(code, b"", [("X-Nobody", str(code))])


async def _not_modified(x: Exchange) -> None:
    await x.body()
    await x.respond(304, b"", [("ETag", '"v1"')])


async def _sse(x: Exchange) -> None:
    await x.body()
    n, gap = x.arg("n", 10), x.arg("gap_ms", 100) / 1000
    await x.start(200, [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])
    first = x.arg("first_ms", 0) / 1000
    if first and not await x.pause(first):
        return
    for i in range(n):
        if i and not await x.pause(gap):
            return
        await x.send(f"data: event-{i}\n\n".encode())
    await x.end()


async def _bytes(x: Exchange) -> None:
    """``n`` pattern bytes in blocks, Content-Length with ``cl=1``, chunked otherwise."""
    await x.body()
    n, gap = x.arg("n", 1024), x.arg("gap_ms", 0) / 1000
    headers = [("Content-Type", "application/octet-stream")]
    if x.arg("cl", 0):
        headers.append(("Content-Length", str(n)))
    await x.start(200, headers)
    sent = 0
    while sent < n:
        block = PATTERN[: min(len(PATTERN), n - sent)]
        await x.send(block)
        sent += len(block)
        if gap and not await x.pause(gap):
            return
    await x.end()


async def _slow(x: Exchange) -> None:
    await x.body()
    if await x.pause(x.arg("delay_ms", 500) / 1000):
        await x.respond(200, b"slow", [("Content-Type", "text/plain")])


async def _hang(x: Exchange) -> None:
    await x.pause(3600)


async def _reset_mid_body(x: Exchange) -> None:
    """Headers and part of the body, then RST (or a plain FIN with ``fin=1``): either way
    the body is cut short, and the client must never see a clean end."""
    await x.body()
    n = x.arg("n", 100_000)
    headers = [("Content-Type", "application/octet-stream")]
    if not x.arg("chunked", 0):
        headers.append(("Content-Length", str(n)))
    await x.start(200, headers)
    await x.send(pattern(n // 2))
    await x.pause(0.1)
    if x.arg("fin", 0):
        x.conn.writer.close()
    else:
        x.reset()


async def _close_delimited(x: Exchange) -> None:
    """An old-style response framed by closing the connection (no length, not chunked):
    a complete body whose end is the FIN, which is not an error."""
    await x.body()
    n = x.arg("n", 100_000)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
    x.conn.writer.write(head + pattern(n))
    await x.conn.writer.drain()
    x.conn.writer.close()


async def _overlong(x: Exchange) -> None:
    """A body longer than its Content-Length, the connection then left open: the extra
    bytes would be read as the next response if the connection were reused."""
    await x.body()
    n = x.arg("n", 100)
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n".encode()
    junk = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nforgd"
    late = x.arg("late_ms", 0) / 1000
    x.conn.writer.write(head + pattern(n) + (b"" if late else junk))
    if late and await x.pause(late):
        x.conn.writer.write(junk)  # arrives while the connection sits idle in a pool
    await x.conn.writer.drain()
    await x.pause(3)


async def _encoded(x: Exchange) -> None:
    """A gzip body with Content-Encoding: the proxy must relay the compressed bytes."""
    await x.body()
    body = gzip.compress(pattern(x.arg("n", 50_000)), mtime=0)
    await x.respond(
        200, body, [("Content-Type", "application/octet-stream"), ("Content-Encoding", "gzip")]
    )


async def _redirect(x: Exchange) -> None:
    await x.body()
    location = x.query.get("to", "/elsewhere")
    await x.respond(302, b"moved", [("Location", location), ("Content-Type", "text/plain")])


async def _healthz(x: Exchange) -> None:
    await x.body()
    server = x.conn.server
    if server.health_hang:
        await x.pause(3600)
        return
    ok = 200 <= server.health_status < 300
    body = json.dumps({"ok": ok}).encode()
    await x.respond(server.health_status, body, [("Content-Type", "application/json")])


async def _headers(x: Exchange) -> None:
    """Repeated headers, upstream request ids and hop-by-hop headers, in a fixed order."""
    await x.body()
    headers = [
        ("Content-Type", "text/plain"),
        ("X-Multi", "a"),
        ("X-Other", "1"),
        ("Set-Cookie", "a=1"),
        ("X-Multi", "b"),
        ("Set-Cookie", "b=2"),
        ("Connection", "X-Hop-Resp, Keep-Alive"),
        ("Keep-Alive", "timeout=5"),
        ("X-Hop-Resp", "drop-me"),
        ("Proxy-Authenticate", "Basic realm=x"),
        ("X-Multi", "c"),
    ]
    if "rid" in x.query:
        headers.append(("request-id", x.query["rid"]))
    if "xrid" in x.query:
        headers.append(("x-request-id", x.query["xrid"]))
    await x.respond(200, b"headers", headers)


async def _upload(x: Exchange) -> None:
    """Optionally wait before reading (to test backpressure), then digest the body."""
    pause_ms = x.arg("pause_ms", 0)
    if pause_ms and not await x.pause(pause_ms / 1000):
        return
    body = await x.body()
    digest = {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    await x.respond(200, json.dumps(digest).encode(), [("Content-Type", "application/json")])


async def _early(x: Exchange) -> None:
    """Answer without reading the request body (as an API does for a body it refuses)."""
    code = x.arg("status", 413)
    await x.respond(
        code, b"refused early", [("Content-Type", "text/plain"), ("Connection", "close")]
    )


async def _hints(x: Exchange) -> None:
    """A 103 Early Hints before the real answer."""
    await x.body()
    await x.conn.send(
        h11.InformationalResponse(status_code=103, headers=[("Link", "</a.css>; rel=preload")])
    )
    await x.respond(200, b"after hints", [("Content-Type", "text/plain")])


async def _close(x: Exchange) -> None:
    await x.body()
    await x.respond(200, b"bye", [("Connection", "close")])


BEHAVIOURS: dict[str, Behaviour] = {
    "echo": _echo,
    "status": _status,
    "nobody": _nobody,
    "304": _not_modified,
    "sse": _sse,
    "bytes": _bytes,
    "slow": _slow,
    "hang": _hang,
    "reset-mid-body": _reset_mid_body,
    "close-delimited": _close_delimited,
    "encoded": _encoded,
    "overlong": _overlong,
    "redirect": _redirect,
    "healthz": _healthz,
    "headers": _headers,
    "upload": _upload,
    "close": _close,
    "early": _early,
    "hints": _hints,
}


def _behaviour_for(path: str) -> Behaviour:
    for segment in path.split("/"):
        if segment in BEHAVIOURS:
            return BEHAVIOURS[segment]
    return _echo


_READ_AHEAD = 256 * 1024


class _Conn:
    """One accepted connection: a reader task feeds h11 and notices EOF at any time."""

    def __init__(
        self,
        server: FakeUpstream,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        record: ConnRecord,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.record = record
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=256 * 1024)
        self.data_ready = asyncio.Event()
        self.eof = asyncio.Event()
        self.consumed = asyncio.Event()
        self.aborted = False

    async def pump(self) -> None:
        try:
            while True:
                # Stop reading while a behaviour leaves the body unread, so the proxy
                # meets real TCP backpressure instead of an unbounded buffer here.
                while len(self.h11.trailing_data[0]) > _READ_AHEAD and not self.aborted:
                    self.consumed.clear()
                    await self.consumed.wait()
                data = await self.reader.read(65536)
                if not data:
                    break
                self.h11.receive_data(data)
                self.data_ready.set()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(RuntimeError):
                self.h11.receive_data(b"")
            self.record.closed_at = time.monotonic()
            self.record.closed.set()
            self.eof.set()
            self.data_ready.set()

    async def next_event(self) -> object:
        while True:
            self.data_ready.clear()
            event = self.h11.next_event()
            self.consumed.set()
            if event is not h11.NEED_DATA:
                return event
            if self.eof.is_set():
                raise _Gone("EOF while waiting for data")
            await self.data_ready.wait()

    async def send(self, event: object) -> None:
        data = self.h11.send(event)
        if self.eof.is_set() or self.writer.is_closing():
            raise _Gone("proxy went away")
        if data:
            self.writer.write(data)
            try:
                await self.writer.drain()
            except (ConnectionError, OSError) as exc:
                raise _Gone(str(exc)) from None

    def reset(self) -> None:
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def serve(self) -> None:
        pump = asyncio.create_task(self.pump())
        try:
            while await self._one_exchange():
                self.h11.start_next_cycle()
        except (_Gone, h11.ProtocolError):
            pass
        finally:
            pump.cancel()
            self.writer.close()

    async def _one_exchange(self) -> bool:
        """Serve one request; True when the connection can carry another."""
        event = await self._next_request()
        if event is None:
            return False
        rec = Recorded(
            conn=self.record,
            method=event.method.decode(),
            target=event.target.decode("latin-1"),
            headers=[
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers.raw_items()
            ],
            http_version=event.http_version.decode(),
            received_at=time.monotonic(),
        )
        self.server.add(rec)
        await self.handle(Exchange(self, rec))
        if self.eof.is_set() and rec.client_gone_at is None:
            rec.client_gone_at = time.monotonic()
        return self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE

    async def handle(self, x: Exchange) -> None:
        """Answer one recorded request; subclasses swap the behaviour table."""
        await _behaviour_for(x.rec.path)(x)

    async def _next_request(self) -> h11.Request | None:
        idle = self.server.keepalive_timeout
        try:
            event = await asyncio.wait_for(self.next_event(), idle)
        except TimeoutError:
            return None
        return event if isinstance(event, h11.Request) else None


class FakeUpstream:
    """Start with ``start()``; ``url`` is its origin; ``requests`` what it received."""

    conn_class: type[_Conn] = _Conn  # a subclass may serve other routes (llm_upstream)

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.port = 0
        self.requests: list[Recorded] = []
        self.connections: list[ConnRecord] = []
        self.sni_names: list[str | None] = []
        self.health_status = 200
        self.health_hang = False
        self.keepalive_timeout: float | None = None  # idle seconds before we close; None = never
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name="fake-upstream"
        )
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._conn_ids = itertools.count(1)  # never reset: ids stay unique across clear()
        self._conns: set[_Conn] = set()
        if tls is not None:
            tls.sni_callback = self._on_sni

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> FakeUpstream:
        self._thread.start()
        self._server = self._run(
            asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self.tls, backlog=512)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for conn in list(self._conns):
                conn.aborted = True
                conn.consumed.set()
                conn.writer.transport.abort()
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=2)

        if self._server is not None:
            self._run(shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def clear(self) -> None:
        """Forget what was recorded and restore the default knobs (between tests)."""
        with self._lock:
            self.requests.clear()
            self.connections.clear()
            self.sni_names.clear()
        self.health_status = 200
        self.health_hang = False
        self.keepalive_timeout = None

    def add(self, rec: Recorded) -> None:
        with self._changed:
            self.requests.append(rec)
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[Recorded], bool], timeout: float = 5.0) -> Recorded:
        """The first recorded request matching ``predicate``, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for rec in self.requests:
                    if predicate(rec):
                        return rec
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(r.method, r.target) for r in self.requests]
                    raise TimeoutError(f"no matching request within {timeout}s; saw {seen}")
                self._changed.wait(left)

    def wait_path(self, path: str, timeout: float = 5.0) -> Recorded:
        return self.wait_for(lambda r: r.path == path, timeout)

    def only(self) -> Recorded:
        """The single request received; fails loudly if there were none or several."""
        with self._lock:
            got = list(self.requests)
        assert len(got) == 1, [(r.method, r.target) for r in got]
        return got[0]

    def _run(self, coro: Awaitable[object]) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    def _on_sni(self, _sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        self.sni_names.append(name)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            record = ConnRecord(id=next(self._conn_ids), opened_at=time.monotonic())
            self.connections.append(record)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        conn = self.conn_class(self, reader, writer, record)
        self._conns.add(conn)
        try:
            await conn.serve()
        finally:
            self._conns.discard(conn)
            self._tasks.discard(task)  # type: ignore[arg-type]


def free_port() -> int:
    """A port nothing listens on (bound, then released): connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BlackHole:
    """A listener whose accept queue is full, so new connects hang in SYN retries:
    the only local way to make a TCP connect time out."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self._fillers: list[socket.socket] = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", self.port))
            self._fillers.append(filler)
        time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        for sock in [*self._fillers, self.sock]:
            sock.close()


@contextlib.contextmanager
def serving(*servers: FakeUpstream) -> Iterator[None]:
    """Start ``servers`` for a fixture; every one that started is stopped when the block
    ends, however it ends."""
    started: list[FakeUpstream] = []
    try:
        for server in servers:
            started.append(server.start())
        yield
    finally:
        for server in started:
            server.stop()
