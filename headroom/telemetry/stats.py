"""Counters behind ``/stats`` (JSON) and ``/metrics`` (Prometheus text).

Plain numbers and dicts, no metrics library: the same snapshot has to be rendered two ways
and, with several workers, summed across processes, which is simplest when the state is
plain data. The exposition format is small and written out here with correct ``# HELP`` /
``# TYPE`` lines, label escaping and cumulative histogram buckets.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from headroom import __version__
from headroom.prices import Prices
from headroom.telemetry.exposition import Exposition
from headroom.telemetry.tokens import TokenTally, token_metrics

LATENCY_BUCKETS_MS = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
RATIO_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


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
    pipeline: dict[str, Histogram] = field(default_factory=dict)
    ccr_stores: int = 0
    ccr_store_failures: int = 0
    ccr_loop_retrievals: int = 0
    ccr_loop_misses: int = 0
    time_to_headers: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS_MS))
    duration: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS_MS))
    ratio: Histogram = field(default_factory=lambda: Histogram(RATIO_BUCKETS))
    active_connections: int = 0
    active_exchanges: int = 0  # requests, HTTP/2 streams and WebSocket sessions in flight
    buffered_bytes: int = 0  # request body bytes held now, against --max-buffered-bytes
    memo_bytes: int = 0  # compressed outputs remembered (--memo-max-bytes per process)
    memo_entries: int = 0
    ledger_bytes: int = 0  # mixed-turn retrieval rounds remembered (--ledger-max-bytes)
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
            },
            "compressions_by_strategy": dict(self.by_strategy),
            "tokens_saved_by_strategy": dict(self.saved_by_strategy),
            "pipeline_timing": {k: v.summary() for k, v in sorted(self.pipeline.items())},
            "ccr": {
                "stores": self.ccr_stores,
                "store_failures": self.ccr_store_failures,
                "retrievals_by_tool_loop": self.ccr_loop_retrievals,
                "tool_loop_misses": self.ccr_loop_misses,
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
            "tokens": self.tokens.snapshot(prices),
        }
        if extra:
            out.update(extra)
        return out


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
)
_HISTOGRAMS = ("time_to_headers", "duration", "ratio")


# What /metrics exposes, in order: (name, type, help, Stats field, label). A ``label``
# names the key of a Counter field; None means the field is one number (or a histogram).
_Spec = tuple[str, str, str, str, str | None]
_TRAFFIC: tuple[_Spec, ...] = (
    ("headroom_requests_total", "counter", "Requests answered, by status.", "by_status", "status"),
    (
        "headroom_requests_by_path_total",
        "counter",
        "Requests answered, by path.",
        "by_path",
        "path",
    ),
    (
        "headroom_requests_by_outcome_total",
        "counter",
        "Requests by how they ended: ok, client_gone (left early), aborted (cut).",
        "by_outcome",
        "outcome",
    ),
    (
        "headroom_requests_by_upstream_total",
        "counter",
        "Requests forwarded, by the upstream that took them (--upstream is 'upstream').",
        "by_upstream",
        "upstream",
    ),
    (
        "headroom_upstream_errors_total",
        "counter",
        "Requests the proxy answered 502/503/504 for, by upstream (unreachable, timed out).",
        "upstream_errors",
        "upstream",
    ),
    ("headroom_errors_total", "counter", "Errors the proxy answered, by type.", "errors", "type"),
    (
        "headroom_request_duration_ms",
        "histogram",
        "Time from request head to the last response byte.",
        "duration",
        None,
    ),
    (
        "headroom_upstream_time_to_headers_ms",
        "histogram",
        "Time from request head to the upstream's response headers.",
        "time_to_headers",
        None,
    ),
    (
        "headroom_compressed_requests_total",
        "counter",
        "Requests whose body was compressed.",
        "compressed_requests",
        None,
    ),
    (
        "headroom_compression_bypassed_total",
        "counter",
        "Requests on a compression route forwarded uncompressed, by reason.",
        "bypassed",
        "reason",
    ),
    (
        "headroom_compressions_total",
        "counter",
        "Tool outputs compressed, by strategy.",
        "by_strategy",
        "strategy",
    ),
    (
        "headroom_tokens_saved_total",
        "counter",
        "Estimated tokens removed, by strategy.",
        "saved_by_strategy",
        "strategy",
    ),
    (
        "headroom_compression_ratio",
        "histogram",
        "Compressed/original tokens per compressed request.",
        "ratio",
        None,
    ),
    (
        "headroom_ccr_stores_total",
        "counter",
        "Originals written to the CCR store.",
        "ccr_stores",
        None,
    ),
    (
        "headroom_ccr_store_failures_total",
        "counter",
        "CCR writes that failed (the request went out uncompressed).",
        "ccr_store_failures",
        None,
    ),
)
_GAUGES: tuple[_Spec, ...] = (
    (
        "headroom_active_connections",
        "gauge",
        "Client connections open now.",
        "active_connections",
        None,
    ),
    (
        "headroom_active_exchanges",
        "gauge",
        "Requests, HTTP/2 streams and WebSocket sessions in flight now.",
        "active_exchanges",
        None,
    ),
    (
        "headroom_buffered_request_bytes",
        "gauge",
        "Request body bytes held for buffering now (bounded by --max-buffered-bytes).",
        "buffered_bytes",
        None,
    ),
    (
        "headroom_memo_bytes",
        "gauge",
        "Compressed tool outputs remembered now (bounded by --memo-max-bytes per process).",
        "memo_bytes",
        None,
    ),
    (
        "headroom_retrieval_ledger_bytes",
        "gauge",
        "Mixed-turn retrieval rounds remembered now (bounded by --ledger-max-bytes).",
        "ledger_bytes",
        None,
    ),
)


def _expose(out: Exposition, stats: Stats, specs: tuple[_Spec, ...]) -> None:
    for name, kind, help_text, attr, label in specs:
        value = getattr(stats, attr)
        if kind == "histogram":
            out.histogram(name, help_text, value)
        elif label is None:
            out.metric(name, kind, help_text, [({}, value)])
        else:
            rows = [({label: str(k)}, v) for k, v in sorted(value.items())]
            out.metric(name, kind, help_text, rows)


def prometheus(
    stats: Stats,
    ccr: dict[str, int] | None = None,
    workers: list[dict[str, Any]] | None = None,
    prices: Prices | None = None,
) -> str:
    """Totals (summed over workers when there are several), plus per-worker rows labelled
    by worker slot and pid when ``workers`` is given."""
    out = Exposition()
    _expose(out, stats, _TRAFFIC)
    for key, value in sorted((ccr or {}).items()):
        out.metric(
            f"headroom_ccr_{key}_total", "counter", f"CCR retrieval endpoint: {key}.", [({}, value)]
        )
    _expose(out, stats, _GAUGES)
    if workers is not None:
        _worker_metrics(out, workers)
    return "\n".join(out.lines) + "\n" + token_metrics(stats.tokens, prices)


def _worker_metrics(out: Exposition, workers: list[dict[str, Any]]) -> None:
    def labels(row: dict[str, Any]) -> dict[str, str]:
        return {"worker": str(row["worker"]), "pid": str(row["pid"])}

    out.metric("headroom_workers", "gauge", "Worker processes serving now.", [({}, len(workers))])
    out.metric(
        "headroom_worker_requests_total",
        "counter",
        "Requests answered, by live worker (totals above also count retired workers).",
        [(labels(row), row["requests"]) for row in workers],
    )
    out.metric(
        "headroom_worker_active_connections",
        "gauge",
        "Client connections open now, by worker.",
        [(labels(row), row["active_connections"]) for row in workers],
    )
