"""``--workers N``: a small supervisor process in front of N proxy workers.

Listeners: the supervisor opens them once (binds ``--listen``, or takes systemd's /
``--inherit-fd`` sockets) and hands the same sockets to every worker with ``pass_fds``; all
workers accept from one shared kernel queue. The alternative, each worker binding its own
socket with SO_REUSEPORT, was rejected because the kernel gives every such socket its own
accept queue: connections already queued on a worker that closes its socket are reset, so
a drain or a one-at-a-time replacement would refuse clients. A shared socket also is what
socket activation and ``--inherit-fd`` already hand us, so one code path serves all three,
and the next generation of a rollout accepts from the very queue the old one stops reading.

Workers are fresh interpreters (``python -m headroom.proxy`` with the supervisor's argv and
environment), not forks: a SIGHUP replacement then loads the code installed now and
re-parses the configuration, and no event loop or thread state is copied across ``fork``.

The supervisor does no request work. It restarts a crashed worker with exponential backoff
(a worker that ran ``STABLE_AFTER`` resets it), kills a hung one (no heartbeat from its
event loop for ``--worker-hang-timeout``) so that it is replaced the same way, gives up at
startup if a first-generation worker dies before ever becoming ready (the worker printed
why), drains every worker at once on SIGTERM/SIGINT and exits 0 after the last, and on
SIGHUP replaces workers one slot at a time: the new worker is accepting before the old one
is told to drain, so no connection is refused. It speaks sd_notify for the service
(READY=1 once every worker is ready, STATUS=, STOPPING=1, WATCHDOG=1, MAINPID=).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from headroom.config import Config, UsageError, load
from headroom.listeners import open_listeners, shown_addr
from headroom.log import Logger
from headroom.systemd import Notifier, child_environ
from headroom.telemetry.cluster import StatsDir
from headroom.workers import SPEC_ENV, WorkerSpec

BACKOFF_FIRST = 0.2
BACKOFF_MAX = 30.0
STABLE_AFTER = 10.0  # a worker that ran this long resets its slot's backoff
READY_TIMEOUT = 60.0  # a replacement worker that is not ready by then fails the reload
KILL_GRACE = 10.0  # past --graceful-shutdown-timeout, leftover workers are killed
TICK = 1.0
STATUS_EVERY = 5.0

# State each worker keeps to itself. Named in the startup warning, so operators know what
# --workers changes; keep in step with the code.
PER_WORKER_STATE = (
    "the memo of compressed tool outputs (a turn served by another worker is compressed "
    "again, to the same bytes, so provider prompt caches still hit)",
    "a cache of the served headroom_retrieve rounds it used (the rounds themselves are "
    "recorded in the CCR store, which every worker shares)",
    "the upstream connection pool",
)


@dataclass
class Worker:
    slot: int
    generation: int
    proc: subprocess.Popen[bytes]
    channel: socket.socket
    started: float = field(default_factory=time.monotonic)
    last_beat: float = field(default_factory=time.monotonic)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    retiring: bool = False  # replaced or drained on purpose: its exit is no crash

    @property
    def pid(self) -> int:
        return self.proc.pid


def per_worker_warning(config: Config, workers: int) -> str:
    lines = [f"--workers {workers}: shared by all workers: /stats and /metrics (merged)"]
    if config.ccr_backend == "memory":
        lines.append(
            "NOT shared: the CCR store (--ccr-backend memory keeps originals in each worker's "
            "memory), so a marker written by one worker cannot be retrieved through another "
            f"and about {workers - 1} in {workers} retrievals will fail; fix: --ccr-backend "
            "sqlite (the default, one file for all workers) or redis"
        )
    else:
        lines[0] += f" and the CCR store ({config.ccr_backend})"
    lines.append("per worker: " + "; ".join(PER_WORKER_STATE))
    return ". ".join(lines)


class Supervisor:
    def __init__(
        self,
        config: Config,
        argv: list[str],
        log: Logger,
        sockets: list[socket.socket],
        stats_dir: Path,
        notifier: Notifier,
    ) -> None:
        self.config = config
        self.argv = argv
        self.log = log
        self.sockets = sockets
        self.stats = StatsDir(stats_dir)
        self.notifier = notifier
        self.count = config.workers or 1
        self.slots: list[Worker | None] = [None] * self.count
        self.workers: dict[int, Worker] = {}  # by pid, every generation still running
        self.generation = 1
        self.failures: Counter[int] = Counter()
        self.restarts = 0
        self.stopping = False
        self.exit_code = 0
        self.ever_ready = False
        self._reload: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.TimerHandle] = {}
        self._done = asyncio.Event()

    # ------------------------------------------------------------ main

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_reload_signal)
        loop.add_signal_handler(signal.SIGCHLD, self._reap)
        for slot in range(self.count):
            self._spawn(slot)
        ticker = loop.create_task(self._tick())
        started = loop.create_task(self._announce_ready())
        try:
            await self._done.wait()
        finally:
            ticker.cancel()
            started.cancel()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
                loop.remove_signal_handler(sig)
        return self.exit_code

    async def _announce_ready(self) -> None:
        for worker in [w for w in self.slots if w is not None]:
            await worker.ready.wait()
        self.ever_ready = True
        self.log.announce("ready", workers=self.count, pid=os.getpid())
        self.notifier.ready(self._status())

    # ------------------------------------------------------------ workers

    def _spawn(self, slot: int) -> Worker:
        self._pending.pop(slot, None)
        parent, child = socket.socketpair()
        fds = tuple(s.fileno() for s in self.sockets)
        spec = WorkerSpec(slot, self.generation, fds, child.fileno(), str(self.stats.path))
        env = child_environ(os.environ)
        env[SPEC_ENV] = spec.encode()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "headroom.proxy", *self.argv],
                env=env,
                stdin=subprocess.DEVNULL,
                pass_fds=(*fds, child.fileno()),
                process_group=0,  # a terminal's Ctrl-C reaches the supervisor only
            )
        finally:
            child.close()
        parent.setblocking(False)
        worker = Worker(slot, spec.generation, proc, parent)
        self.workers[proc.pid] = worker
        self.slots[slot] = worker
        asyncio.get_running_loop().add_reader(parent.fileno(), self._on_channel, worker)
        self.log.info("worker_started", worker=slot, generation=worker.generation, pid=proc.pid)
        return worker

    def _on_channel(self, worker: Worker) -> None:
        try:
            data = worker.channel.recv(256)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        worker.last_beat = time.monotonic()
        if b"ready" in data:
            worker.ready.set()
        if not data:
            asyncio.get_running_loop().remove_reader(worker.channel.fileno())
            self._reap()

    def _reap(self) -> None:
        for worker in list(self.workers.values()):
            code = worker.proc.poll()
            if code is not None:
                self._exited(worker, code)

    def _exited(self, worker: Worker, code: int) -> None:
        del self.workers[worker.pid]
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(worker.channel.fileno())
        worker.channel.close()
        worker.exited.set()
        self.stats.retire(worker.pid)
        crashed = not worker.retiring and not self.stopping
        log = self.log.warning if crashed else self.log.info
        log("worker_exit", worker=worker.slot, pid=worker.pid, code=code, crashed=crashed)
        if self.stopping:
            if not self.workers:
                self._done.set()
            return
        if not crashed or self.slots[worker.slot] is not worker:
            return
        if not self.ever_ready and not worker.ready.is_set():
            self.log.error("startup_failed", worker=worker.slot, code=code)
            self.exit_code = 1
            self._stop(signal.SIGTERM)
            return
        self._schedule_restart(worker)

    def _schedule_restart(self, worker: Worker) -> None:
        if time.monotonic() - worker.started >= STABLE_AFTER:
            self.failures[worker.slot] = 0
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** self.failures[worker.slot])
        self.failures[worker.slot] += 1
        self.restarts += 1
        self.log.info("worker_restart", worker=worker.slot, in_s=round(delay, 3))
        loop = asyncio.get_running_loop()
        self._pending[worker.slot] = loop.call_later(delay, self._spawn, worker.slot)

    # ------------------------------------------------------------ stop

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        if self.stopping:
            self.log.warning("exit_now", signal=sig.name, workers=len(self.workers))
            for worker in self.workers.values():
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.kill()
            self.exit_code = 1
            return
        self.log.info("signal", signal=sig.name)
        self._stop(sig)

    def _stop(self, sig: signal.Signals) -> None:
        """Drain every worker at once. Our copies of the listeners close now; the workers
        close theirs as they start draining (never shutdown(): see headroom.server)."""
        self.stopping = True
        self.notifier.stopping(f"draining {len(self.workers)} workers")
        for handle in self._pending.values():
            handle.cancel()
        self._pending.clear()
        if self._reload is not None:
            self._reload.cancel()
        for worker in self.workers.values():
            with contextlib.suppress(ProcessLookupError):
                worker.proc.send_signal(signal.SIGTERM)
        for sock in self.sockets:
            sock.close()
        if not self.workers:
            self._done.set()
            return
        deadline = self.config.graceful_shutdown_timeout + KILL_GRACE
        asyncio.get_running_loop().call_later(deadline, self._kill_leftovers)

    def _kill_leftovers(self) -> None:
        for worker in self.workers.values():
            self.log.error("worker_killed", worker=worker.slot, pid=worker.pid)
            with contextlib.suppress(ProcessLookupError):
                worker.proc.kill()
        self.exit_code = 1

    # ------------------------------------------------------------ reload

    def _on_reload_signal(self) -> None:
        if self.stopping or (self._reload is not None and not self._reload.done()):
            self.log.warning("reload_ignored", reason="stopping or already reloading")
            return
        self._reload = asyncio.get_running_loop().create_task(self.reload())

    async def reload(self) -> None:
        """Replace every worker, one slot at a time, with a fresh interpreter on the same
        sockets: start the new one, wait until it accepts, then drain the old one."""
        try:
            config = load(self.argv)
        except UsageError as exc:
            self.log.error("reload_failed", error=str(exc))
            return
        if config.listen != self.config.listen:
            self.log.warning("reload_listen_unchanged", reason="listeners need a restart")
        self.notifier.reloading()
        self.generation += 1
        count = config.workers or 1
        self.log.info("reload_start", generation=self.generation, workers=count)
        self.slots.extend([None] * max(0, count - len(self.slots)))
        for slot in range(len(self.slots)):
            old = self.slots[slot]
            if slot < count and not await self._replace(slot):
                self.slots[slot] = old  # the old worker never stopped serving
                self.notifier.ready(self._status())
                return
            if old is not None:
                self._retire(old)
        del self.slots[count:]
        self.config, self.count = config, count
        self.log.info("reload_done", generation=self.generation, workers=count)
        self.notifier.ready(self._status())

    async def _replace(self, slot: int) -> bool:
        new = self._spawn(slot)
        waits = [asyncio.ensure_future(e.wait()) for e in (new.ready, new.exited)]
        try:
            await asyncio.wait(waits, timeout=READY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        if new.ready.is_set():
            return True
        self.log.error("reload_failed", worker=slot, pid=new.pid, reason="not ready")
        new.retiring = True
        with contextlib.suppress(ProcessLookupError):
            new.proc.kill()
        return False

    def _retire(self, worker: Worker) -> None:
        worker.retiring = True
        if self.slots[worker.slot] is worker:
            self.slots[worker.slot] = None
        with contextlib.suppress(ProcessLookupError):
            worker.proc.send_signal(signal.SIGTERM)

    # ------------------------------------------------------------ status

    async def _tick(self) -> None:
        """STATUS= every few seconds, WATCHDOG=1 at half the watchdog interval, and a reap
        in case a SIGCHLD was coalesced with another."""
        period = min(TICK, self.notifier.watchdog_interval or TICK)
        last_status = time.monotonic()
        while True:
            await asyncio.sleep(period)
            self._reap()
            self._kill_hung()
            if self.notifier.watchdog_interval is not None:
                self.notifier.watchdog()
            if time.monotonic() - last_status >= STATUS_EVERY:
                last_status = time.monotonic()
                self.notifier.status(self._status())

    def _kill_hung(self) -> None:
        """A ready worker that stopped beating has a stuck event loop (its clients hang with
        it): kill it, and the crash path starts a replacement."""
        limit = self.config.worker_hang_timeout
        now = time.monotonic()
        for worker in self.workers.values():
            silent = now - worker.last_beat
            if worker.ready.is_set() and not worker.retiring and silent > limit:
                self.log.error("worker_hung", worker=worker.slot, pid=worker.pid, silent_s=silent)
                worker.last_beat = now  # one kill per silence
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.kill()

    def _status(self) -> str:
        _, records = self.stats.consistent_read(own_pid=0)
        connections = sum(int(r["stats"]["active_connections"]) for r in records)
        requests = sum(int(r["stats"]["requests"]) for r in records)
        state = "draining" if self.stopping else "serving"
        return (
            f"{state}: {len(self.workers)} workers, {connections} connections, "
            f"{requests} requests by live workers, {self.restarts} restarts"
        )


def run_supervisor(config: Config, argv: list[str], log: Logger) -> int:
    """Open the listeners, start the workers, and supervise until drained."""
    count = config.workers or 1
    if count > 1:
        log.warning("per_worker_state", message=per_worker_warning(config, count))
    notifier = Notifier()  # read before open_listeners strips the activation variables
    sockets, inherited = open_listeners(config)
    for sock in sockets:
        log.announce("listening", addr=shown_addr(sock), inherited=inherited)
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0] or None
    stats_dir = Path(tempfile.mkdtemp(prefix="headroom-stats-", dir=runtime))
    try:
        return asyncio.run(Supervisor(config, argv, log, sockets, stats_dir, notifier).run())
    finally:
        for sock in sockets:
            sock.close()
        shutil.rmtree(stats_dir, ignore_errors=True)
