"""Connections to one upstream origin: keep-alive HTTP/1.1, or multiplexed HTTP/2.

HTTP/1.1: bounded by the number of idle connections kept; each idle connection has its own
expiry timer (cancelled when it is reused), so an origin that silently drops idle sockets
after N seconds is never handed a connection older than ``idle_timeout``. Reuse is LIFO: the
most recently used socket is the one least likely to have been closed by the peer.

HTTP/2 (``http2="auto"`` offers it over TLS with ALPN; ``"prior-knowledge"`` speaks h2c to
an http origin): the first connection that negotiates h2 makes the pool hand out streams on
a few shared connections instead, opening another only when all are at the peer's stream
limit. A WebSocket needs a connection of its own, so ``connect(http1=True)`` never offers h2.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from pathlib import Path
from typing import Any

from headroom.protocol.h2_client import H2Upstream, UpstreamStream
from headroom.protocol.upstream import UpstreamConnection


class ConnectFailed(Exception):
    """No upstream connection; carries the status and error type the client is answered."""

    status = 502
    error_type = "upstream_connect_error"


class ConnectError(ConnectFailed):
    """TCP or TLS connect failed (refused, DNS, certificate)."""


class ConnectTimeout(ConnectFailed):
    """No connection within the connect timeout."""

    status = 504
    error_type = "upstream_connect_timeout"


def client_tls_context(extra_ca: Path | None, alpn: list[str] | None = None) -> ssl.SSLContext:
    """System CAs plus an optional private CA. Verification is never turned off."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if extra_ca is not None:
        ctx.load_verify_locations(cafile=str(extra_ca))
    ctx.set_alpn_protocols(alpn or ["http/1.1"])
    return ctx


Upstream = UpstreamConnection | UpstreamStream


class _ChooseByALPN(asyncio.Protocol):
    """Becomes HTTP/2 or HTTP/1.1 once TLS says which the origin picked, before any byte of
    the response protocol arrives (``connection_made`` runs after the handshake)."""

    def __init__(self, make_h2: Any) -> None:
        self._make_h2 = make_h2
        self.chosen: asyncio.Protocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        self.chosen = self._make_h2() if alpn == "h2" else UpstreamConnection()
        transport.set_protocol(self.chosen)
        self.chosen.connection_made(transport)

    def data_received(self, data: bytes) -> None:  # only before set_protocol took effect
        assert self.chosen is not None
        self.chosen.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.chosen is not None:
            self.chosen.connection_lost(exc)


