"""Listeners, accept loop, signals and graceful drain.

Accepting is done here rather than by ``loop.create_server`` so that it can be paused: above
``--max-connections`` the listening sockets are simply not read (the kernel backlog holds
new clients), and reading resumes as connections close. The same hand-off
(``connect_accepted_socket``) takes inherited sockets for systemd later.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time

from headroom.config import Config, ListenAddr
from headroom.log import Logger
from headroom.protocol.downstream import DownstreamConnection
from headroom.proxy.app import ProxyApp

ACCEPTS_PER_WAKEUP = 64
BACKLOG = 1024


class BindError(Exception):
    """A listener could not be opened; maps to exit code 1."""


def bind(addr: ListenAddr) -> socket.socket:
    family = socket.AF_INET6 if ":" in addr.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((addr.host, addr.port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on {addr}: {exc.strerror or exc}") from None
    return sock


class Server:
    def __init__(self, config: Config, app: ProxyApp, log: Logger) -> None:
        self.config = config
        self.app = app
        self.log = log
        self.loop = app.loop
        self.sockets: list[socket.socket] = []
        self._accepting = False
        self._stopped = asyncio.Event()
        self._drain_task: asyncio.Task[None] | None = None
        app.on_connections_changed = self._connections_changed

    def open(self) -> None:
        for addr in self.config.listen:
            self.sockets.append(bind(addr))
        self._set_accepting(True)
        for sock in self.sockets:
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            self.log.info("listening", addr=shown)

    # ------------------------------------------------------------------ accepting

    def _set_accepting(self, on: bool) -> None:
        if on == self._accepting:
            return
        self._accepting = on
        for sock in self.sockets:
            if on:
                self.loop.add_reader(sock.fileno(), self._accept, sock)
            else:
                self.loop.remove_reader(sock.fileno())

    def _accept(self, listener: socket.socket) -> None:
        app = self.app
        for _ in range(ACCEPTS_PER_WAKEUP):
            if len(app.connections) >= self.config.max_connections:
                self._set_accepting(False)
                return
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: back off instead of spinning
                self.log.error("accept_failed", error=str(exc))
                self._set_accepting(False)
                self.loop.call_later(0.1, self._set_accepting, True)
                return
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = DownstreamConnection(app, self.loop)
            app.connections.add(conn)  # counted before the transport exists
            self.loop.create_task(self._attach(sock, conn))

    async def _attach(self, sock: socket.socket, conn: DownstreamConnection) -> None:
        try:
            await self.loop.connect_accepted_socket(lambda: conn, sock)
        except OSError:
            self.app.connections.discard(conn)
            sock.close()

    def _connections_changed(self) -> None:
        if (
            not self._accepting
            and not self.app.draining
            and len(self.app.connections) < self.config.max_connections
        ):
            self._set_accepting(True)
        if self.app.draining and not self.app.connections:
            self._stopped.set()

    # ------------------------------------------------------------------ lifecycle

    def install_signals(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._drain_task is None:
            self.log.info("signal", signal=sig.name)
            self._drain_task = self.loop.create_task(self.drain())
            return
        self.log.warning("exit_now", signal=sig.name, connections=len(self.app.connections))
        os._exit(1)  # second signal: the operator wants out; nothing left is worth waiting for

    async def wait_stopped(self) -> None:
        await self._stopped.wait()
        if self._drain_task is not None:
            await self._drain_task

    async def drain(self) -> None:
        """Stop accepting, close idle connections, let in-flight exchanges finish (they are
        answered with Connection: close) until the graceful timeout, then cut the rest."""
        app = self.app
        app.draining = True
        self._set_accepting(False)
        for sock in self.sockets:
            sock.close()
        started = time.monotonic()
        in_flight = app.in_flight
        finished_before = app.requests_total
        self.log.info(
            "drain_start",
            connections=len(app.connections),
            in_flight=in_flight,
            timeout_s=self.config.graceful_shutdown_timeout,
        )
        for conn in list(app.connections):
            conn.shutdown()
        if app.connections:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.graceful_shutdown_timeout):
                    await self._wait_empty()
        cut = len(app.connections)
        for conn in list(app.connections):
            conn.abort()
        app.connections.clear()
        app.pool.close()
        self.log.info(
            "drain_end",
            completed=app.requests_total - finished_before,
            cut=cut,
            seconds=round(time.monotonic() - started, 3),
        )
        self._stopped.set()

    async def _wait_empty(self) -> None:
        while self.app.connections:
            self._stopped.clear()
            await self._stopped.wait()
