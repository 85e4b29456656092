"""Playbook: the exchange core and its flows driven in memory, no sockets, virtual time.

A test scripts one whole exchange: the client's head and body chunks, what each upstream
leg the pool hands out answers (or how it fails), and how far time moves. The loop's clock
is virtual: with nothing else to do, the loop jumps straight to the next timer, so a 600 s
upstream timeout takes no wall time and timing never flakes.
"""

from __future__ import annotations

import asyncio
import io
import json
import selectors
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from headroom.config import Config
from headroom.log import Logger
from headroom.protocol.events import RequestHead, ResponseHead
from headroom.protocol.pool import ConnectError
from headroom.proxy.buffering import BufferBudget
from headroom.proxy.exchange import Exchange
from headroom.proxy.flows import route
from headroom.proxy.origins import Origin, Origins
from headroom.proxy.round_ledger import RoundLedger
from headroom.proxy.seams import Decision
from headroom.proxy.turns import TurnGate
from headroom.telemetry.stats import Stats
from headroom.values import parse_upstream


class _VirtualSelector(selectors.BaseSelector):
    """No descriptors are ever ready; waiting for ``timeout`` just moves the clock."""

    def __init__(self, clock: list[float]) -> None:
        self._clock = clock
        self._keys: dict[Any, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = selectors.SelectorKey(
            fileobj, fileobj if isinstance(fileobj, int) else fileobj.fileno(), events, data
        )
        self._keys[fileobj] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._keys.pop(fileobj)

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is None:
            raise AssertionError("the exchange waits for nothing: the playbook is stuck")
        self._clock[0] += timeout
        return []

    def get_map(self) -> Any:
        return self._keys

    def close(self) -> None:
        self._keys.clear()


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._clock = [1000.0]
        super().__init__(_VirtualSelector(self._clock))

    def time(self) -> float:
        return self._clock[0]


# ---------------------------------------------------------------- the client side


@dataclass
class FakeClient:
    """A client stream (HTTP/1.1 connection or HTTP/2 stream, as the core sees it)."""

    client_ip: str = "127.0.0.1"
    scheme: str = "http"
    must_close: bool = False
    closed: bool = False
    blocked: int = 0
    status: int | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    ended: bool = False
    aborted: bool = False
    finished: bool = False
    continues: int = 0

    def send_continue(self) -> None:
        self.continues += 1

    def send_head(
        self, status: int, headers: list[tuple[bytes, bytes]], reason: bytes = b""
    ) -> None:
        assert self.status is None, "two heads"
        self.status, self.headers = status, headers

    def send_body(self, data: bytes) -> None:
        assert self.status is not None and not self.ended
        self.body += data

    def send_end(self, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.ended = True

    def cork(self) -> None:
        pass

    def uncork(self) -> None:
        pass

    def block_reading(self) -> None:
        self.blocked += 1

    def unblock_reading(self) -> None:
        self.blocked -= 1

    def finish(self, exchange: Any) -> None:
        self.finished = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def header(self, name: bytes) -> bytes | None:
        return next((v for n, v in self.headers if n.lower() == name), None)


# ---------------------------------------------------------------- the upstream side

Script = Callable[["FakeLeg"], None]


@dataclass(frozen=True)
class AtHead:
    """A leg whose script runs as soon as the request head arrives (mid-body)."""

    script: Script


@dataclass
class FakeLeg:
    """One upstream connection or HTTP/2 stream. ``script`` runs when the request has been
    sent whole (or, with ``on_head=True``, as soon as its head is), on the next loop turn;
    it answers through ``respond``/``fail`` or leaves the request hanging."""

    loop: asyncio.AbstractEventLoop
    script: Script | None = None
    on_head: bool = False
    handler: Any = None
    head: tuple[bytes, bytes, list[tuple[bytes, bytes]]] | None = None
    body: bytearray = field(default_factory=bytearray)
    sent: list[bytes | bytearray] = field(default_factory=list)  # each send_body's object
    ended: bool = False
    aborted: bool = False
    write_paused: bool = False
    reading: bool = True

    def cork(self) -> None:
        pass

    def uncork(self) -> None:
        pass

    def send_head(self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.head = (method, target, headers)
        if self.on_head:
            self._run_script()

    def send_body(self, data: bytes | bytearray) -> None:
        self.body += data
        self.sent.append(data)

    def send_end(self, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.ended = True
        if not self.on_head:
            self._run_script()

    def _run_script(self) -> None:
        if self.script is not None:
            self.loop.call_soon(self.script, self)

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.aborted = True

    def set_reading(self, on: bool) -> None:
        self.reading = on

    # -------------------------------------------------------- what a script does

    def respond(
        self, status: int, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        if self.aborted:
            return
        headers = headers if headers is not None else [(b"content-length", str(len(body)).encode())]
        self.handler.on_response_head(ResponseHead(status, headers, b"", [n for n, _ in headers]))
        if body:
            self.handler.on_response_body(body)
        self.handler.on_response_end([])

    def head_only(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.handler.on_response_head(ResponseHead(status, headers, b"", [n for n, _ in headers]))

    def fail(self, message: str, retryable: bool = False) -> None:
        if not self.aborted:
            self.handler.on_upstream_error(message, retryable)


@dataclass
class FakePool:
    """Hands out the scripted legs in order (``"refuse"`` for a refused connect)."""

    loop: asyncio.AbstractEventLoop
    plan: list[Script | AtHead | str | None] = field(default_factory=list)
    legs: list[FakeLeg] = field(default_factory=list)
    released: list[FakeLeg] = field(default_factory=list)
    discarded: list[FakeLeg] = field(default_factory=list)
    reused: bool = False

    async def acquire(self) -> tuple[FakeLeg, bool]:
        if not self.plan:
            raise AssertionError("the exchange asked for more upstream legs than scripted")
        step = self.plan.pop(0)
        if step == "refuse":
            raise ConnectError("connection refused (scripted)")
        if isinstance(step, AtHead):
            leg = FakeLeg(self.loop, step.script, on_head=True)
        else:
            leg = FakeLeg(self.loop, step if callable(step) else None)
        self.legs.append(leg)
        return leg, self.reused

    async def connect(self, http1: bool = False) -> FakeLeg:
        leg, _ = await self.acquire()
        leg.on_head = True
        return leg

    def release(self, leg: FakeLeg) -> None:
        self.released.append(leg)

    def discard(self, leg: FakeLeg) -> None:
        self.discarded.append(leg)


class NoRoutes:
    def match(self, path: bytes) -> None:
        return None


async def unchanged(ex: Any, body: bytes) -> Decision:
    return Decision(body)


@dataclass
class Services:
    """The process, as the exchange sees it (``ProxyApp`` in production)."""

    loop: asyncio.AbstractEventLoop
    config: Config
    transform_request: Callable[[Any, bytes | bytearray], Awaitable[Decision]] = unchanged
    log_stream: io.BytesIO = field(default_factory=io.BytesIO)
    stats: Stats = field(default_factory=Stats)
    store: Any = None
    learner: Any = None
    rounds: RoundLedger | None = None
    draining: bool = False
    routes: Any = field(default_factory=NoRoutes)
    finished: list[Exchange] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.log = Logger("debug", self.log_stream)
        self.pool = FakePool(self.loop)
        origin = Origin("upstream", "http://upstream.test", b"upstream.test", b"", self.pool)  # type: ignore[arg-type]
        self.origins = Origins([origin])
        self.budget = BufferBudget(self.config.max_buffered_bytes, self.stats)
        self.turns = TurnGate(self.loop)
        self._done: dict[int, asyncio.Event] = {}

    def exchange_finished(self, exchange: Exchange) -> None:
        self.finished.append(exchange)
        self.done_event(exchange).set()

    def done_event(self, exchange: Exchange) -> asyncio.Event:
        return self._done.setdefault(id(exchange), asyncio.Event())

    def events(self, name: str) -> list[dict[str, Any]]:
        lines = self.log_stream.getvalue().decode().splitlines()
        return [e for e in map(json.loads, lines) if e["event"] == name]


class Playbook:
    """One scripted exchange at a time, on a fresh virtual loop."""

    def __init__(self, **config: Any) -> None:
        self.loop = VirtualLoop()
        settings = {"upstream": parse_upstream("http://upstream.test"), **config}
        self.app = Services(self.loop, Config(**settings))
        self.client = FakeClient()
        self.exchange: Exchange | None = None

    def close(self) -> None:
        self.loop.close()

    def __enter__(self) -> Playbook:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def now(self) -> float:
        return self.loop.time()

    def upstream(self, *steps: Script | AtHead | str | None) -> Playbook:
        self.app.pool.plan.extend(steps)
        return self

    def request(
        self,
        method: bytes = b"GET",
        target: bytes = b"/v1/thing",
        headers: list[tuple[bytes, bytes]] | None = None,
        body: list[bytes] | list[bytearray] | None = None,
        end: bool = True,
        client: FakeClient | None = None,
    ) -> Exchange:
        """The client's head, then each body chunk, then (``end``) the end of its body,
        delivered as one read would deliver them."""
        head = RequestHead(method, target, [(b"host", b"proxy.test"), *(headers or [])])
        exchange = Exchange(self.app, client or self.client, head)  # type: ignore[arg-type]
        exchange.launch(route(exchange))
        for chunk in body or []:
            exchange.on_body(chunk)
        if end:
            exchange.on_end([])
        self.exchange = exchange
        return exchange

    def run(self, seconds: float = 0.0) -> None:
        """Let the loop run until ``seconds`` of virtual time passed (0: until idle now)."""
        self.loop.run_until_complete(asyncio.sleep(seconds))

    def finish(self, exchange: Exchange | None = None, limit: float = 3600.0) -> Exchange:
        """Run until the exchange (the last one made by default) finished, bounded in
        virtual time."""
        exchange = exchange or self.exchange
        assert exchange is not None

        done = self.app.done_event(exchange)
        self.loop.run_until_complete(asyncio.wait_for(done.wait(), limit))
        return exchange
