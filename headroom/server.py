"""Listeners, accept loop, signals and graceful drain.

Accepting is done here rather than by ``loop.create_server`` so that it can be paused: above
``--max-connections`` the listening sockets are simply not read (the kernel backlog holds
new clients), and reading resumes as connections close.

Listening sockets come from one of three places: systemd socket activation, ``--inherit-fd``
(both "inherited": another process holds the same socket), or ``bind`` on ``--listen``. A
draining process only stops reading its listeners and closes its own descriptors; it never
calls ``shutdown`` on them, because with an inherited socket the connections still queued
in the kernel belong to the next generation, which accepts them from the same socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from headroom.config import Config
from headroom.listeners import BindError, is_tls, open_listeners, shown_addr
from headroom.log import Logger
from headroom.protocol.downstream import DownstreamConnection
from headroom.protocol.tls import server_tls_context
from headroom.systemd import Notifier

if TYPE_CHECKING:
    from headroom.proxy.app import ProxyApp

__all__ = ["BindError", "Server"]

ACCEPTS_PER_WAKEUP = 64
# With several workers on one listening socket, every worker is woken for a new connection
# and the first to call accept() gets it. Taking one per wakeup leaves the rest of a burst
# (wrk's or a pool's 32 connections opened at once) to whichever worker is free next;
# taking 64 would pin the whole burst, and its keep-alive traffic, to one worker.
ACCEPTS_PER_WAKEUP_SHARED = 1
# Drain: how long an idle connection may still send the request it is about to send (a
# client that just connected, or a keep-alive client between two requests) before it is
# closed. Answered with Connection: close instead, that request is not lost in a rollout.
IDLE_GRACE = 0.5
ATTACH_WAIT = 1.0
# Once the connections are gone: how long their exchanges may take to unwind (a loop turn
# or two) and be counted. Bounded, so an exchange that never ends cannot hold the drain.
FINISH_WAIT = 1.0


class Server:
    def __init__(
        self, config: Config, app: ProxyApp, log: Logger, notifier: Notifier | None = None
    ) -> None:
        self.config = config
        self.app = app
        self.log = log
        self.loop = app.loop
        self.notifier = notifier or Notifier({})
        self.sockets: list[socket.socket] = []
        self._accepting = False
        self._listeners_closed = False
        self._stopped = asyncio.Event()
        self._drain_task: asyncio.Task[None] | None = None
        self._attaching: set[asyncio.Task[None]] = set()
        self.on_drain: Callable[[], None] = lambda: None
        self.accepts_per_wakeup = ACCEPTS_PER_WAKEUP
        app.on_connections_changed = self._connections_changed
        app.on_exchanges_done = self._stopped.set
        # TLS listeners (--tls-listen): the context is built once, at startup, so a bad
        # certificate stops the process before it serves anything.
        self.tls = (
            server_tls_context(config.tls_cert, config.tls_key)
            if config.tls_cert is not None and config.tls_key is not None
            else None
        )
        self._tls_fds: set[int] = set()

    def open(self, sockets: list[socket.socket] | None = None, announce: bool = True) -> None:
        """Serve on ``sockets`` (a worker's, handed down) or on this process's own
        listeners; ``announce`` logs one ``listening`` line per socket."""
        if sockets is None:
            sockets, _ = open_listeners(self.config)
        self.sockets = sockets
        if self.tls is not None:
            self._tls_fds = {s.fileno() for s in sockets if is_tls(s, self.config)}
        self._set_accepting(True)
        if announce:
            for sock in self.sockets:
                self.log.announce("listening", addr=shown_addr(sock))

    # ------------------------------------------------------------------ accepting

    def _set_accepting(self, on: bool) -> None:
        """Listen or not. Once the drain began, never again: its first step closes the
        listening sockets, and until ``app.draining`` is set a little later a closing
        connection (below the connection limit) or the EMFILE back-off would re-arm a
        closed descriptor, raising inside the exchange that was finishing."""
        if on == self._accepting or (on and self._listeners_closed):
            return
        self._accepting = on
        for sock in self.sockets:
            if on:
                self.loop.add_reader(sock.fileno(), self._accept, sock)
            else:
                self.loop.remove_reader(sock.fileno())

    def _accept(self, listener: socket.socket) -> None:
        app = self.app
        for _ in range(self.accepts_per_wakeup):
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
            tls = self.tls if listener.fileno() in self._tls_fds else None
            task = self.loop.create_task(self._attach(sock, conn, tls))
            self._attaching.add(task)
            task.add_done_callback(self._attaching.discard)

    async def _attach(
        self, sock: socket.socket, conn: DownstreamConnection, tls: ssl.SSLContext | None
    ) -> None:
        # The header deadline starts at accept: a client that never sends its ClientHello
        # is as slow as one that never sends its head (it was held 60 s, asyncio's default).
        handshake = self.config.header_timeout if tls is not None else None
        try:
            await self.loop.connect_accepted_socket(
                lambda: conn, sock, ssl=tls, ssl_handshake_timeout=handshake
            )
        except (OSError, ssl.SSLError):  # a failed TLS handshake ends only this connection
            sock.close()
            self.app.connection_closed(conn)

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

    def install_signals(self, reload: Callable[[], None] | None = None) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self._on_signal, sig)
        self.loop.add_signal_handler(signal.SIGHUP, reload or self._reload_unsupported)

    def _reload_unsupported(self) -> None:
        self.log.warning(
            "reload_ignored",
            reason="one process serves; run with --workers N (even 1) for SIGHUP rollouts, "
            "or start a new process on the same socket (--inherit-fd / systemd socket)",
        )

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._drain_task is None:
            self.log.info("signal", signal=sig.name)
            self.start_drain()
            return
        self.log.warning("exit_now", signal=sig.name, connections=len(self.app.connections))
        os._exit(1)  # second signal: the operator wants out; nothing left is worth waiting for

    def start_drain(self) -> None:
        if self._drain_task is None:
            self._drain_task = self.loop.create_task(self.drain())

    async def wait_stopped(self) -> None:
        await self._stopped.wait()
        if self._drain_task is not None:
            await self._drain_task

    async def drain(self) -> None:
        """Stop accepting, let in-flight exchanges finish (answered with Connection: close)
        until the graceful timeout, then cut the rest.

        Idle connections get ``IDLE_GRACE`` first: one accepted a moment ago has its request
        on the way, and with a shared listening socket (rollouts) the client has no reason
        to expect a refusal, so that request is answered rather than reset."""
        app = self.app
        self._set_accepting(False)
        self._listeners_closed = True
        for sock in self.sockets:
            sock.close()  # our descriptor only: no shutdown(), see the module docstring
        if self._attaching:  # every socket accepted so far becomes a served connection
            await asyncio.wait(list(self._attaching), timeout=ATTACH_WAIT)
        app.draining = True
        self.notifier.stopping()
        self.on_drain()
        started = time.monotonic()
        in_flight = app.in_flight
        finished_before = app.requests_total
        self.log.info(
            "drain_start",
            connections=len(app.connections),
            in_flight=in_flight,
            timeout_s=self.config.graceful_shutdown_timeout,
        )
        timeout = self.config.graceful_shutdown_timeout
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(IDLE_GRACE, timeout)):
                await self._wait_idle_gone()
        for conn in list(app.connections):
            conn.shutdown()
        if app.connections:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, timeout - (time.monotonic() - started))):
                    await self._wait_empty()
        cut = len(app.connections)
        for conn in list(app.connections):
            conn.abort()
        app.connections.clear()
        if app.in_flight:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FINISH_WAIT):
                    await self._wait_finished()
        app.origins.close()
        self.log.info(
            "drain_end",
            completed=app.requests_total - finished_before,
            cut=cut,
            unfinished=app.in_flight,  # exchanges still unwinding after FINISH_WAIT
            seconds=round(time.monotonic() - started, 3),
        )
        self._stopped.set()

    async def _wait_idle_gone(self) -> None:
        """Until no connection is idle (each closed, or busy with a request that will be
        answered with Connection: close)."""
        while any(not conn.busy for conn in self.app.connections):
            self._stopped.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    await self._stopped.wait()

    async def _wait_empty(self) -> None:
        while self.app.connections:
            self._stopped.clear()
            await self._stopped.wait()

    async def _wait_finished(self) -> None:
        """Until every exchange has finished. A connection closes (and leaves
        ``app.connections``) before its exchange's task has unwound, a loop turn or more
        later; the final ``/stats`` numbers a worker publishes after the drain must count
        that exchange too. Woken by ``exchange_finished`` once none is left."""
        while self.app.in_flight:
            self._stopped.clear()
            await self._stopped.wait()
