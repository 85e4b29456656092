"""The line helpers every line compressor shares: folding runs and normalising lines."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.transforms.lines import _NORMALISERS, fold_runs, normalise_many


def _fold(lines: list[str], protected: set[int]) -> tuple[set[int], dict[int, str]]:
    keep = set(range(len(lines)))
    after: dict[int, str] = {}
    fold_runs(lines, keep, protected, after, {}, exact=False)
    return keep, after


LONG = "worker {} finished the nightly rebuild of shard {} in {} ms"


def test_a_run_of_similar_lines_folds_into_its_first() -> None:
    lines = [LONG.format(i, i * 3, i * 7) for i in range(5)]
    keep, after = _fold(lines, set())
    assert keep == {0}
    assert after == {0: "[... 4 similar lines omitted]"}


def test_a_protected_line_splits_a_run_and_short_stretches_stay() -> None:
    lines = [LONG.format(i, i, i) for i in range(5)]
    # Two lines either side of a protected one: no stretch has a first line and two more.
    assert _fold(lines, {2}) == (set(range(5)), {})
    # After a protected first line, the three that follow still fold.
    keep, after = _fold(lines[:4], {0})
    assert keep == {0, 1} and after == {1: "[... 2 similar lines omitted]"}


# The normalisers as they read most plainly; the module spells some of them so that the
# regex engine can skip ahead to a possible first character.
_PLAIN = (
    r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?",
    r"\b\d\d:\d\d:\d\d(?:[.,]\d+)?\b",
    r"\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b",
    r"\b0x[0-9a-fA-F]+\b|\b(?=[a-f]*\d)[0-9a-f]{7,}\b",
    r"(?<![\w.~-])(?:[A-Za-z]:)?[\w.~-]*+(?:[/\\][\w.~-]++)+",
    r"\d+(?:\.\d+)*",
)
_ATOMS = st.sampled_from(
    ["0", "7", "a", "f", "F", "g", "x", "0x", "-", ":", ".", ",", " ", "T", "Z", "+", "/",
     "\\", "_", "\n", "é", "٣", "2024-01-02", "12:30:45", "deadbeef", "0xBEEF", "C:",
     "12345678-1234-abcd-1234-123456789abc", "abcdef1"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(_ATOMS, max_size=24).map("".join))
def test_the_normalisers_match_their_plain_spelling(text: str) -> None:
    fast = plain = text
    for (pattern, repl), spelled in zip(_NORMALISERS, _PLAIN, strict=True):
        fast = pattern.sub(repl, fast)
        plain = re.sub(spelled, repl, plain)
        assert fast == plain


def test_near_identical_lines_normalise_to_one_string() -> None:
    a, b = normalise_many(
        [
            "2026-12-04T18:30:01Z GET /api/v1/users/17 took 12.5 ms id=deadbeef01",
            "2026-12-05T09:00:59Z GET /api/v2/users/9 took 3 ms id=0badcafe99",
        ]
    )
    assert a == b == "<ts> GET <path> took <n> ms id=<hex>"
