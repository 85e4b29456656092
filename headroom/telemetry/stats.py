"""Counters behind ``/stats`` (JSON) and ``/metrics`` (Prometheus text).

Plain numbers and dicts, no metrics library: the same snapshot has to be rendered two ways
and, with several workers, summed across processes, which is simplest when the state is
plain data. ``telemetry.metrics`` renders them for Prometheus.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from headroom import __version__
from headroom.prices import Prices
from headroom.telemetry.tokens import OTHER, TokenTally, bounded

LATENCY_BUCKETS_MS = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
RATIO_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
MAX_TOOLS = 64


@dataclass
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0
    peak: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        self.n += 1
        self.total += value
        self.peak = max(self.peak, value)
        i = bisect_left(self.buckets, value)
        if i < len(self.counts):
            self.counts[i] += 1

    def to_data(self) -> dict[str, Any]:
        return {"counts": list(self.counts), "total": self.total, "n": self.n, "peak": self.peak}

    def add_data(self, data: dict[str, Any]) -> None:
        """Fold another process's histogram (same buckets) into this one."""
        counts = data["counts"]
        if len(counts) != len(self.counts):
            raise ValueError("histogram buckets differ")
        self.counts = [a + int(b) for a, b in zip(self.counts, counts, strict=True)]
        self.total += float(data["total"])
        self.n += int(data["n"])
        self.peak = max(self.peak, float(data["peak"]))

    def summary(self) -> dict[str, float]:
        return {
            "count": self.n,
            "average_ms": round(self.total / self.n, 3) if self.n else 0.0,
            "max_ms": round(self.peak, 3),
        }


