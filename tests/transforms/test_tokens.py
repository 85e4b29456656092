"""The token estimator and the offline-only exact counter."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.signals import scans
from headroom.signals.importance import line_starts
from headroom.transforms import tokens
from headroom.transforms.tokens import count_tokens, estimate_tokens, family_scale


def test_empty_is_zero_and_anything_else_at_least_one():
    assert estimate_tokens("") == 0
    assert estimate_tokens(" ") == 1
    assert estimate_tokens("\udcff") >= 1  # lone surrogates do not break the count


def test_punctuation_heavy_json_costs_more_per_char_than_prose():
    rows = json.dumps([{"id": i, "ok": True, "v": i * 1.5} for i in range(200)])
    prose = "We measured the change across every region and saw steady gains. " * 60
    json_cpt = len(rows) / estimate_tokens(rows)
    prose_cpt = len(prose) / estimate_tokens(prose)
    assert 2.0 < json_cpt < 3.3 and 3.8 < prose_cpt < 5.0


def test_known_splits_are_close():
    # cl100k: 10 tokens; 1 token per word plus the full stop.
    assert abs(estimate_tokens("The quick brown fox jumps over the lazy dog.") - 10) <= 2


def test_more_text_never_counts_fewer_tokens():
    text = ""
    last = 0
    for piece in ["abc", " ", "123", "{}", "\n", "é", "word"] * 20:
        text += piece
        now = estimate_tokens(text)
        assert now >= last
        last = now


@pytest.mark.parametrize(
    ("model", "scale"),
    [("claude-sonnet-4-5", 1.1), ("gpt-4o-mini", 0.95), ("gpt-4-turbo", 1.0), ("", 1.0)],
)
def test_family_scale(model, scale):
    assert family_scale(model) == scale


def test_count_falls_back_to_the_estimate_without_tiktoken(monkeypatch):
    monkeypatch.setitem(sys.modules, "tiktoken", None)
    tokens._offline_encoding.cache_clear()
    try:
        assert count_tokens("hello world", "gpt-4o") == estimate_tokens("hello world", "gpt-4o")
    finally:
        tokens._offline_encoding.cache_clear()


def test_exact_counting_never_fetches(monkeypatch):
    """tiktoken's fetch function is swapped for a refusal while an encoding loads."""
    fetched: list[str] = []
    load = types.ModuleType("tiktoken.load")
    load.read_file = lambda url: fetched.append(url) or b""
    fake = types.ModuleType("tiktoken")
    fake.load = load

    def get_encoding(name):
        load.read_file(f"https://blobs.invalid/{name}.tiktoken")  # a cache miss
        raise AssertionError("unreachable: the fetch must have been refused")

    fake.get_encoding = get_encoding
    monkeypatch.setitem(sys.modules, "tiktoken", fake)
    monkeypatch.setitem(sys.modules, "tiktoken.load", load)
    tokens._offline_encoding.cache_clear()
    try:
        assert count_tokens("hello", "gpt-4o") == estimate_tokens("hello", "gpt-4o")
        assert fetched == []
        assert load.read_file("x") == b"" and fetched == ["x"]  # restored afterwards
    finally:
        tokens._offline_encoding.cache_clear()


def test_one_scan_remembers_long_texts_scans_for_the_call_only() -> None:
    long_text = Path(__file__).read_text(encoding="utf-8") * 20
    other = long_text.replace("a", "1")  # a digit weighs more than a letter
    outside = [estimate_tokens(long_text, m) for m in ("gpt-4o", "claude-sonnet-4", "")]
    outside_starts = line_starts(long_text)
    with scans.one_scan():
        inside = [estimate_tokens(long_text, m) for m in ("gpt-4o", "claude-sonnet-4", "")]
        assert inside == outside  # one scan, each model's scale applied to it
        assert estimate_tokens(other) != estimate_tokens(long_text)  # never another's count
        starts = line_starts(long_text)
        assert line_starts(long_text) is starts and list(starts) == list(outside_starts)
        with scans.one_scan():  # a nested call shares the outer memo
            assert scans.held() == 3
        assert scans.held() == 3
    assert scans.held() == 0, "nothing outlives the call"
    assert line_starts(long_text) is not line_starts(long_text)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200))
def test_the_raw_estimate_is_the_weighted_sum_of_all_six_byte_classes(text: str) -> None:
    """The sixth class is counted as what the other five leave: the same sum as counting
    it (every byte falls in exactly one class)."""
    classes = text.encode("utf-8", "surrogatepass").translate(tokens._CLASSES)
    expected = (
        classes.count(b"a") * tokens._W_LETTER
        + classes.count(b"0") * tokens._W_DIGIT
        + classes.count(b" ") * tokens._W_SPACE
        + classes.count(b".") * tokens._W_PUNCT
        + classes.count(b"\n") * tokens._W_NEWLINE
        + classes.count(b"u") * tokens._W_NON_ASCII
    )
    assert tokens._raw_tokens(text) == expected
