"""``headroom-proxy``: flags → config → event loop → server, with honest exit codes.

Exit 2: a flag or environment value is unusable (one line naming it). Exit 1: a runtime
failure at startup (a listener cannot bind, the CCR store cannot open). Exit 0: a clean
drain after SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence

from headroom import __version__
from headroom.ccr.factory import from_config
from headroom.ccr.store import StoreError
from headroom.config import Config, UsageError, load
from headroom.log import Logger
from headroom.proxy.app import ProxyApp
from headroom.proxy.retrieve import RetrieveRoutes
from headroom.server import BindError, Server


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


async def serve(config: Config, log: Logger) -> None:
    loop = asyncio.get_running_loop()
    app = ProxyApp(config, log, loop)
    await attach_extensions(app)
    server = Server(config, app, log)
    server.open()
    server.install_signals()
    log.info(
        "ready",
        version=__version__,
        upstream=str(config.upstream),
        loop=type(loop).__module__.split(".")[0],
    )
    try:
        await server.wait_stopped()
    finally:
        if app.store is not None:
            await app.store.close()


async def attach_extensions(app: ProxyApp) -> None:
    """Open the CCR store (a failure stops startup: no silent fallback) and mount the
    retrieval routes on it."""
    try:
        store = await from_config(app.config)
    except StoreError as exc:
        raise StartupError(str(exc)) from None
    app.log.info("ccr_ready", backend=store.name, ttl_s=app.config.ccr_ttl)
    retrieve = RetrieveRoutes(store, app.config)
    app.routes.add_prefix(b"/v1/retrieve", retrieve.handle)
    app.store = store
    app.retrieve = retrieve


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = load(argv)
        factory = _loop_factory(config.loop)
    except UsageError as exc:
        print(f"headroom-proxy: error: {exc}", file=sys.stderr)
        return 2
    log = Logger(config.log_level)
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(serve(config, log))
    except (BindError, StartupError) as exc:
        print(f"headroom-proxy: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