@dataclass
class Stats:
    started: float = field(default_factory=time.time)
    requests: int = 0
    by_path: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    by_outcome: Counter[str] = field(default_factory=Counter)  # ok, client_gone, aborted
    by_upstream: Counter[str] = field(default_factory=Counter)  # requests each upstream took
    upstream_errors: Counter[str] = field(default_factory=Counter)  # its 502/503/504s
    errors: Counter[str] = field(default_factory=Counter)
    compressed_requests: int = 0
    bypassed: Counter[str] = field(default_factory=Counter)
    tokens_before: int = 0
    tokens_after: int = 0
    by_strategy: Counter[str] = field(default_factory=Counter)
    saved_by_strategy: Counter[str] = field(default_factory=Counter)
    by_tool: Counter[str] = field(default_factory=Counter)  # tool outputs compressed
    saved_by_tool: Counter[str] = field(default_factory=Counter)
    pipeline: dict[str, Histogram] = field(default_factory=dict)
    ccr_stores: int = 0
    ccr_store_failures: int = 0
    ccr_loop_retrievals: int = 0
    ccr_loop_misses: int = 0
    # Served retrieval rounds (``proxy.round_ledger``): records written, answers put back
    # into later requests (hits), records found but not usable (misses), records too big.
    rounds_remembered: int = 0
    rounds_restored: int = 0
    rounds_missed: int = 0
    rounds_too_large: int = 0
    time_to_headers: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS_MS))
    duration: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS_MS))
    ratio: Histogram = field(default_factory=lambda: Histogram(RATIO_BUCKETS))
    active_connections: int = 0
    active_exchanges: int = 0  # requests, HTTP/2 streams and WebSocket sessions in flight
    buffered_bytes: int = 0  # request body bytes held now, against --max-buffered-bytes
    memo_bytes: int = 0  # compressed outputs remembered (--memo-max-bytes per process)
    memo_entries: int = 0
    ledger_bytes: int = 0  # served rounds cached by this process (--ledger-max-bytes)
    ledger_entries: int = 0
    tokens: TokenTally = field(default_factory=TokenTally)  # what the providers billed

    def request_done(
        self,
        path: str,
        status: int | None,
        total_ms: float,
        headers_ms: float | None,
        known_path: bool,
        outcome: str,
        upstream: str | None = None,
        upstream_failed: bool = False,
    ) -> None:
        """``upstream`` names the origin a forwarded request went to (None: answered
        here); ``upstream_failed`` that the proxy answered for it (unreachable, timed out)."""
        self.requests += 1
        self.by_outcome[outcome] += 1
        if upstream is not None:
            self.by_upstream[upstream] += 1
            if upstream_failed:
                self.upstream_errors[upstream] += 1
        self.by_path[path if known_path else "other"] += 1
        self.by_status[status or 0] += 1
        self.duration.observe(total_ms)
        if headers_ms is not None:
            self.time_to_headers.observe(headers_ms)

    def compressed_tool(self, tool: str, count: int, saved: int) -> None:
        """Tool names come from clients: past ``MAX_TOOLS`` distinct names the rest are
        counted as "other", so no client can grow /stats and /metrics without bound."""
        name = bounded(tool or "unnamed", self.by_tool, MAX_TOOLS, OTHER)
        self.by_tool[name] += count
        self.saved_by_tool[name] += saved

    def stage(self, name: str, ms: float) -> None:
        hist = self.pipeline.get(name)
        if hist is None:
            hist = self.pipeline[name] = Histogram(LATENCY_BUCKETS_MS)
        hist.observe(ms)

    # ------------------------------------------------------------ across processes

    def to_data(self) -> dict[str, Any]:
        """Everything as plain JSON-able data, buckets included, so that several workers'
        numbers can be added up exactly (a rendered snapshot has lost the buckets)."""
        return {
            "started": self.started,
            **{name: getattr(self, name) for name in _SCALARS},
            **{name: dict(getattr(self, name)) for name in _COUNTERS},
            "by_status": {str(k): v for k, v in self.by_status.items()},
            **{name: getattr(self, name).to_data() for name in _HISTOGRAMS},
            "pipeline": {k: v.to_data() for k, v in self.pipeline.items()},
            "tokens": self.tokens.to_data(),
        }

    def add_data(self, data: dict[str, Any]) -> None:
        """Add another process's ``to_data()``: counters and histograms sum, connections
        (a gauge of live workers) sum, the start time is the earliest."""
        self.started = min(self.started, float(data["started"]))
        for name in _SCALARS:
            setattr(self, name, getattr(self, name) + int(data.get(name, 0)))
        for name in _COUNTERS:
            getattr(self, name).update(data.get(name, {}))
        self.by_status.update({int(k): v for k, v in data.get("by_status", {}).items()})
        for name in _HISTOGRAMS:
            getattr(self, name).add_data(data[name])
        for key, hist in data.get("pipeline", {}).items():
            if key not in self.pipeline:
                self.pipeline[key] = Histogram(LATENCY_BUCKETS_MS)
            self.pipeline[key].add_data(hist)
        self.tokens.add_data(data.get("tokens", {}))

    @classmethod
    def merged(cls, parts: list[dict[str, Any]]) -> Stats:
        total = cls(started=time.time())
        for part in parts:
            total.add_data(part)
        return total

    def snapshot(
        self, extra: dict[str, Any] | None = None, prices: Prices | None = None
    ) -> dict[str, Any]:
        saved = self.tokens_before - self.tokens_after
        out: dict[str, Any] = {
            "service": "headroom-proxy",
            "version": __version__,
            "uptime_seconds": round(time.time() - self.started, 3),
            "requests": {
                "total": self.requests,
                "by_path": dict(self.by_path),
                "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
                # ok: the client has the whole answer; client_gone: it left before that;
                # aborted: the proxy cut the answer (upstream failure, drain deadline).
                "by_outcome": dict(self.by_outcome),
                "by_upstream": dict(self.by_upstream),
                "errors": dict(self.errors),
            },
            "compression": {
                "requests_compressed": self.compressed_requests,
                "bypassed": dict(self.bypassed),
                "tokens_before": self.tokens_before,
                "tokens_after": self.tokens_after,
                "tokens_saved": saved,
                # Compressed/original tokens per compressed request: counts of ratios up
                # to each bound (not cumulative).
                "ratio_histogram": {"le": list(self.ratio.buckets), "counts": self.ratio.counts},
            },
            "compressions_by_strategy": dict(self.by_strategy),
            "tokens_saved_by_strategy": dict(self.saved_by_strategy),
            "compressions_by_tool": dict(self.by_tool),
            "tokens_saved_by_tool": dict(self.saved_by_tool),
            "pipeline_timing": {k: v.summary() for k, v in sorted(self.pipeline.items())},
            **self._state(),
            "tokens": self.tokens.snapshot(prices),
        }
        if extra:
            out.update(extra)
        return out

    def _state(self) -> dict[str, Any]:
        """The CCR, upstream, latency, connection and cache sections of ``snapshot``."""
        return {
            "ccr": {
                "stores": self.ccr_stores,
                "store_failures": self.ccr_store_failures,
                "retrievals_by_tool_loop": self.ccr_loop_retrievals,
                "tool_loop_misses": self.ccr_loop_misses,
                "rounds": {
                    "remembered": self.rounds_remembered,
                    "restored": self.rounds_restored,
                    "missed": self.rounds_missed,
                    "too_large": self.rounds_too_large,
                },
            },
            "upstream": {
                "time_to_headers": self.time_to_headers.summary(),
                "errors_by_upstream": dict(self.upstream_errors),
            },
            "latency": self.duration.summary(),
            "connections": {
                "active": self.active_connections,
                "exchanges": self.active_exchanges,
                "buffered_request_bytes": self.buffered_bytes,
            },
            "caches": {
                "compressed_outputs": {"bytes": self.memo_bytes, "entries": self.memo_entries},
                "retrieval_ledger": {"bytes": self.ledger_bytes, "entries": self.ledger_entries},
            },
        }


# Values of now, not sums over time: a worker that is gone holds none of them.
GAUGES = (
    "active_connections",
    "active_exchanges",
    "buffered_bytes",
    "memo_bytes",
    "memo_entries",
    "ledger_bytes",
    "ledger_entries",
)
_SCALARS = (
    "requests",
    "compressed_requests",
    "tokens_before",
    "tokens_after",
    "ccr_stores",
    "ccr_store_failures",
    "ccr_loop_retrievals",
    "ccr_loop_misses",
    "rounds_remembered",
    "rounds_restored",
    "rounds_missed",
    "rounds_too_large",
    *GAUGES,
)
_COUNTERS = (
    "by_path",
    "by_outcome",
    "by_upstream",
    "upstream_errors",
    "errors",
    "bypassed",
    "by_strategy",
    "saved_by_strategy",
    "by_tool",
    "saved_by_tool",
)
_HISTOGRAMS = ("time_to_headers", "duration", "ratio")
