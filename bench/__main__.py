"""``python -m bench [SUITE ...] [--quick] [--json FILE]``: run benchmark suites, print a
table per suite, and write every figure as JSON.

A suite is a module ``bench/<name>.py`` with ``run(quick: bool) -> list[dict]``: one dict a
row, the same keys in every row. Ratios are measured against a baseline in the same run,
because the machine is shared and absolute numbers drift.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

SUITES = (
    "proxy",
    "ccr",
    "transforms",
    "compression",
    "protocols",
    "workers",
    "fidelity",
    "api_shapes",
    "hardening",
    "learning",
    "rounds",
    "nginx",
)


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no rows)"
    keys = list(rows[0])
    cells = [[_fmt(r.get(k)) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    line = "  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(out)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return "" if value is None else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("suites", nargs="*", metavar="SUITE", help=f"one of {', '.join(SUITES)}")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes")
    parser.add_argument("--json", type=Path, default=Path("bench/results.json"))
    args = parser.parse_args(argv)
    suites = args.suites or list(SUITES)
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(unknown)}")
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "quick": args.quick,
        "suites": {},
    }
    for name in suites:
        module = importlib.import_module(f"bench.{name}")
        t0 = time.perf_counter()
        rows = module.run(quick=args.quick)
        elapsed = time.perf_counter() - t0
        report["suites"][name] = {"seconds": round(elapsed, 2), "rows": rows}
        print(f"\n== {name} ({elapsed:.1f}s)\n{_table(rows)}", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
