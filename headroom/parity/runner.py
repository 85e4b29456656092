"""Replaying and re-recording fixtures; rendering the first mismatch as a unified diff."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headroom.parity.fixtures import Fixture, load_fixtures, now, save_fixture, sha256
from headroom.parity.transforms import TransformUnavailable, apply

MATCHED = "matched"
DIFF = "diff"
SKIPPED = "skipped"


@dataclass(frozen=True)
class Outcome:
    fixture: Fixture
    status: str  # matched | diff | skipped
    actual: Any = None
    detail: str = ""  # why skipped, or what broke


def _replay(fixture: Fixture) -> Outcome:
    if sha256(fixture.input) != fixture.input_sha256:
        return Outcome(fixture, DIFF, None, "input_sha256 does not match the input")
    try:
        actual = apply(fixture.transform, fixture.input, fixture.config)
    except TransformUnavailable as exc:
        return Outcome(fixture, SKIPPED, None, str(exc))
    except Exception as exc:  # a crash is a divergence like any other
        return Outcome(fixture, DIFF, None, f"raised {type(exc).__name__}: {exc}")
    # Compare as JSON would store it (tuples become lists, and so on).
    normalised = json.loads(json.dumps(actual, ensure_ascii=False))
    status = MATCHED if normalised == fixture.output else DIFF
    return Outcome(fixture, status, normalised)


def run_all(root: Path, only: str | None = None) -> list[Outcome]:
    return [_replay(f) for f in load_fixtures(root, only)]


def record(fixture: Fixture) -> bool:
    """Recompute and save ``fixture``; True if its output changed. Skips unavailable ones."""
    actual = apply(fixture.transform, fixture.input, fixture.config)
    normalised = json.loads(json.dumps(actual, ensure_ascii=False))
    changed = normalised != fixture.output or not fixture.recorded_at
    if changed:
        fixture.output = normalised
        fixture.recorded_at = now()
    fixture.input_sha256 = sha256(fixture.input)
    save_fixture(fixture)
    return changed


def record_all(root: Path, only: str | None = None) -> list[Outcome]:
    outcomes = []
    for fixture in load_fixtures(root, only):
        try:
            changed = record(fixture)
        except TransformUnavailable as exc:
            outcomes.append(Outcome(fixture, SKIPPED, None, str(exc)))
            continue
        outcomes.append(Outcome(fixture, DIFF if changed else MATCHED, fixture.output))
    return outcomes


def _lines(value: Any) -> list[str]:
    """A readable line view: string fields unfold into their lines, the rest as JSON."""
    if isinstance(value, dict):
        out: list[str] = []
        for key, item in value.items():
            if isinstance(item, str) and "\n" in item:
                out.append(f"{key}:")
                out.extend("  " + line for line in item.split("\n"))
            else:
                out.append(f"{key}: {json.dumps(item, ensure_ascii=False)}")
        return out
    if isinstance(value, str):
        return value.split("\n")
    return [json.dumps(value, ensure_ascii=False)]


def unified_diff(outcome: Outcome, max_lines: int = 40) -> str:
    if outcome.actual is None:
        return f"{outcome.fixture.path}: {outcome.detail}"
    lines = list(
        difflib.unified_diff(
            _lines(outcome.fixture.output),
            _lines(outcome.actual),
            fromfile=f"{outcome.fixture.path} (recorded)",
            tofile="(now)",
            lineterm="",
            n=2,
        )
    )
    if len(lines) > max_lines:
        lines = [*lines[:max_lines], f"... {len(lines) - max_lines} more diff lines"]
    return "\n".join(lines)
