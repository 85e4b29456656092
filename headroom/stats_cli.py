"""``headroom-proxy stats [URL]``: a running proxy's ``/stats`` as a table a person reads.

``URL`` is the proxy's address (``http://127.0.0.1:8787`` by default; ``/stats`` is added
when the path is empty). ``HEADROOM_PROXY_TOKEN``, when set, is sent as the bearer token a
non-loopback ``/stats`` asks for. ``--json`` prints the document as it came.

Exit codes: 0 shown, 1 the proxy could not be reached or did not answer 200, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

DEFAULT_URL = "http://127.0.0.1:8787"
TIMEOUT_S = 5.0


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="headroom-proxy stats", description="Show a running proxy's /stats."
    )
    parser.add_argument("url", nargs="?", default=DEFAULT_URL, help=f"default {DEFAULT_URL}")
    parser.add_argument("--json", action="store_true", help="the /stats JSON as it came")
    args = parser.parse_args(list(argv))
    url = stats_url(args.url)
    try:
        body = _fetch(url, os.environ.get("HEADROOM_PROXY_TOKEN"))
        data = orjson.loads(body)
    except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
        print(f"headroom-proxy stats: error: {url}: {_reason(exc)}", file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(render(data))
    return 0


def stats_url(given: str) -> str:
    parts = urlsplit(given if "://" in given else f"http://{given}")
    path = parts.path if parts.path not in ("", "/") else "/stats"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _fetch(url: str, token: str | None) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        data: bytes = response.read()
        return data


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"answered {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc)


def render(data: dict[str, Any]) -> str:
    """The figures an operator looks at first, one per line, in sections."""
    req, comp = data.get("requests", {}), data.get("compression", {})
    ccr, latency = data.get("ccr", {}), data.get("latency", {})
    conns = data.get("connections", {})
    before, after = int(comp.get("tokens_before", 0)), int(comp.get("tokens_after", 0))
    ratio = f"{after / before:.3f}" if before else "-"
    uptime = _duration(float(data.get("uptime_seconds", 0)))
    rows: list[tuple[str, str]] = [
        ("proxy", f"{data.get('service', '?')} {data.get('version', '?')}, up {uptime}"),
        ("requests", f"{req.get('total', 0):,}"),
        ("  by status", _pairs(req.get("by_status", {}))),
        ("  by outcome", _pairs(req.get("by_outcome", {}))),
        ("  by upstream", _pairs(req.get("by_upstream", {}))),
        ("  upstream errors", _pairs(data.get("upstream", {}).get("errors_by_upstream", {}))),
        ("  errors", _pairs(req.get("errors", {}))),
        ("compressed requests", f"{comp.get('requests_compressed', 0):,}"),
        ("  tokens", f"{before:,} -> {after:,} (ratio {ratio}, saved {before - after:,})"),
        ("  saved by strategy", _pairs(data.get("tokens_saved_by_strategy", {}))),
        ("  saved by tool", _pairs(data.get("tokens_saved_by_tool", {}))),
        ("  bypassed", _pairs(comp.get("bypassed", {}))),
        (
            "retrievals",
            f"{ccr.get('retrievals_by_tool_loop', 0):,} answered, "
            f"{ccr.get('tool_loop_misses', 0):,} missed",
        ),
        ("latency", f"avg {latency.get('average_ms', 0)} ms, max {latency.get('max_ms', 0)} ms"),
        (
            "connections",
            f"{conns.get('active', 0)} open, {conns.get('exchanges', 0)} in flight, "
            f"{conns.get('buffered_request_bytes', 0):,} B buffered",
        ),
    ]
    rows += _provider_tokens(data.get("tokens"))
    workers = data.get("workers")
    if isinstance(workers, dict):
        retired = workers.get("retired", {}).get("workers", 0)
        rows.append(("workers", f"{workers.get('count', 0)} live, {retired} retired"))
    rows += _learning(data.get("learning"))
    width = max(len(name) for name, _ in rows)
    return "".join(f"{name.ljust(width)}  {value}\n" for name, value in rows)


def _provider_tokens(tokens: Any) -> list[tuple[str, str]]:
    """What the providers reported billing: tokens, the cache's share and, with a price
    table, the estimated cost with and without headroom."""
    if not isinstance(tokens, dict) or not tokens.get("answers"):
        return [("provider tokens", "-")]
    rows = [
        (
            "provider tokens",
            f"{tokens.get('input', 0):,} in ({tokens.get('cached', 0):,} cached, hit rate "
            f"{100 * float(tokens.get('cache_hit_rate', 0)):.1f}%), "
            f"{tokens.get('output', 0):,} out, over {tokens.get('answers', 0):,} answers",
        )
    ]
    cost = tokens.get("cost")
    if isinstance(cost, dict):
        rows.append(
            (
                "  estimated cost",
                f"${cost.get('with_headroom', 0):.4f} billed, "
                f"${cost.get('without_headroom', 0):.4f} without headroom "
                f"(saved ${cost.get('saved', 0):.4f})",
            )
        )
    return rows


def _learning(learning: Any) -> list[tuple[str, str]]:
    """The learner's state in a line, then each tool or program whose new outputs it steers
    (lossless or learned terms), with the reason it gives."""
    if not isinstance(learning, dict) or not learning.get("enabled"):
        return [("learning", "off")]
    if "error" in learning:
        return [("learning", f"unavailable: {learning['error']}")]
    rows = [
        (
            "learning",
            f"{learning.get('retrievals', 0):,} retrievals recorded here, "
            f"{learning.get('extra_tokens', 0):,} tokens kept by steers"
            + (", read-only" if learning.get("readonly") else ""),
        )
    ]
    for row in learning.get("by_tool", []):
        if row.get("decision") in ("lossless", "terms"):
            rows.append((f"  {row['tool']} ({row['kind']})", str(row.get("why", ""))))
    return rows


def _pairs(counts: dict[str, Any]) -> str:
    if not counts:
        return "-"
    ordered = sorted(counts.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
    return ", ".join(f"{k} {int(v):,}" for k, v in ordered)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
