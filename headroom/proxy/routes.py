"""Requests the proxy answers itself; never forwarded."""

from __future__ import annotations

import asyncio
import hmac
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qs

from headroom import __version__
from headroom.ccr.store import StoreError
from headroom.protocol.pool import ConnectFailed
from headroom.providers.registry import provider_for
from headroom.proxy.client import fetch
from headroom.proxy.dashboard import dashboard_response
from headroom.proxy.local import (
    LocalHandler,
    LocalRequest,
    LocalResponse,
    error_response,
    json_response,
    presented_token,
)
from headroom.telemetry.cluster import ClusterView
from headroom.telemetry.fleet import FleetStats
from headroom.telemetry.learning_metrics import learning_metrics
from headroom.telemetry.metrics import prometheus

if TYPE_CHECKING:
    from headroom.config import Config
    from headroom.learning.learner import Learner
    from headroom.prices import Prices
    from headroom.proxy.origins import Origin, Origins
    from headroom.proxy.retrieve import RetrieveRoutes
    from headroom.telemetry.stats import Stats


class RouteHost(Protocol):
    """What the local routes read of the process (``ProxyApp``)."""

    config: Config
    origins: Origins
    stats: Stats
    prices: Prices | None
    draining: bool
    retrieve: RetrieveRoutes | None
    learner: Learner | None


SERVICE = "headroom-proxy"
PROBE_TIMEOUT = 5.0


