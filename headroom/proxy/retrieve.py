"""``/v1/retrieve``: fetch an original back by its CCR key, over plain HTTP.

* ``POST /v1/retrieve`` with ``{"hash": "<key>"}`` and ``GET /v1/retrieve/<key>`` →
  200 ``{hash, original, created_at, expires_at, size, encoding}``. ``original`` is the
  text when the bytes are valid UTF-8 (``encoding: "utf-8"``); otherwise ``original`` is
  ``null`` and ``original_base64`` carries the bytes (``encoding: "base64"``), so a client
  never receives a lossy or mangled copy.
* 404 ``not_found`` (never stored here, or forgotten long ago), 410 ``expired`` (stored,
  then outlived its TTL or was evicted: final, do not retry), 400 for a hash that does not
  normalise to a key (``markers.normalize_key``), 405 for other methods, 503 when the store
  fails.
* ``GET /v1/retrieve/stats`` → the store's stats plus this route's counters.

Access: originals are raw tool output (source, logs, secrets), so only loopback clients are
served by default, and anyone else gets the same bare 404 an unknown path gets: the route's
existence is not revealed. With ``--ccr-allow-remote``, remote clients are served when they
present the proxy token (``Authorization: Bearer`` or ``X-Headroom-Proxy-Token``) and get
401 otherwise.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
from typing import Any
from urllib.parse import unquote

import orjson

from headroom.ccr.markers import normalize_key
from headroom.ccr.store import CCRStore, Entry, StoreError
from headroom.config import Config
from headroom.learning.learner import Learner, tokens_of
from headroom.proxy.local import (
    LocalRequest,
    LocalResponse,
    error_response,
    json_response,
    presented_token,
)

log = logging.getLogger("headroom.ccr")

PREFIX = "/v1/retrieve"
STATS_PATH = PREFIX + "/stats"

COUNTER_NAMES = (
    "retrievals_ok",
    "retrievals_not_found",
    "retrievals_expired",
    "bad_requests",
    "store_errors",
    "denied",
)


class RetrieveRoutes:
    def __init__(self, store: CCRStore, config: Config, learner: Learner | None = None) -> None:
        self.store = store
        self.config = config
        self.learner = learner
        self.counters: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)

    def handles(self, path: str) -> bool:
        return path == PREFIX or path.startswith(PREFIX + "/")

    async def handle(self, req: LocalRequest) -> LocalResponse:
        denied = self._check_access(req)
        if denied is not None:
            self.counters["denied"] += 1
            return denied
        if req.path == STATS_PATH:
            return await self._stats(req)
        if req.path == PREFIX:
            if req.method != "POST":
                return _method_not_allowed("POST")
            raw = _hash_from_body(req.body)
        elif req.path.startswith(PREFIX + "/") and "/" not in req.path[len(PREFIX) + 1 :]:
            if req.method != "GET":
                return _method_not_allowed("GET")
            raw = unquote(req.path[len(PREFIX) + 1 :])
        else:
            return _not_found()
        key = normalize_key(raw) if raw is not None else None
        if key is None:
            self.counters["bad_requests"] += 1
            return error_response(
                400,
                "invalid_request",
                "expected a 24-hex-digit CCR hash, as GET /v1/retrieve/<hash> or POST "
                '{"hash": "<hash>"}',
            )
        return await self._retrieve(key)

    # ------------------------------------------------------------ parts

    def _check_access(self, req: LocalRequest) -> LocalResponse | None:
        if req.from_loopback:
            return None
        if not self.config.ccr_allow_remote:
            return _not_found()
        expected = self.config.proxy_token
        presented = presented_token(req)
        if (
            expected
            and presented is not None
            and hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))
        ):
            return None
        return error_response(401, "unauthorized", "a valid proxy token is required")

    async def _retrieve(self, key: str) -> LocalResponse:
        try:
            result = await self.store.get(key)
        except StoreError as exc:
            self.counters["store_errors"] += 1
            log.warning("ccr_retrieve_failed key=%s %s", key, exc)
            return error_response(503, "store_unavailable", str(exc))
        if isinstance(result, Entry):
            self.counters["retrievals_ok"] += 1
            log.info("ccr_retrieve key=%s size=%d", key, len(result.original))
            await self._learn(key, result.original)
            return json_response(200, _entry_payload(result))
        if result.status == "expired":
            self.counters["retrievals_expired"] += 1
            return error_response(
                410,
                "expired",
                f"CCR entry {key} expired (TTL {self.config.ccr_ttl:.0f}s after last use) "
                "and cannot be recovered; do not retry",
            )
        self.counters["retrievals_not_found"] += 1
        return error_response(404, "not_found", f"no CCR entry {key} in this store")

    async def _learn(self, key: str, original: bytes) -> None:
        """A fetch over HTTP is a retrieval too (an MCP tool or a script asked for it); it
        counts against its output, without the words a tool loop would see."""
        if self.learner is None:
            return
        try:
            size = await asyncio.to_thread(tokens_of, original)
            await self.learner.record_retrieval(key, size)
        except StoreError as exc:
            self.learner.counters["errors"] += 1
            log.warning("learning_failed what=retrieval key=%s %s", key, exc)

    async def _stats(self, req: LocalRequest) -> LocalResponse:
        if req.method != "GET":
            return _method_not_allowed("GET")
        try:
            store_stats = await self.store.stats()
        except StoreError as exc:
            self.counters["store_errors"] += 1
            return error_response(503, "store_unavailable", str(exc))
        return json_response(200, {"store": store_stats, "retrieve": dict(self.counters)})


def _entry_payload(entry: Entry) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "hash": entry.key,
        "size": len(entry.original),
        "created_at": entry.created_at,
        "expires_at": entry.expires_at,
    }
    try:
        payload["original"] = entry.original.decode("utf-8")
        payload["encoding"] = "utf-8"
    except UnicodeDecodeError:
        payload["original"] = None
        payload["original_base64"] = base64.b64encode(entry.original).decode("ascii")
        payload["encoding"] = "base64"
    return payload


def _hash_from_body(body: bytes) -> str | None:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    value = doc.get("hash") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else None


def _not_found() -> LocalResponse:
    return error_response(404, "not_found", "not found")


def _method_not_allowed(allow: str) -> LocalResponse:
    response = error_response(405, "method_not_allowed", f"use {allow}")
    return LocalResponse(
        response.status, response.body, response.content_type, ((b"allow", allow.encode()),)
    )
