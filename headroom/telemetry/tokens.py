"""What the providers billed, by API and model: the token counts their answers report, the
share read from their prompt caches, and the tokens compression kept out of each request.

Counted per answer whose usage was read (``proxy.usage_tap``); compression savings are
counted with the answer they went out with, so each model's savings can be priced. With a
price table (``--price-table``) the snapshot also estimates the cost as billed and what it
would have been without headroom: the saved tokens priced as the prompt they went out
with was, the share it read from the cache as cached input and the rest as fresh input.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from headroom.prices import Prices
from headroom.telemetry.exposition import Exposition

FIELDS = ("answers", "input", "cached", "cache_write", "output", "saved", "saved_cached")
UNKNOWN_MODEL = "unknown"
OTHER = "other"
MAX_ROWS = 64  # (api, model) rows; model names come from clients and upstreams


def bounded(key: Any, seen: Collection[Any], limit: int, other: Any) -> Any:
    """``key``, or ``other`` once ``limit`` distinct keys are held and ``key`` is new:
    labels that clients choose must not grow /stats and /metrics without bound."""
    return key if key in seen or len(seen) < limit else other


@dataclass
class TokenTally:
    """Counts by ``(api, model)``, in the order of ``FIELDS``; and answers whose counts
    could not be read (too large to copy, undecodable), by API."""

    rows: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    unread: dict[str, int] = field(default_factory=dict)

    def add(
        self,
        api: str,
        model: str,
        counts: tuple[int, int, int, int],
        saved: int,
    ) -> None:
        """One answer: ``counts`` are (input, cached, cache_write, output). Of the tokens
        compression saved, the share this answer's prompt read from the cache is counted as
        ``saved_cached``: uncompressed, the same share would have been cache reads (earlier
        turns' outputs are the cached prefix), so it is priced as cached input."""
        tokens_in, cached = counts[0], counts[1]
        saved_cached = saved * cached // tokens_in if tokens_in else 0
        key = bounded((api, model or UNKNOWN_MODEL), self.rows, MAX_ROWS, (api, OTHER))
        self._fold(key, (1, *counts, saved, saved_cached))

    def _fold(self, key: tuple[str, str], values: Any) -> None:
        row = self.rows.setdefault(key, [0] * len(FIELDS))
        for i, value in enumerate(values):
            row[i] += int(value)

    def not_read(self, api: str) -> None:
        self.unread[api] = self.unread.get(api, 0) + 1

    def to_data(self) -> dict[str, Any]:
        return {
            "rows": [[api, model, *row] for (api, model), row in sorted(self.rows.items())],
            "unread": dict(self.unread),
        }

    def add_data(self, data: dict[str, Any]) -> None:
        for api, model, *row in data.get("rows", []):
            self._fold((str(api), str(model)), row)
        for api, n in data.get("unread", {}).items():
            self.unread[api] = self.unread.get(api, 0) + int(n)

    def snapshot(self, prices: Prices | None = None) -> dict[str, Any]:
        """``/stats`` ``tokens``: per API and model, totals, the cache hit rate (cached
        over input tokens) and, with prices, the estimated cost."""
        by_api: dict[str, dict[str, Any]] = {}
        total = [0] * len(FIELDS)
        for (api, model), row in sorted(self.rows.items()):
            entry = _named(row)
            if prices is not None:
                entry["cost"] = prices.cost(model, row)
            by_api.setdefault(api, {})[model] = entry
            total = [a + b for a, b in zip(total, row, strict=True)]
        out: dict[str, Any] = {**_named(total), "by_api": by_api, "unread": dict(self.unread)}
        if prices is not None:
            costs = [m["cost"] for models in by_api.values() for m in models.values()]
            out["cost"] = _cost_total(costs)
        return out


def _named(row: list[int]) -> dict[str, Any]:
    entry: dict[str, Any] = dict(zip(FIELDS, row, strict=True))
    entry["cache_hit_rate"] = round(row[2] / row[1], 4) if row[1] else 0.0
    return entry


def _cost_total(costs: list[dict[str, Any]]) -> dict[str, Any]:
    priced = [c for c in costs if c.get("priced")]
    with_ = round(sum(c["with_headroom"] for c in priced), 6)
    without = round(sum(c["without_headroom"] for c in priced), 6)
    return {
        "currency": "USD",
        "with_headroom": with_,
        "without_headroom": without,
        "saved": round(without - with_, 6),
        "unpriced_models": sorted({c["model"] for c in costs if not c.get("priced")}),
    }


def token_metrics(tally: TokenTally, prices: Prices | None = None) -> str:
    """``/metrics`` lines: token counters by api, model and kind; the cost estimate."""
    out = Exposition()
    rows = sorted(tally.rows.items())
    out.metric(
        "headroom_provider_tokens_total",
        "counter",
        "Tokens the providers reported, by api, model and kind (input includes cached; "
        "saved: kept out of requests by compression).",
        [
            ({"api": api, "model": model, "kind": kind}, row[i])
            for (api, model), row in rows
            for i, kind in enumerate(FIELDS)
            if i
        ],
    )
    out.metric(
        "headroom_provider_answers_total",
        "counter",
        "Answers whose token counts were read, by api and model.",
        [({"api": api, "model": model}, row[0]) for (api, model), row in rows],
    )
    out.metric(
        "headroom_provider_usage_unread_total",
        "counter",
        "Answers whose token counts could not be read (too large to copy, undecodable).",
        [({"api": api}, n) for api, n in sorted(tally.unread.items())],
    )
    if prices is not None:
        samples = []
        for (_, model), row in rows:
            cost = prices.cost(model, row)
            if cost["priced"]:
                for case in ("with_headroom", "without_headroom"):
                    samples.append(({"model": model, "case": case}, cost[case]))
        out.metric(
            "headroom_estimated_cost_usd",
            "counter",
            "Estimated provider cost from --price-table, as billed and without compression.",
            samples,
        )
    return "\n".join(out.lines) + "\n"