class LocalRoutes:
    def __init__(self, app: RouteHost) -> None:
        self.app = app
        self._exact: dict[bytes, LocalHandler] = {
            b"/healthz": self.healthz,
            b"/healthz/upstream": self.healthz_upstream,
            b"/stats": self.stats,
            b"/metrics": self.metrics,
            b"/dashboard": self.dashboard,
        }
        self._prefixed: list[tuple[bytes, LocalHandler]] = []
        # Set in a worker under a supervisor: /stats and /metrics then cover all workers.
        self.cluster: ClusterView | None = None
        # Set with --stats-redis: /stats?scope=fleet adds up every host publishing there.
        self.fleet: FleetStats | None = None

    def add_prefix(self, prefix: bytes, handler: LocalHandler) -> None:
        self._prefixed.append((prefix, handler))

    def add(self, path: bytes, handler: LocalHandler) -> None:
        self._exact[path] = handler

    def match(self, path: bytes) -> LocalHandler | None:
        handler = self._exact.get(path)
        if handler is not None:
            return handler
        for prefix, prefixed in self._prefixed:
            if path == prefix or path.startswith(prefix + b"/"):
                return prefixed
        return None

    def known(self, path: str) -> bool:
        """Paths worth their own /stats row (others are counted together as "other"). Below a
        prefix route only the prefix itself is: ``/v1/retrieve/<hash>`` as a label would give
        /metrics one series per CCR key."""
        encoded = path.encode("latin-1")
        return (
            encoded in self._exact
            or provider_for(path) is not None
            or any(encoded == prefix for prefix, _ in self._prefixed)
        )

    async def stats(self, req: LocalRequest) -> LocalResponse:
        refused = self._refusal(req)
        if refused is not None:
            return refused
        if "fleet" in parse_qs(req.query).get("scope", ()):
            return await self._fleet_stats()
        learning = await self._learning()
        if self.cluster is None:
            return json_response(
                200, self.app.stats.snapshot({**self._extra(), **learning}, self.app.prices)
            )
        total, endpoints, workers = self.cluster.gather()
        extra = {"ccr_endpoints": endpoints, "workers": workers, **learning}
        return json_response(200, total.snapshot(extra, self.app.prices))

    async def _fleet_stats(self) -> LocalResponse:
        if self.fleet is None:
            return error_response(400, "bad_request", "fleet stats need --stats-redis")
        try:
            total, endpoints, hosts = await self.fleet.read()
        except Exception as exc:  # redis raises many types; all mean "fleet view unavailable"
            message = f"stats redis: {type(exc).__name__}"
            return error_response(503, "unavailable", message)
        extra = {"scope": "fleet", "ccr_endpoints": endpoints, "hosts": hosts}
        return json_response(200, total.snapshot(extra, self.app.prices))

    async def metrics(self, req: LocalRequest) -> LocalResponse:
        refused = self._refusal(req)
        if refused is not None:
            return refused
        if self.cluster is None:
            retrieve = self.app.retrieve
            counters = retrieve.counters if retrieve is not None else None
            text = prometheus(self.app.stats, counters, prices=self.app.prices)
        else:
            total, endpoints, workers = self.cluster.gather()
            text = prometheus(total, endpoints, workers["per_worker"], self.app.prices)
        learning = (await self._learning()).get("learning")
        if isinstance(learning, dict) and learning.get("enabled"):
            text += learning_metrics(learning)
        return LocalResponse(200, text.encode(), b"text/plain; version=0.0.4; charset=utf-8")

    async def dashboard(self, req: LocalRequest) -> LocalResponse:
        refused = self._refusal(req)
        if refused is not None:
            return refused
        return dashboard_response()

    async def _learning(self) -> dict[str, object]:
        """``{"learning": ...}``: what was learned, as the shared store holds it (every
        worker sees the same), with this process's learner counters."""
        learner = self.app.learner
        if learner is None:
            return {"learning": {"enabled": False}}
        try:
            return {"learning": await learner.stats()}
        except StoreError as exc:
            return {"learning": {"enabled": True, "error": str(exc)}}

    def _extra(self) -> dict[str, object]:
        retrieve = self.app.retrieve
        return {"ccr_endpoints": dict(retrieve.counters) if retrieve is not None else {}}

    def _refusal(self, req: LocalRequest) -> LocalResponse | None:
        """Why a read-only telemetry route does not answer: no token, or not a GET/HEAD."""
        denied = self._check_token(req)
        if denied is not None:
            return denied
        if req.method not in ("GET", "HEAD"):
            return method_not_allowed("GET, HEAD")
        return None

    def _check_token(self, req: LocalRequest) -> LocalResponse | None:
        """With HEADROOM_PROXY_TOKEN set, non-loopback callers must present it."""
        token = self.app.config.proxy_token
        if token is None or req.from_loopback:
            return None
        given = presented_token(req)
        if given is not None and hmac.compare_digest(given.encode(), token.encode()):
            return None
        return error_response(
            401,
            "unauthorized",
            "missing or wrong proxy token",
            ((b"www-authenticate", b'Basic realm="headroom-proxy", charset="UTF-8"'),),
        )

    async def healthz(self, req: LocalRequest) -> LocalResponse:
        if req.method not in ("GET", "HEAD"):
            return method_not_allowed("GET, HEAD")
        if self.app.draining:
            return json_response(
                503, {"ok": False, "service": SERVICE, "version": __version__, "draining": True}
            )
        return json_response(200, {"ok": True, "service": SERVICE, "version": __version__})

    async def healthz_upstream(self, req: LocalRequest) -> LocalResponse:
        """Probe every upstream at once; 200 only when all answer. The top level also
        carries the first failure's reason, so a one-upstream proxy reads as before."""
        if req.method not in ("GET", "HEAD"):
            return method_not_allowed("GET, HEAD")
        origins = list(self.app.origins)
        probes = await asyncio.gather(*(probe(origin) for origin in origins))
        body: dict[str, object] = {"ok": all(p["ok"] for p in probes)}
        failed = next((p for p in probes if not p["ok"]), None)
        if failed is not None:
            body.update((k, v) for k, v in failed.items() if k in ("error", "upstream_status"))
        pairs = zip(origins, probes, strict=True)
        body["upstreams"] = {origin.name: {"url": origin.url, **got} for origin, got in pairs}
        return json_response(200 if body["ok"] else 503, body)


async def probe(origin: Origin) -> dict[str, object]:
    """The origin's /healthz (base path dropped) with a timeout of its own, so a hung
    upstream answers in 5 s, not in --upstream-timeout."""
    headers = [(b"host", origin.authority), (b"user-agent", b"headroom-proxy")]
    try:
        got = await fetch(origin.pool, b"GET", b"/healthz", headers, b"", PROBE_TIMEOUT)
    except TimeoutError:
        return {"ok": False, "error": "timeout after 5s"}
    except (ConnectFailed, ConnectionError) as exc:
        return {"ok": False, "error": str(exc)}
    if 200 <= got.status < 300:
        return {"ok": True}
    return {"ok": False, "upstream_status": got.status}


def method_not_allowed(allow: str) -> LocalResponse:
    return error_response(
        405, "method_not_allowed", f"use {allow}", ((b"allow", allow.encode("ascii")),)
    )