class UpstreamPool:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: ssl.SSLContext | None,
        connect_timeout: float,
        max_idle: int,
        idle_timeout: float,
        http2: str = "off",
        authority: bytes = b"",
        extra_ca: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.http2 = http2
        self.authority = authority or host.encode("ascii")
        self.scheme = b"https" if tls is not None else b"http"
        self._h1_tls = tls
        self._offer_tls = (
            client_tls_context(extra_ca, ["h2", "http/1.1"])
            if tls is not None and http2 == "auto"
            else tls
        )
        self._idle: list[UpstreamConnection] = []
        self._h2: list[H2Upstream] = []
        self._h2_connecting: asyncio.Future[H2Upstream] | None = None
        self.speaks_h2 = http2 == "prior-knowledge"
        # With ALPN on offer, the first connection tells which protocol the origin speaks;
        # requests arriving meanwhile wait for that answer instead of each opening a socket.
        self._learning: asyncio.Future[bool] | None = None
        self._learned = self.http2 != "auto" or tls is None
        self.opened = 0
        self.reused = 0

    async def acquire(self) -> tuple[Upstream, bool]:
        """A connection (or an HTTP/2 stream) and whether it rode on an existing one."""
        if self.speaks_h2:
            return await self._stream()
        if not self._learned:
            if self._learning is not None:
                await asyncio.shield(self._learning)
                return await self.acquire()
            return await self._learn()
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.idle_timer is not None:
                conn.idle_timer.cancel()
                conn.idle_timer = None
            if not conn.closed:
                self.reused += 1
                return conn, True
        return await self.connect(), False

    async def _learn(self) -> tuple[Upstream, bool]:
        """Open the first connection and remember whether the origin chose h2."""
        waiter = self._learning = asyncio.get_running_loop().create_future()
        try:
            conn = await self.connect()
        except BaseException:
            self._learning = None
            waiter.set_result(False)  # waiters retry and connect themselves
            raise
        if isinstance(conn, H2Upstream):
            await self._settled(conn)
        self._learned = True
        self._learning = None
        if isinstance(conn, H2Upstream):
            self.speaks_h2 = True
            self._h2.append(conn)
            waiter.set_result(True)
            return conn.open_stream(), False
        waiter.set_result(False)
        return conn, False

    async def _stream(self) -> tuple[UpstreamStream, bool]:
        for conn in self._h2:
            if conn.capacity > 0:
                self.reused += 1
                return conn.open_stream(), True
        if self._h2_connecting is None:
            self._h2_connecting = asyncio.get_running_loop().create_future()
            try:
                conn = await self.connect()
            except BaseException as exc:
                self._h2_connecting.set_exception(exc)
                self._h2_connecting.exception()  # retrieved: later waiters re-raise it
                self._h2_connecting = None
                raise
            if isinstance(conn, H2Upstream):
                await self._settled(conn)
            waiter, self._h2_connecting = self._h2_connecting, None
            if not isinstance(conn, H2Upstream):
                waiter.set_exception(ConnectError("origin stopped offering HTTP/2"))
                conn.abort()
                raise ConnectError("origin stopped offering HTTP/2")
            self._h2.append(conn)
            waiter.set_result(conn)
            return conn.open_stream(), False
        await asyncio.shield(self._h2_connecting)
        return await self._stream()

    async def connect(self, http1: bool = False) -> Any:
        """A new connection: ``UpstreamConnection`` or, when h2 is spoken, ``H2Upstream``."""
        loop = asyncio.get_running_loop()
        tls = self._h1_tls if http1 else self._offer_tls
        if not http1 and self.http2 == "prior-knowledge":
            factory: Any = self._new_h2
        elif not http1 and tls is not None and self.http2 == "auto":
            factory = lambda: _ChooseByALPN(self._new_h2)  # noqa: E731
        else:
            factory = UpstreamConnection
        try:
            async with asyncio.timeout(self.connect_timeout):
                transport, proto = await loop.create_connection(
                    factory,
                    self.host,
                    self.port,
                    ssl=tls,
                    server_hostname=self.host if tls is not None else None,
                )
        except TimeoutError:
            raise ConnectTimeout(
                f"no connection to {self.host}:{self.port} within {self.connect_timeout:g}s"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.opened += 1
        return proto.chosen if isinstance(proto, _ChooseByALPN) else proto

    async def _settled(self, conn: H2Upstream) -> None:
        """Wait for the new connection's SETTINGS (its stream limit) before using it."""
        try:
            async with asyncio.timeout(self.connect_timeout):
                await conn.ready
        except (TimeoutError, ConnectionError) as exc:
            conn.abort()
            raise ConnectError(f"no HTTP/2 SETTINGS from {self.host}:{self.port}: {exc}") from None

    def _new_h2(self) -> H2Upstream:
        return H2Upstream(self.scheme, self.authority, self._retired, self.idle_timeout)

    def _retired(self, conn: H2Upstream) -> None:
        if conn in self._h2:
            self._h2.remove(conn)

    def release(self, conn: Upstream) -> None:
        """Return a connection after its exchange; kept only if it ended cleanly."""
        if not conn.release() or not isinstance(conn, UpstreamConnection):
            return
        if len(self._idle) >= self.max_idle:
            conn.abort()
            return
        loop = asyncio.get_running_loop()
        conn.idle_timer = loop.call_later(self.idle_timeout, self._expire, conn)
        self._idle.append(conn)

    def discard(self, conn: Upstream) -> None:
        conn.abort()

    def _expire(self, conn: UpstreamConnection) -> None:
        conn.idle_timer = None
        if conn in self._idle:
            self._idle.remove(conn)
        conn.abort()

    def close(self) -> None:
        for conn in self._idle:
            if conn.idle_timer is not None:
                conn.idle_timer.cancel()
            conn.abort()
        self._idle.clear()
        for h2conn in list(self._h2):
            h2conn.close()
        self._h2.clear()

    @property
    def idle_count(self) -> int:
        return len(self._idle)
