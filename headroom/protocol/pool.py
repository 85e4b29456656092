"""Keep-alive connections to one upstream origin.

Bounded by the number of idle connections kept; each idle connection has its own expiry
timer (cancelled when it is reused), so an origin that silently drops idle sockets after N
seconds is never handed a connection older than ``idle_timeout``. Reuse is LIFO: the most
recently used socket is the one least likely to have been closed by the peer.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

from headroom.protocol.upstream import UpstreamConnection


class ConnectError(Exception):
    """TCP or TLS connect failed (refused, DNS, certificate); maps to 502."""


class ConnectTimeout(Exception):
    """No connection within the connect timeout; maps to 504."""


def client_tls_context(extra_ca: Path | None, alpn: list[str] | None = None) -> ssl.SSLContext:
    """System CAs plus an optional private CA. Verification is never turned off."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if extra_ca is not None:
        ctx.load_verify_locations(cafile=str(extra_ca))
    ctx.set_alpn_protocols(alpn or ["http/1.1"])
    return ctx


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
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self._idle: list[UpstreamConnection] = []
        self.opened = 0
        self.reused = 0

    async def acquire(self) -> tuple[UpstreamConnection, bool]:
        """An open connection and whether it was reused from the pool."""
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

    async def connect(self) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    UpstreamConnection,
                    self.host,
                    self.port,
                    ssl=self.tls,
                    server_hostname=self.host if self.tls is not None else None,
                )
        except TimeoutError:
            raise ConnectTimeout(
                f"no connection to {self.host}:{self.port} within {self.connect_timeout:g}s"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        sock = conn.transport.get_extra_info("socket") if conn.transport else None
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self.opened += 1
        return conn

    def release(self, conn: UpstreamConnection) -> None:
        """Return a connection after its exchange; kept only if it ended cleanly."""
        if not conn.release():
            return
        if len(self._idle) >= self.max_idle:
            conn.abort()
            return
        loop = asyncio.get_running_loop()
        conn.idle_timer = loop.call_later(self.idle_timeout, self._expire, conn)
        self._idle.append(conn)

    def discard(self, conn: UpstreamConnection) -> None:
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

    @property
    def idle_count(self) -> int:
        return len(self._idle)
