"""Keyword tables, the structural tier and the Tiered combinator."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.signals.importance import (
    NOTHING,
    SUMMARY,
    TRACE,
    Importance,
    KeywordTier,
    StructuralTier,
    Tiered,
    default_detector,
    line_starts,
    resolve,
)
from headroom.signals.keywords import ERROR, IMPORTANCE, SECURITY, WARNING, KeywordDetector


def test_keyword_detector_whole_word_case_insensitive() -> None:
    det = KeywordDetector()
    assert [h.word for h in det.hits("Build FAILED: Error in prefix")] == ["failed", "error"]
    assert det.hits("errorless terror_handler prefixes") == []
    assert det.has("request timed out after 30s", ERROR)
    first = det.first("note: then a fatal crash")
    assert first is not None and first.word == "note"
    assert det.categories_in("TODO fix the auth") == {IMPORTANCE, SECURITY}


@pytest.mark.parametrize("word", ["timeout", "abort", "denied", "rejected"])
def test_operational_failures_are_errors(word: str) -> None:
    assert KeywordTier().score(f"request {word} by upstream", "log").category == ERROR


def test_token_is_not_a_security_word() -> None:
    assert KeywordDetector().hits("prompt token count 1234, completion tokens 9") == []
    assert KeywordTier().score("+    api_token = load()", "diff") == NOTHING


def test_security_only_in_diffs_and_warnings_never_in_diffs() -> None:
    tier = KeywordTier()
    assert tier.score("+    password = os.environ['PW']", "diff").category == SECURITY
    assert tier.score("password reset email sent", "log") == NOTHING
    assert tier.score("warning: deprecated call", "log").category == WARNING
    assert tier.score("+ # warning: deprecated call", "diff") == NOTHING


def test_highest_priority_keyword_decides_not_the_leftmost() -> None:
    imp = KeywordTier().score("note: the build failed", "text")
    assert imp.category == ERROR and imp.priority == 0.95


@pytest.mark.parametrize(
    ("line", "category"),
    [
        ("Traceback (most recent call last):", TRACE),
        ('  File "/app/x.py", line 3, in run', TRACE),
        ("KeyError: 'user:42'", ERROR),
        ("requests.exceptions.ConnectionError: refused", ERROR),
        ("    at Object.<anonymous> (/app/index.js:10:15)", TRACE),
        ("\tat com.acme.Main.run(Main.java:42)", TRACE),
        ("thread 'main' panicked at src/main.rs:5:9:", ERROR),
        ("  --> src/lib.rs:42:17", TRACE),
        ("88 |     let total: u64 = x.sum::<i64>();", TRACE),
        ("   |                ^^^ expected `u64`", TRACE),
        ("E       AssertionError: expected 200, got 500", ERROR),
        ("tests/test_orders.py:42: AssertionError", ERROR),
        ("goroutine 1 [running]:", TRACE),
        ("\t/go/src/app/main.go:27 +0x1d", TRACE),
        ("src/app.c:12:5: error: expected ';'", ERROR),
        ("src/app.ts(3,7): error TS2322: Type 'x' is not assignable", ERROR),
        ("tests/test_a.py:9: DeprecationWarning: old api", WARNING),
        ("==== 3 passed, 1 failed in 2.1s ====", SUMMARY),
        ("Tests:       1 failed, 41 passed, 42 total", SUMMARY),
        ("test result: FAILED. 3 passed; 1 failed; 0 ignored", SUMMARY),
        ("npm ERR! code ELIFECYCLE", ERROR),
        ("make: *** [Makefile:12: all] Error 2", ERROR),
        ("Process exited with code 137", ERROR),
        ("Process exited with code 0", SUMMARY),
        ("--- FAIL: TestParse (0.00s)", ERROR),
    ],
)
def test_structural_shapes(line: str, category: str) -> None:
    assert StructuralTier().score(line, "log").category == category


def test_structure_beats_keywords_where_it_knows_better() -> None:
    tiered = default_detector()
    # keyword tier alone calls a summary an error line
    assert KeywordTier().score("==== 3 passed, 1 failed in 2.1s ====", "log").category == ERROR
    assert tiered.score("==== 3 passed, 1 failed in 2.1s ====", "log").category == SUMMARY
    # keyword tier finds nothing in a Python exception line
    assert KeywordTier().score("KeyError: 'id'", "log") == NOTHING
    assert tiered.score("KeyError: 'id'", "log").category == ERROR
    # a stack frame whose path has an error word is a frame, not an error line
    assert tiered.score('  File "/app/error.py", line 3, in f', "log").category == TRACE


def test_structural_tier_is_silent_in_diffs_and_search() -> None:
    assert StructuralTier().scan("KeyError: 'x'\nsrc/a.c:1:1: error: y", "diff") == {}
    assert StructuralTier().scan("src/a.c:1:1: error: y", "search") == {}


def test_resolve_rules() -> None:
    weak = Importance(WARNING, 0.75, 0.6)
    strong = Importance(SUMMARY, 0.9, 0.95)
    medium = Importance(ERROR, 0.95, 0.75)
    assert resolve([weak, strong, medium]) == strong  # first over 0.7 wins
    assert resolve([weak, Importance(IMPORTANCE, 0.6, 0.65)]) == Importance(
        IMPORTANCE, 0.6, 0.65
    )  # else the most confident
    assert resolve([]) == NOTHING


LINES = st.sampled_from(
    [
        "INFO ok",
        "ERROR boom",
        "Traceback (most recent call last):",
        "ValueError: bad",
        "  at f (/x.js:1:2)",
        "== 1 failed, 2 passed ==",
        "exit code 2",
        "x.c:1:2: warning: y",
        "note: the build failed",
        "",
        "DEBUG token refresh",
    ]
) | st.text(max_size=40)


@settings(max_examples=80, deadline=None)
@given(st.lists(LINES, max_size=30), st.sampled_from(["text", "search", "diff", "log"]))
def test_scan_agrees_with_per_line_score(lines: list[str], context: str) -> None:
    text = "\n".join(lines)
    tiered = default_detector()
    scanned = tiered.scan(text, context)  # type: ignore[arg-type]
    for i, line in enumerate(text.split("\n")):
        assert scanned.get(i, NOTHING) == tiered.score(line, context), (i, line)  # type: ignore[arg-type]


@given(st.text(max_size=200))
def test_line_starts(text: str) -> None:
    starts = line_starts(text)
    assert starts[0] == 0 and len(starts) == text.count("\n") + 1
    assert all(text[s - 1] == "\n" for s in starts[1:])


def test_tiered_with_one_tier_is_that_tier() -> None:
    assert Tiered([KeywordTier()]).score("fatal: x", "log").category == ERROR


def test_hits_over_many_chunks_equal_hits_per_line() -> None:
    import random

    rng = random.Random(4)
    words = ["error here", "x", "FATAL:", "note: fail", "prefix", "", "timed out", "auth"]
    text = "\n".join(rng.choice(words) * rng.randint(1, 30) for _ in range(20000))
    assert len(text) > 4 * 65536
    det = KeywordDetector()
    expected = []
    for start, line in zip(line_starts(text), text.split("\n"), strict=True):
        expected += [h._replace(start=h.start + start) for h in det.hits(line)]
    assert det.hits(text) == expected
