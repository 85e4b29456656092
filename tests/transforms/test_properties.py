"""Hypothesis properties of the whole pipeline on arbitrary JSON and line-shaped text:
no crash, never larger, deterministic, idempotent, and every marker key is in the store."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headroom.ccr.markers import find_keys
from headroom.ccr.store import PendingWrites
from headroom.transforms.base import CompressContext
from headroom.transforms.detect import detect
from headroom.transforms.pipeline import Pipeline
from headroom.transforms.pipeline_config import PipelineConfig
from headroom.transforms.sections import split_sections
from headroom.transforms.tokens import estimate_tokens
from headroom.transforms.wrappers import restore_numbering, split_numbering

PIPELINE = Pipeline(
    PipelineConfig(
        raise_errors=True,
        min_tokens_json=20,
        min_tokens_log=40,
        min_tokens_diff=40,
        min_tokens_search=30,
        min_tokens_text=60,
    )
)
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["error", "ok", "timeout contacting db", "FAILED", "info"])
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=12) | st.dictionaries(st.text(max_size=8), inner, max_size=8)
    ),
    max_leaves=60,
)
_row = st.fixed_dictionaries(
    {
        "id": st.integers(0, 10**6),
        "status": st.sampled_from(["ok", "ok", "ok", "error"]),
        "msg": st.text(max_size=30),
        "n": st.floats(-1e6, 1e6, allow_nan=False),
    }
)
_rows = st.lists(_row, min_size=0, max_size=80)

_word = st.sampled_from(
    [
        "cache",
        "worker",
        "ERROR",
        "failed",
        "INFO",
        "ok",
        "src/a.py",
        "42",
        "def",
        "return",
        "{",
        "}",
        "@@",
        "+x",
        "-y",
        "WARN",
        "Traceback",
        "→",
        "é",
    ]
)
# Line templates per flavour, so examples reach each compressor rather than all looking
# like one kind; "any" mixes them all (the detector then picks whatever wins).
_FLAVOURS: dict[str, list[str]] = {
    "log": [
        "{ts} INFO {w} {n}",
        "{ts} ERROR {w} failed {n}",
        "    at {w}.run({w}.java:{n})",
        "test_{w} PASSED",
        "E   assert {n} == {n}",
        "{ts} WARN {w}",
        "Traceback {w}",
    ],
    "search": [
        "src/{w}.py:{n}:    {w} = {w}",
        "src/{w}.py-{n}-    {w}",
        "--",
        "src/{w}.py:{n}:{n}: {w}({n})",
    ],
    "diff": [
        "diff --git a/{w} b/{w}",
        "@@ -{n},3 +{n},4 @@",
        "+{w} {n}",
        "-{w} {n}",
        " {w}",
        " {w} {w}",
        "\\ No newline at end of file",
    ],
    "prose": ["{w} {w} {w}.", "", "The {w} was {w} {n} times.", "```", "    {w}({n})"],
}
_FLAVOURS["any"] = [t for templates in _FLAVOURS.values() for t in templates] + ["{n:6d}\t{w}"]


@st.composite
def _line_text(draw):
    templates = _FLAVOURS[draw(st.sampled_from(sorted(_FLAVOURS)))]
    lines = []
    for _ in range(draw(st.integers(0, 160))):
        template = draw(st.sampled_from(templates))
        lines.append(
            template.format(
                ts=f"2026-11-21 10:00:{draw(st.integers(0, 59)):02d}",
                w=draw(_word),
                n=draw(st.integers(0, 9999)),
            )
        )
    return "\n".join(lines) + draw(st.sampled_from(["", "\n"]))


def _check(text: str, query: str = "") -> None:
    store = PendingWrites()
    result = PIPELINE.compress(text, CompressContext(query=query, store=store))
    assert result.tokens_before == estimate_tokens(text)
    assert result.tokens_after <= result.tokens_before
    assert estimate_tokens(result.output) == result.tokens_after
    if result.output != text:
        assert result.tokens_after < result.tokens_before
    keys = find_keys(result.output)
    assert set(keys) == set(result.keys)
    assert all(store.get(k) is not None for k in keys)
    again_store = PendingWrites()
    again = PIPELINE.compress(text, CompressContext(query=query, store=again_store))
    assert again == result and again_store.items == store.items
    twice = PIPELINE.compress(result.output, CompressContext(query=query, store=PendingWrites()))
    assert twice.output == result.output


@SETTINGS
@given(_json)
def test_arbitrary_json(value):
    _check(json.dumps(value))


@SETTINGS
@given(_rows, st.sampled_from(["", "status error", "id 4242"]), st.booleans())
def test_row_arrays(rows, query, pretty):
    _check(json.dumps(rows, indent=2 if pretty else None), query)


@SETTINGS
@given(_line_text(), st.sampled_from(["", "failed", "src/cache.py"]))
def test_line_shaped_text(text, query):
    _check(text, query)


@SETTINGS
@given(st.text(max_size=3000))
def test_arbitrary_unicode_text(text):
    _check(text)
    detect(text)
    numbered = split_numbering(text)
    assert "".join(s.text for s in split_sections(text)) == text
    assert numbered is None or isinstance(numbered.body, str)


@SETTINGS
@given(
    st.lists(st.text(alphabet=st.characters(blacklist_characters="\n\r"), max_size=30), min_size=2),
    st.sampled_from(["\t", "\u2192"]),
    st.integers(1, 5000),
)
def test_numbering_round_trip(lines, separator, first):
    numbered_text = "\n".join(f"{first + i:6d}{separator}{line}" for i, line in enumerate(lines))
    numbered = split_numbering(numbered_text)
    assert numbered is not None and numbered.body == "\n".join(lines)
    assert restore_numbering(numbered, numbered.body) == numbered_text


@SETTINGS
@given(_line_text())
def test_sections_cover_structured_text_exactly(text):
    sections = split_sections(text)
    assert "".join(s.text for s in sections) == text


@SETTINGS
@given(_rows, st.sampled_from(["\n(showing some rows)\n", " trailing", "\n\nINFO done\n"]))
def test_json_followed_by_text(rows, trailer):
    _check(json.dumps(rows, indent=2) + trailer)
