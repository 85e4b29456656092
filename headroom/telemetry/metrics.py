"""``/metrics``: the counters of ``Stats`` in the Prometheus text format, one table of what
is exposed under which name, with which help text and label."""

from __future__ import annotations

from typing import Any

from headroom.prices import Prices
from headroom.telemetry.exposition import Exposition
from headroom.telemetry.stats import Stats
from headroom.telemetry.tokens import token_metrics

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
        "headroom_compressions_by_tool_total",
        "counter",
        "Tool outputs compressed, by the tool that produced them.",
        "by_tool",
        "tool",
    ),
    (
        "headroom_tokens_saved_by_tool_total",
        "counter",
        "Estimated tokens removed, by the tool whose output they were.",
        "saved_by_tool",
        "tool",
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
    *(
        (f"headroom_rounds_{name}_total", "counter", help_text, f"rounds_{name}", None)
        for name, help_text in (
            ("remembered", "Served headroom_retrieve rounds recorded for later turns."),
            ("restored", "Answers replaced in a later request by the rounds served in them."),
            ("missed", "Recorded rounds that could not be put back (original gone, or I/O)."),
            ("too_large", "Served rounds too large to record."),
        )
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
        "Served retrieval rounds this process holds ready to restore (--ledger-max-bytes).",
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
