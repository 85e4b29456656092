"""``headroom-proxy``: flags → config → event loop → server, with honest exit codes.

Exit 2: a flag or environment value is unusable (one line naming it). Exit 1: a runtime
failure at startup (a listener cannot bind, the CCR store cannot open). Exit 0: a clean
drain after SIGTERM/SIGINT.

Three ways to run, picked here: one process that does everything (no ``--workers``), a
supervisor (``--workers N``: see ``headroom.supervisor``), or a worker under one (started by
the supervisor with ``HEADROOM_WORKER`` set; see ``headroom.workers``). The proxy modules are
imported only on the serving paths, so the supervisor stays small.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from headroom import __version__
from headroom.config import Config, UsageError, load
from headroom.listeners import BindError
from headroom.log import Logger
from headroom.prices import PriceTableError
from headroom.protocol.tls import TLSSetupError
from headroom.systemd import Notifier
from headroom.workers import WorkerLink, WorkerLogger, WorkerSpec

if TYPE_CHECKING:
    from headroom.proxy.app import ProxyApp
    from headroom.telemetry.fleet import FleetStats
    from headroom.telemetry.stats import Stats

STATUS_EVERY = 5.0


class StartupError(Exception):
    """Startup failed for a runtime reason; maps to exit code 1."""


def _loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if choice in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise UsageError("--loop uvloop: uvloop is not installed") from None
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


async def serve(config: Config, log: Logger, spec: WorkerSpec | None = None) -> None:
    """Serve until drained. The CCR store opens before the listeners, so "ready" (log line,
    sd_notify READY=1, or a worker's ready message) means both are."""
    from headroom.proxy.app import ProxyApp
    from headroom.server import ACCEPTS_PER_WAKEUP_SHARED, Server

    loop = asyncio.get_running_loop()
    try:
        app = ProxyApp(config, log, loop)
    except PriceTableError as exc:  # checked at parse time; the file changed since
        raise StartupError(str(exc)) from None
    await attach_extensions(app)
    fleet = await _open_fleet(app, supervised=spec is not None)
    # A worker never talks to systemd (its environment has no NOTIFY_SOCKET anyway).
    notifier = Notifier() if spec is None else Notifier({})
    server = Server(config, app, log, notifier)
    link: WorkerLink | None = None
    if spec is None:
        server.open()
        server.install_signals()
    else:
        server.accepts_per_wakeup = ACCEPTS_PER_WAKEUP_SHARED
        server.open(spec.sockets(), announce=False)
        server.install_signals(reload=lambda: log.info("reload_ignored", reason="worker"))
        link = WorkerLink(spec, app, server, log)
        link.start()
    fields = {
        "version": __version__,
        "upstreams": {origin.name: origin.url for origin in app.origins},
        "loop": type(loop).__module__.split(".")[0],
    }
    tune_collector()
    heartbeat = None
    if link is None or spec is None:
        log.announce("ready", **fields)
        notifier.ready(_status(app))
        heartbeat = loop.create_task(_heartbeat(app, notifier))
    else:
        link.ready()
        log.info("worker_ready", generation=spec.generation, **fields)
    if fleet is not None:
        fleet.start()
    try:
        await server.wait_stopped()
    finally:
        if heartbeat is not None:
            heartbeat.cancel()
        if link is not None:
            link.close()
        if fleet is not None:
            await fleet.close()
        if app.learner is not None:
            await app.learner.close()
        if app.rounds is not None:
            await app.rounds.close()
        if app.store is not None:
            await app.store.close()


async def _open_fleet(app: ProxyApp, supervised: bool) -> FleetStats | None:
    """With --stats-redis: connect (failure stops startup) and publish this host's totals,
    all workers' when supervised (``app.routes.cluster`` is set by then)."""
    url = app.config.stats_redis
    if url is None:
        return None
    from headroom.telemetry.fleet import FleetError, FleetStats, instance_name

    def gather() -> tuple[Stats, dict[str, int], dict[str, Any]]:
        cluster = app.routes.cluster
        if cluster is not None:
            return cluster.gather()
        retrieve = app.retrieve
        return app.stats, dict(retrieve.counters) if retrieve else {}, {"count": 1}

    try:
        fleet = await FleetStats.open(
            url, instance_name(supervised), gather, app.log, owner=not supervised
        )
    except FleetError as exc:
        raise StartupError(str(exc)) from None
    app.routes.fleet = fleet
    return fleet


def _status(app: ProxyApp) -> str:
    state = "draining" if app.draining else "serving"
    return (
        f"{state}: {len(app.connections)} connections, {app.in_flight} in flight, "
        f"{app.requests_total} requests"
    )


async def _heartbeat(app: ProxyApp, notifier: Notifier) -> None:
    """STATUS= with live counts, and WATCHDOG=1 at half the watchdog interval."""
    if not notifier.enabled:
        return
    period = min(STATUS_EVERY, notifier.watchdog_interval or STATUS_EVERY)
    since_status = 0.0
    while True:
        await asyncio.sleep(period)
        if notifier.watchdog_interval is not None:
            notifier.watchdog()
        since_status += period
        if since_status >= STATUS_EVERY:
            since_status = 0.0
            notifier.status(_status(app))


async def attach_extensions(app: ProxyApp) -> None:
    """Open the CCR store and the learner beside it (a failure stops startup: no silent
    fallback) and mount the retrieval routes on them."""
    from headroom.ccr.factory import from_config
    from headroom.ccr.store import StoreError
    from headroom.learning.factory import learner_for, records_beside
    from headroom.proxy.retrieve import RetrieveRoutes
    from headroom.proxy.round_ledger import MAX_RECORDS as ROUND_RECORDS
    from headroom.proxy.round_ledger import RoundLedger

    try:
        store = await from_config(app.config)
    except StoreError as exc:
        raise StartupError(str(exc)) from None
    app.log.info("ccr_ready", backend=store.name, ttl_s=app.config.ccr_ttl)
    try:
        app.learner = await learner_for(app.config, store)
        rounds = await records_beside(app.config, store, ROUND_RECORDS)
    except StoreError as exc:
        if app.learner is not None:
            await app.learner.close()
        await store.close()
        raise StartupError(str(exc)) from None
    app.rounds = RoundLedger(rounds, store, app, ttl=app.config.ccr_ttl)
    retrieve = RetrieveRoutes(store, app.config, app.learner)
    app.routes.add_prefix(b"/v1/retrieve", retrieve.handle)
    app.store = store
    app.retrieve = retrieve


GC_GEN0_THRESHOLD = 20_000


def tune_collector() -> None:
    """Make the cycle collector cheap on the request path, once the proxy is up.

    What exists by then (modules, the app, compiled patterns, the price table) lives as long
    as the process: ``gc.freeze`` moves it out of every later collection, which then walks
    only what requests made. A request's objects are freed by reference counting as it
    ends; the collector only finds the few cycles among them, so the first generation may
    fill to ``GC_GEN0_THRESHOLD`` (from 700) before it runs: one collection per some
    hundred requests instead of one every few."""
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, older, oldest)


