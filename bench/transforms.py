"""Compression engine: token reduction per content type, speed and memory per compressor.

Rows of two kinds, one table:

* ``reduce:<type>`` — the seeded corpus through the default ``Pipeline`` with a store,
  tokens summed over the samples of that type, against the issue's targets (JSON arrays
  ≥ 80 %, logs ≥ 90 %, diffs ≥ 40 %, search ≥ 60 %, prose never grows). Reported, not
  asserted.
* ``speed:<compressor>`` — one compressor (or the detector, the token estimator, the whole
  pipeline) on one core: MB/s on a ~1 MB input (best of a few runs), µs per call on a
  ~10 KB input (median), and the peak extra memory traced while compressing the large
  input, as a multiple of its size. ``orjson.loads`` of the same bytes (as a JSON string
  literal when the input is not JSON) is timed in the same run as the yardstick, because
  the machine is shared and absolute figures drift.

``--quick`` uses ~128 KB large inputs and fewer repetitions (smoke run, < 10 s).
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import orjson

from headroom.ccr.store import PendingWrites
from headroom.transforms.base import CompressContext
from headroom.transforms.detect import detect
from headroom.transforms.pipeline import Pipeline
from headroom.transforms.pipeline_config import PipelineConfig
from headroom.transforms.tokens import estimate_tokens
from tests.corpus import Sample, corpus, scaled

KEYS = (
    "row", "input_KB", "tokens_in", "tokens_out", "saved_%", "target", "met",
    "MB/s", "us_per_10KB", "peak_mem_x", "orjson_MB/s", "vs_orjson",
)  # fmt: skip

# type → (corpus kinds, minimum saving in percent; 0 = "never grows"; None = no target)
REDUCTION_TARGETS: dict[str, tuple[tuple[str, ...], float | None]] = {
    "json_arrays": (("json_array",), 80.0),
    "json_objects": (("json_object",), None),
    "logs": (("log",), 90.0),
    "diffs": (("diff",), 40.0),
    "search": (("search",), 60.0),
    "prose": (("prose",), 0.0),
    "mixed": (("mixed",), None),
    "read_logs": (("read_log",), None),
    "code_html_reads": (("source_code", "html", "read_source_code"), 0.0),
}

# name → (corpus generator, how to build the callable). Speed targets in MB/s.
SPEED_CASES: tuple[tuple[str, str, float | None], ...] = (
    ("smart_crusher", "json_api_rows", 10.0),
    ("log", "log_service", 20.0),
    ("diff", "git_diff", 20.0),
    ("search", "grep_results", 20.0),
    ("text", "prose", None),
    ("pipeline(json)", "json_api_rows", None),
    ("pipeline(log)", "log_service", None),
    ("detect", "log_service", None),
    ("estimate_tokens", "json_api_rows", None),
)


def _row(**values: Any) -> dict[str, Any]:
    return {k: values.get(k) for k in KEYS}


def _reduction_rows() -> list[dict[str, Any]]:
    pipeline = Pipeline(PipelineConfig())
    totals: dict[str, list[int]] = {}
    sizes: dict[str, int] = {}
    for sample in corpus():
        ctx = CompressContext(query=sample.query, store=PendingWrites())
        result = pipeline.compress(sample.text, ctx)
        kind = "read_" + sample.kind if sample.numbered else sample.kind
        t = totals.setdefault(kind, [0, 0])
        t[0] += result.tokens_before
        t[1] += result.tokens_after
        sizes[kind] = sizes.get(kind, 0) + len(sample.text.encode())
    rows = []
    for label, (kinds, target) in REDUCTION_TARGETS.items():
        before = sum(totals.get(k, [0, 0])[0] for k in kinds)
        after = sum(totals.get(k, [0, 0])[1] for k in kinds)
        if not before:
            continue
        saved = 100.0 * (before - after) / before
        if target is None:
            goal, met = "", ""
        else:
            goal = f">={target:g}%" if target else "no growth"
            met = "yes" if saved >= target else "NO"
        rows.append(
            _row(
                row=f"reduce:{label}",
                input_KB=sum(sizes.get(k, 0) for k in kinds) / 1024,
                tokens_in=before,
                tokens_out=after,
                target=goal,
                met=met,
                **{"saved_%": round(saved, 1)},
            )
        )
    return rows


def _runner(name: str) -> Callable[[str], Any]:
    if name == "detect":
        return detect
    if name == "estimate_tokens":
        return estimate_tokens
    if name.startswith("pipeline"):
        pipeline = Pipeline(PipelineConfig())
        return lambda text: pipeline.compress(text, CompressContext(store=PendingWrites()))
    module = __import__(f"headroom.transforms.{name}", fromlist=["x"])
    cls = {
        "smart_crusher": "SmartCrusher",
        "log": "LogCompressor",
        "diff": "DiffCompressor",
        "search": "SearchCompressor",
        "text": "TextCompressor",
    }[name]
    compressor = getattr(module, cls)(None)
    return lambda text: compressor.compress(text, CompressContext(store=PendingWrites()))


def _best_seconds(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _median_us(fn: Callable[[], Any], calls: int) -> float:
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def _peak_ratio(fn: Callable[[], Any], size: int) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / size


def _yardstick(text: str) -> bytes:
    """What ``orjson.loads`` parses: the text itself if JSON, else it as a string literal."""
    data = text.encode()
    try:
        orjson.loads(data)
        return data
    except orjson.JSONDecodeError:
        return orjson.dumps(text)


def _speed_row(name: str, large: Sample, small: Sample, target: float | None, quick: bool):
    run = _runner(name)
    big, little = large.text, small.text
    size = len(big.encode())
    run(big)  # warm caches (regex compilation, automata)
    seconds = _best_seconds(lambda: run(big), 2 if quick else 3)
    us = _median_us(lambda: run(little), 10 if quick else 60)
    peak = _peak_ratio(lambda: run(big), size)
    yard = _yardstick(big)
    yard_seconds = _best_seconds(lambda: orjson.loads(yard), 3 if quick else 5)
    mbps = size / seconds / 1e6
    orjson_mbps = len(yard) / yard_seconds / 1e6
    return _row(
        row=f"speed:{name}",
        input_KB=size / 1024,
        target=f">={target:g}MB/s" if target else "",
        met=("yes" if mbps >= target else "NO") if target else "",
        **{
            "MB/s": round(mbps, 1),
            "us_per_10KB": round(us),
            "peak_mem_x": round(peak, 2),
            "orjson_MB/s": round(orjson_mbps),
            "vs_orjson": f"1/{orjson_mbps / mbps:.0f}",
        },
    )


def run(quick: bool) -> list[dict[str, Any]]:
    rows = _reduction_rows()
    large_bytes = 128 * 1024 if quick else 1024 * 1024
    for name, generator, target in SPEED_CASES:
        large = scaled(generator, large_bytes)
        small = scaled(generator, 10 * 1024)
        rows.append(_speed_row(name, large, small, target, quick))
    return rows
