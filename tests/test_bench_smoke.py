"""``python -m bench proxy --quick`` end to end: the fake upstream, the real proxy, wrk and
the raw-socket clients all start, talk and stop, and every row lands in the JSON report.
Speed targets are not asserted here (the machine is shared); the bench reports them. The
same for ``python -m bench hardening --quick``, which must also leave no process behind."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
KEYS = ["metric", "unit", "direct", "proxied", "ratio_or_added", "target", "met", "note"]


def _assert_rows(rows: list[dict[str, Any]], *needles: str) -> None:
    """Every row has the suite columns and a finite measured value; a row for each needle."""
    metrics = " | ".join(r["metric"] for r in rows)
    for needle in needles:
        assert needle in metrics, f"no row for {needle!r}"
    for r in rows:
        assert list(r) == KEYS, r
        assert isinstance(r["proxied"], float) and math.isfinite(r["proxied"]), r


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_quick_proxy_bench_writes_every_row(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk not installed (apt-get install wrk; .ci/run installs it)")
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "proxy", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["quick"] is True
    rows = report["suites"]["proxy"]["rows"]
    _assert_rows(
        rows,
        "small GET req/s",
        "CPU per small GET",
        "info-level request logs",
        "added latency p50",
        "added latency p99",
        "POST, streamed path",
        "POST, buffered /v1/messages",
        "streamed download",
        "streamed upload",
        "download: proxy peak RSS growth",
        "upload: proxy peak RSS growth",
        "SSE time to first event",
        "concurrent open SSE streams",
    )
    for r in rows:
        # Rates must be positive; an RSS growth of exactly 0 is a real measurement (the 4 MiB
        # allocator top pad absorbs a streamed transfer), but never negative.
        growth = "RSS growth" in r["metric"] and r["proxied"] >= 0
        assert r["proxied"] > 0 or growth or "latency" in r["metric"] or "SSE" in r["metric"], r
        if r["target"]:
            assert r["met"] in ("yes", "NO"), r
    assert "== proxy" in done.stdout


def test_fake_upstream_counts_chunked_bodies_split_anywhere() -> None:
    """The sink's chunked decoder must not depend on how TCP splits the body, and must stop
    exactly at the body's end so a pipelined request after it is still seen."""
    from bench.fake_upstream import _ChunkedCounter

    body = b"5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\nx-trailer: y\r\n\r\n"
    wire = body + b"GET /small HTTP/1.1\r\n\r\n"
    for cut in range(len(wire) + 1):
        counter = _ChunkedCounter()
        used = counter.feed(memoryview(wire[:cut]))
        if not counter.done:
            assert used == cut
            used = cut + counter.feed(memoryview(wire[cut:]))
        assert counter.done and counter.count == 6, cut
        assert wire[used:] == b"GET /small HTTP/1.1\r\n\r\n", cut


HARDENING_KEYS = ["attack", "outcome", "rss_start_mb", "rss_peak_mb", "rss_growth_mb",
                  "healthz_worst_ms", "healthz_failed", "goal", "ok", "detail"]  # fmt: skip
HARDENING_ATTACKS = ["baseline", "pipelining", "slow_body", "buffering_h1", "buffering_h1_held",
                     "buffering_h2", "h2_priority_flood", "h2_unknown_flood",
                     "h2_sustained_priority", "brotli_bomb", "kill9_orphans",
                     "kill9_orphans_workers"]  # fmt: skip


def _processes_marked(marker: str) -> list[int]:
    """Live processes whose environment carries ``marker`` (children inherit it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _marked_run(
    suite: str, tmp_path: Path, timeout: float
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]], str]:
    """``python -m bench SUITE --quick`` with a marker in its environment (every process it
    starts inherits it); the run, its rows and the marker."""
    out = tmp_path / "bench.json"
    marker = f"HEADROOM_BENCH_SMOKE={uuid.uuid4().hex}"
    name, value = marker.split("=")
    done = subprocess.run(
        [sys.executable, "-m", "bench", suite, "--quick", "--json", str(out)],
        cwd=ROOT,
        env={**os.environ, name: value},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows: list[dict[str, Any]] = json.loads(out.read_text())["suites"][suite]["rows"]
    return done, rows, marker


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_quick_hardening_bench_writes_every_row_and_leaves_no_process(tmp_path: Path) -> None:
    """Goals are not asserted (the machine is shared); every row is measured, ``ok`` is
    computed, and no proxy, helper or monitor outlives the run."""
    done, rows, marker = _marked_run("hardening", tmp_path, 60)
    assert [r["attack"] for r in rows] == HARDENING_ATTACKS
    for r in rows:
        assert list(r) == HARDENING_KEYS, r
        assert r["outcome"] != "error", r
        assert isinstance(r["ok"], bool) and r["goal"], r
        assert r["rss_start_mb"] > 0 and r["rss_growth_mb"] >= 0, r
        assert 0 < r["healthz_worst_ms"] <= 2000 and r["healthz_failed"] >= 0, r
    assert "== hardening" in done.stdout
    time.sleep(0.6)  # a helper notices its parent is gone within 0.5 s
    assert _processes_marked(marker) == []


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_quick_nginx_comparison_writes_every_row_and_stops_nginx(tmp_path: Path) -> None:
    """nginx, the fake upstream and the proxy start, every row is measured against the
    same run's nginx, and no process outlives the suite."""
    if shutil.which("nginx") is None or shutil.which("wrk") is None:
        pytest.skip("nginx or wrk not installed (.ci/run installs both)")
    _done, rows, marker = _marked_run("nginx", tmp_path, 80)
    _assert_rows(
        rows,
        "RSS at start",
        "mixed requests",
        "through nginx",
        "through headroom",
        "headroom / nginx",
        "CPU per small GET",
        "added latency p50",
        "SSE added time",
    )
    for r in rows:
        if "req/s" in r["unit"] or "MiB" in r["unit"] or "us/req" in r["unit"]:
            assert r["direct"] > 0 and r["proxied"] > 0, r
    time.sleep(0.3)
    assert _processes_marked(marker) == []