M_TOP_PAD = -2  # glibc's mallopt parameter number
TOP_PAD_BYTES = 4 << 20


def tune_allocator() -> bool:
    """Keep 4 MiB of heap when freeing instead of handing it back to the OS at once.

    Streaming bodies arrive in reads of up to 256 KiB; glibc trimmed the heap after each
    chunk was freed and faulted the pages back in for the next one, which the bench measured
    at 2.8 s CPU per GB streamed; with a 4 MiB top pad it is 0.63 s. Only glibc has
    ``mallopt``; elsewhere this does nothing (and says so by returning False)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_TOP_PAD, TOP_PAD_BYTES))
    except (OSError, AttributeError):
        return False


# Subcommands (``headroom-proxy NAME ...``) and the modules that hold them.
COMMANDS = {
    "compress": "headroom.compress_cli",  # a dry run of the engine on one tool output
    "stats": "headroom.stats_cli",  # a running proxy's /stats as a table
    "ccr": "headroom.ccr_cli",  # read the configured CCR store
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in COMMANDS:  # a tool beside the server, imported only when used
        command: Callable[[list[str]], int] = importlib.import_module(COMMANDS[args[0]]).main
        return command(args[1:])
    try:
        spec = WorkerSpec.take()
        config = load(args)
        factory = _loop_factory(config.loop)
    except UsageError as exc:
        print(f"headroom-proxy: error: {exc}", file=sys.stderr)
        return 2
    log = Logger(config.log_level) if spec is None else WorkerLogger(config.log_level, spec.slot)
    log.debug("allocator_tuned", top_pad_bytes=TOP_PAD_BYTES, applied=tune_allocator())
    if spec is None and config.workers is not None:
        from headroom.supervisor import run_supervisor

        try:
            return run_supervisor(config, args, log)
        except BindError as exc:
            print(f"headroom-proxy: error: {exc}", file=sys.stderr)
            return 1
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(serve(config, log, spec))
    except (BindError, StartupError, TLSSetupError) as exc:
        print(f"headroom-proxy: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
