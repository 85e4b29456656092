"""The worker's side of ``--workers``: what the supervisor hands down and what flows back.

A worker is an ordinary proxy process (same argv, same environment, so it parses the same
config) started with one extra variable, ``HEADROOM_WORKER``, describing:

* the listening sockets it inherited (fd numbers, kept equal by ``pass_fds``);
* one end of a socketpair to the supervisor. The worker writes ``ready`` on it once its
  CCR store is open and it is accepting; reading EOF from it means the supervisor is gone,
  and a worker without a supervisor drains and exits rather than serve unsupervised;
* the runtime directory where it publishes its counters for cluster-wide ``/stats``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headroom.config import UsageError
from headroom.log import Logger
from headroom.telemetry.cluster import PUBLISH_INTERVAL, ClusterView, StatsDir

if TYPE_CHECKING:
    from headroom.proxy.app import ProxyApp
    from headroom.server import Server

SPEC_ENV = "HEADROOM_WORKER"


@dataclass(frozen=True)
class WorkerSpec:
    slot: int
    generation: int
    fds: tuple[int, ...]
    channel: int
    stats_dir: str

    def encode(self) -> str:
        return json.dumps(
            {
                "slot": self.slot,
                "generation": self.generation,
                "fds": list(self.fds),
                "channel": self.channel,
                "stats_dir": self.stats_dir,
            }
        )

    @classmethod
    def take(cls, environ: MutableMapping[str, str] | None = None) -> WorkerSpec | None:
        """The spec this process was started with, removed from the environment so nothing
        this worker starts mistakes itself for a worker."""
        env = os.environ if environ is None else environ
        raw = env.pop(SPEC_ENV, None)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return cls(
                int(data["slot"]),
                int(data["generation"]),
                tuple(int(fd) for fd in data["fds"]),
                int(data["channel"]),
                str(data["stats_dir"]),
            )
        except (ValueError, TypeError, KeyError):
            raise UsageError(f"{SPEC_ENV} is unusable (only the supervisor sets it)") from None

    def sockets(self) -> list[socket.socket]:
        out = []
        for fd in self.fds:
            sock = socket.socket(fileno=fd)
            sock.setblocking(False)
            out.append(sock)
        return out


class WorkerLogger(Logger):
    """Every line a worker logs names it (``worker`` slot and ``pid``): several workers
    share one stdout, and a request log must say which process served it."""

    def __init__(self, level: str, slot: int) -> None:
        super().__init__(level)
        self._tags = {"worker": slot, "pid": os.getpid()}

    def log(self, level: str, event: str, **fields: Any) -> None:
        super().log(level, event, **{**self._tags, **fields})


class WorkerLink:
    """Readiness and supervisor-death over the channel; counters into the stats dir."""

    def __init__(self, spec: WorkerSpec, app: ProxyApp, server: Server, log: Logger) -> None:
        self.spec = spec
        self.app = app
        self.server = server
        self.log = log
        self.dir = StatsDir(Path(spec.stats_dir))
        self.channel = socket.socket(fileno=spec.channel)
        self.channel.setblocking(False)
        self._publisher: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.app.routes.cluster = ClusterView(self.dir, self.record)
        self.app.loop.add_reader(self.channel.fileno(), self._on_channel)
        self._publisher = self.app.loop.create_task(self._publish_loop())

    def ready(self) -> None:
        self.publish()  # the others see this worker in /stats from its first moment
        with contextlib.suppress(OSError):
            self.channel.send(b"ready\n")

    def record(self) -> dict[str, Any]:
        retrieve = self.app.retrieve
        return {
            "pid": os.getpid(),
            "worker": self.spec.slot,
            "generation": self.spec.generation,
            "published": time.time(),
            "in_flight": self.app.in_flight,
            "draining": self.app.draining,
            "stats": self.app.stats.to_data(),
            "ccr_endpoints": dict(retrieve.counters) if retrieve is not None else {},
        }

    def publish(self) -> None:
        try:
            self.dir.publish(self.record())
        except OSError as exc:  # runtime dir gone: only /stats suffers, never traffic
            self.log.warning("stats_publish_failed", error=str(exc))

    async def _publish_loop(self) -> None:
        """Counters to the stats dir, and a heartbeat byte to the supervisor: a worker whose
        event loop is stuck stops beating and is replaced (``--worker-hang-timeout``)."""
        while True:
            await asyncio.sleep(PUBLISH_INTERVAL)
            self.publish()
            with contextlib.suppress(OSError):  # full (supervisor stuck) or gone: EOF says so
                self.channel.send(b".")

    def _on_channel(self) -> None:
        try:
            data = self.channel.recv(64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            return  # the supervisor sends nothing today; tolerate it
        self.app.loop.remove_reader(self.channel.fileno())
        if not self.app.draining:
            self.log.warning("supervisor_gone", action="drain")
            self.server.start_drain()

    def close(self) -> None:
        """After the drain: the final numbers, so the retired totals miss nothing."""
        if self._publisher is not None:
            self._publisher.cancel()
        self.publish()
        with contextlib.suppress(ValueError, OSError):
            self.app.loop.remove_reader(self.channel.fileno())
        self.channel.close()
