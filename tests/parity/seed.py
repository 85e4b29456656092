"""Create (or refresh) the fixture set: ``python -m tests.parity.seed [--only TRANSFORM]``.

Inputs come from the seeded corpus at a third of its default sizes plus small hand cases
(several mirror the shapes of another compressor's published fixtures). An existing
fixture keeps its ``recorded_at`` when its output is unchanged; a transform whose module is
missing is skipped and named. ``headroom-parity record`` re-records existing fixtures only.
"""

from __future__ import annotations

import argparse
import inspect
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from headroom.parity.fixtures import Fixture, load_fixture, make_fixture
from headroom.parity.runner import record
from headroom.parity.transforms import TransformUnavailable
from tests.corpus import GENERATORS, Sample

ROOT = Path(__file__).parent / "fixtures"
SEED = 20261121

_COMPRESSOR_OF = {
    "json_array": "smart_crusher",
    "json_object": "smart_crusher",
    "log": "log",
    "diff": "diff",
    "search": "search",
    "prose": "text",
}


def small_corpus() -> list[Sample]:
    out = []
    for name, gen in GENERATORS.items():
        n = inspect.signature(gen).parameters["n"].default // 3
        out.append(gen(random.Random(f"{SEED}:{name}:fixture"), n))
    return out


def _hand_cases() -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(transform, case, input, config)."""
    rows30 = [
        {"id": i, "status": "error" if i % 5 == 0 else "ok", "msg": f"line {i}"} for i in range(30)
    ]
    yield "smart_crusher", "dict_array_30", json.dumps(rows30), {}
    heartbeat = [{"event": "heartbeat", "ok": True}] * 40
    yield "smart_crusher", "duplicate_dicts_40", json.dumps(heartbeat), {}
    numbers = list(range(10, 30)) + list(range(50, 70))
    yield "smart_crusher", "number_array_40", json.dumps(numbers), {}
    table50 = [{"id": i, "level": "info", "msg": "ok"} for i in range(50)]
    yield "smart_crusher", "lossless_table_50", json.dumps(table50), {"ccr": False}
    yield (
        "smart_crusher",
        "lossless_only_30",
        json.dumps(rows30),
        {"options": {"lossless_only": True}},
    )
    nested = {"meta": {"page": 1}, "items": [{"k": f"key-{i}", "v": i * 3} for i in range(20)]}
    yield "smart_crusher", "nested_object_with_array", json.dumps(nested, indent=2), {}
    yield "smart_crusher", "not_json", "this is not json [1, 2", {}

    info = [f"2026-11-21 10:{i // 60:02d}:{i % 60:02d} INFO tick {i}" for i in range(300)]
    tail = [
        "2026-11-21 10:05:00 ERROR job crashed",
        "Traceback (most recent call last):",
        '  File "job.py", line 3, in <module>',
        "ZeroDivisionError: division by zero",
        "# end of log",
    ]
    yield "log", "info_300_then_traceback", "\n".join(info + tail) + "\n", {}
    yield "log", "short_log_verbatim", "INFO a\nWARN b\nERROR c\nINFO d\n", {}
    yield "log", "info_300_no_store", "\n".join(info + tail) + "\n", {"ccr": False}

    hits = "\n".join(
        f"src/a.py:{i}:    {'raise error' if i == 7 else 'value = compute()'}" for i in range(1, 13)
    )
    yield "search", "twelve_hits_one_file", hits + "\n", {}
    yield "search", "twelve_hits_query", hits + "\n", {"query": "compute"}

    small_diff = (
        "diff --git a/app.py b/app.py\nindex 1a2b3c4..5d6e7f8 100644\n--- a/app.py\n+++ b/app.py\n"
        "@@ -1,4 +1,4 @@\n import os\n-DEBUG = True\n+DEBUG = False\n \n def main():\n"
    )
    yield "diff", "small_verbatim", small_diff, {}
    many = GENERATORS["git_diff"](random.Random(f"{SEED}:diff:many"), 24)
    yield "diff", "many_files_24", many.text, {"query": "handler_3"}
    few = GENERATORS["git_diff"](random.Random(f"{SEED}:diff:few"), 4)
    yield "diff", "no_store", few.text, {"ccr": False}
    text = GENERATORS["prose"](random.Random(f"{SEED}:text:nostore"), 12)
    yield "text", "prose_no_store", text.text, {"ccr": False}
    yield "text", "short_declines", "Two short sentences. Nothing to drop here.", {}

    trailer_rows = [{"id": i, "state": "error" if i == 7 else "ok"} for i in range(60)]
    yield (
        "pipeline",
        "json_with_trailer",
        (json.dumps(trailer_rows, indent=2) + "\n(showing 60 of 512 rows)\n"),
        {},
    )

    sentence = "The cache is warmed before the first request arrives."
    facts = [f"Fact {i}: shard {i} holds {i * 1000} keys in region r{i}." for i in range(8)]
    yield "text", "redundant", " ".join([sentence] * 10 + facts), {}

    yield (
        "detector",
        "build_six_lines",
        ("INFO start\nWARN slow\nERROR boom\nFAILED test_x\nINFO retry\nERROR again\n"),
        {},
    )
    yield "detector", "json_object_small", '{"foo": "bar"}', {}
    yield "detector", "number_array", "[1,2,3,4,5]", {}
    yield "detector", "empty", "   \n", {}
    yield (
        "detector",
        "timestamps_not_search",
        (
            "2026-11-21T10:00:00Z INFO a\n2026-11-21T10:00:01Z INFO b\n"
            "2026-11-21T10:00:02Z ERROR c\n"
        ),
        {},
    )
    yield (
        "detector",
        "gcc_diagnostics",
        (
            "src/main.c:12:5: error: expected ';'\nsrc/main.c:20:1: warning: unused\n"
            "make: *** [Makefile:4: all] Error 1\n"
        ),
        {},
    )
    yield (
        "detector",
        "numbered_arrow",
        "     1\u2192import os\n     2\u2192\n"
        "     3\u2192def f():\n     4\u2192    return os.sep\n",
        {},
    )
    yield (
        "detector",
        "mixed_sections",
        (
            "Here is what I found in the repository after looking around for a while.\n\n"
            "```python\ndef f():\n    return 1\n```\n\n" + "\n".join(info[:30]) + "\n"
        ),
        {"sections": True},
    )


def planned() -> Iterator[Fixture]:
    for sample in small_corpus():
        text = sample.text
        yield make_fixture(ROOT, "detector", sample.name, text, {})
        yield make_fixture(ROOT, "pipeline", sample.name, text, {"query": sample.query})
        compressor = _COMPRESSOR_OF.get(sample.kind)
        if compressor and not sample.numbered:
            yield make_fixture(ROOT, compressor, sample.name, text, {"query": sample.query})
    for transform, case, text, config in _hand_cases():
        yield make_fixture(ROOT, transform, case, text, config)
    base = small_corpus()
    by_name = {s.name: s for s in base}
    yield make_fixture(
        ROOT,
        "pipeline",
        "json_lossless_only",
        by_name["json_db_rows"].text,
        {"options": {"lossy": False}},
    )
    yield make_fixture(
        ROOT,
        "pipeline",
        "log_no_ccr",
        by_name["log_service"].text,
        {"options": {"enable_ccr_marker": False}},
    )
    yield make_fixture(
        ROOT,
        "pipeline",
        "log_claude_model",
        by_name["log_pytest"].text,
        {"model": "claude-sonnet-4-5"},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.parity.seed")
    parser.add_argument("--only")
    args = parser.parse_args(argv)
    skipped: set[str] = set()
    written = 0
    for fixture in planned():
        if args.only and fixture.transform != args.only:
            continue
        if fixture.path.exists():
            existing = load_fixture(fixture.path)
            if existing.input == fixture.input and existing.config == fixture.config:
                fixture = existing
        try:
            record(fixture)
        except TransformUnavailable:
            skipped.add(fixture.transform)
            continue
        written += 1
    print(f"{written} fixtures written under {ROOT}")
    for transform in sorted(skipped):
        print(f"skipped {transform}: its module is not there yet")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
