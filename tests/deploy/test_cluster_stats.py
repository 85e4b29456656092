"""Cluster-wide counters in memory and in a tmp dir: merging, retiring, consistent reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from headroom.telemetry.cluster import ClusterView, StatsDir
from headroom.telemetry.metrics import prometheus
from headroom.telemetry.stats import Stats


def _stats(requests: int, status: int = 200, ms: float = 3.0) -> Stats:
    stats = Stats()
    for _ in range(requests):
        stats.request_done("/v1/messages", status, ms, ms / 2, True, "ok")
    stats.bypassed["timeout"] += 1
    stats.stage("log", 1.5)
    stats.ratio.observe(0.25)
    stats.active_connections = 2
    return stats


def _record(pid: int, stats: Stats, slot: int = 0) -> dict:
    return {
        "pid": pid,
        "worker": slot,
        "generation": 1,
        "published": 0.0,
        "in_flight": 0,
        "stats": json.loads(json.dumps(stats.to_data())),  # through JSON, as on disk
        "ccr_endpoints": {"retrievals_ok": 1},
    }


def test_merge_adds_every_counter_and_histogram_exactly() -> None:
    a, b = _stats(3), _stats(5, status=502, ms=700.0)
    merged = Stats.merged([a.to_data(), json.loads(json.dumps(b.to_data()))])
    snap = merged.snapshot()
    assert snap["requests"]["total"] == 8
    assert snap["requests"]["by_status"] == {"200": 3, "502": 5}
    assert snap["requests"]["by_outcome"] == {"ok": 8}
    assert snap["compression"]["bypassed"] == {"timeout": 2}
    assert snap["pipeline_timing"]["log"]["count"] == 2
    assert snap["latency"]["count"] == 8 and snap["latency"]["max_ms"] == 700.0
    assert snap["connections"]["active"] == 4
    pairs = zip(a.duration.counts, b.duration.counts, strict=True)
    assert merged.duration.counts == [x + y for x, y in pairs]
    row = {"worker": 0, "pid": 7, "requests": 8, "active_connections": 4}
    text = prometheus(merged, {"retrievals_ok": 2}, [row])
    assert 'headroom_request_duration_ms_bucket{le="+Inf"} 8' in text
    assert 'headroom_worker_requests_total{pid="7",worker="0"} 8' in text


def test_histograms_with_other_buckets_are_refused() -> None:
    data = _stats(1).to_data()
    data["duration"]["counts"] = [1]
    with pytest.raises(ValueError, match="buckets differ"):
        Stats().add_data(data)


def test_retired_workers_keep_counting_and_are_never_counted_twice(tmp_path: Path) -> None:
    folder = StatsDir(tmp_path)
    folder.publish(_record(101, _stats(4), slot=0))
    folder.publish(_record(102, _stats(6), slot=1))
    mine = _stats(1)
    view = ClusterView(folder, lambda: _record(103, mine, slot=2))

    total, endpoints, block = view.gather()
    assert total.requests == 11 and endpoints == {"retrievals_ok": 3}
    assert block["count"] == 3 and block["answered_by"] == 103

    folder.retire(101)  # the supervisor saw it exit
    assert not folder.worker_file(101).exists()
    total, endpoints, block = view.gather()
    assert total.requests == 11, "a retired worker's requests still count"
    assert total.active_connections == 4, "gone workers hold no connections"
    assert block["retired"] == {"workers": 1, "requests": 4}
    assert sorted(r["pid"] for r in block["per_worker"]) == [102, 103]

    folder.publish(_record(101, _stats(4)))  # a stale file reappearing is not double counted
    assert view.gather()[0].requests == 11
    assert folder.retire(999) is None  # no file: nothing to fold
    assert folder.retired()["workers"] == 1
