"""``headroom-parity run|record [--only TRANSFORM] [--fixtures DIR]``.

``run`` exits 1 when any fixture diverges (and prints a unified diff of the first one),
2 on an unusable fixture tree, else 0. ``record`` re-records outputs on purpose.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from headroom.parity.fixtures import FixtureError
from headroom.parity.runner import (
    DIFF,
    MATCHED,
    SKIPPED,
    Outcome,
    record_all,
    run_all,
    unified_diff,
)
from headroom.parity.transforms import TRANSFORMS

DEFAULT_ROOT = Path("tests/parity/fixtures")


def _summary(outcomes: list[Outcome], labels: tuple[str, str, str]) -> str:
    counts: dict[str, Counter[str]] = {}
    for o in outcomes:
        counts.setdefault(o.fixture.transform, Counter())[o.status] += 1
    width = max([len(t) for t in counts] + [9])
    rows = []
    for transform in sorted(counts):
        c = counts[transform]
        cells = "  ".join(
            f"{label} {c[s]:3d}" for s, label in zip((MATCHED, DIFF, SKIPPED), labels, strict=True)
        )
        rows.append(f"{transform.ljust(width)}  {cells}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="headroom-parity",
        description="Replay golden fixtures through the transforms (run: exit 1 on any diff) "
        "or re-record their outputs on purpose (record). Run from the repository root.",
    )
    parser.add_argument("command", choices=("run", "record"))
    parser.add_argument("--only", choices=sorted(TRANSFORMS), help="one transform's fixtures")
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_ROOT, help="fixture root")
    args = parser.parse_args(argv)
    try:
        if args.command == "record":
            outcomes = record_all(args.fixtures, args.only)
            print(_summary(outcomes, ("unchanged", "re-recorded", "skipped")))
            return 0
        outcomes = run_all(args.fixtures, args.only)
    except FixtureError as exc:
        print(f"headroom-parity: {exc}", file=sys.stderr)
        return 2
    print(_summary(outcomes, ("matched", "diff", "skipped")))
    diffs = [o for o in outcomes if o.status == DIFF]
    for o in outcomes:
        if o.status == SKIPPED:
            print(f"skipped {o.fixture.path}: {o.detail}")
            break
    if diffs:
        print(f"\n{len(diffs)} fixture(s) diverged; first:\n{unified_diff(diffs[0])}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
