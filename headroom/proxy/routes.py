"""Requests the proxy answers itself; never forwarded."""

from __future__ import annotations

from typing import TYPE_CHECKING

from headroom import __version__
from headroom.protocol.pool import ConnectError, ConnectTimeout
from headroom.proxy.client import fetch
from headroom.proxy.local import LocalHandler, LocalRequest, LocalResponse, json_response

if TYPE_CHECKING:
    from headroom.proxy.app import ProxyApp

SERVICE = "headroom-proxy"
PROBE_TIMEOUT = 5.0


class LocalRoutes:
    def __init__(self, app: ProxyApp) -> None:
        self.app = app
        self._exact: dict[bytes, LocalHandler] = {
            b"/healthz": self.healthz,
            b"/healthz/upstream": self.healthz_upstream,
        }
        self._prefixed: list[tuple[bytes, LocalHandler]] = []

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

    async def healthz(self, req: LocalRequest) -> LocalResponse:
        if req.method not in ("GET", "HEAD"):
            return method_not_allowed("GET, HEAD")
        if self.app.draining:
            return json_response(
                503, {"ok": False, "service": SERVICE, "version": __version__, "draining": True}
            )
        return json_response(200, {"ok": True, "service": SERVICE, "version": __version__})

    async def healthz_upstream(self, req: LocalRequest) -> LocalResponse:
        """Probe the origin's /healthz (base path dropped) with a timeout of its own, so a
        hung upstream answers this in 5 s, not in --upstream-timeout."""
        if req.method not in ("GET", "HEAD"):
            return method_not_allowed("GET, HEAD")
        headers = [(b"host", self.app.upstream_authority), (b"user-agent", b"headroom-proxy")]
        try:
            got = await fetch(self.app.pool, b"GET", b"/healthz", headers, b"", PROBE_TIMEOUT)
        except TimeoutError:
            return json_response(503, {"ok": False, "error": "timeout after 5s"})
        except (ConnectError, ConnectTimeout, ConnectionError) as exc:
            return json_response(503, {"ok": False, "error": str(exc)})
        if 200 <= got.status < 300:
            return json_response(200, {"ok": True})
        return json_response(503, {"ok": False, "upstream_status": got.status})


def method_not_allowed(allow: str) -> LocalResponse:
    response = json_response(
        405, {"error": {"type": "method_not_allowed", "message": f"use {allow}"}}
    )
    return LocalResponse(
        response.status, response.body, response.content_type, ((b"allow", allow.encode("ascii")),)
    )
