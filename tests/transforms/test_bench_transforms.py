"""``python -m bench transforms --quick`` runs end to end and every row has every column.
The figures themselves are reported by the bench, never asserted here (shared machine)."""

from __future__ import annotations

import pytest

from bench import transforms


@pytest.mark.slow
def test_quick_transforms_bench_rows():
    rows = transforms.run(quick=True)
    assert all(tuple(r) == transforms.KEYS for r in rows)
    names = [r["row"] for r in rows]
    for needed in (
        "reduce:json_arrays",
        "reduce:logs",
        "reduce:diffs",
        "reduce:search",
        "reduce:prose",
        "speed:smart_crusher",
        "speed:log",
        "speed:diff",
        "speed:search",
        "speed:text",
        "speed:pipeline(log)",
    ):
        assert needed in names
    for row in rows:
        if row["row"].startswith("speed:"):
            assert row["MB/s"] > 0 and row["orjson_MB/s"] > 0 and row["peak_mem_x"] > 0
        else:
            assert row["tokens_out"] <= row["tokens_in"]
