"""The lossless table form: exact round trip, readable cells, chosen only when it pays."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.transforms.base import CompressContext
from headroom.transforms.json_codec import Codec
from headroom.transforms.json_table import is_table, parse_table, render_table
from headroom.transforms.smart_crusher import SmartCrusher

CODEC = Codec(precise=False)


def render(rows: list[dict[str, Any]]) -> str:
    return render_table(rows, CODEC.dumps, CODEC.number_text)


TRICKY = [
    "",
    " lead",
    "trail ",
    "a,b",
    '"quoted"',
    'mid"quote',
    "[not json",
    "{x",
    "123",
    "-4.5e3",
    "true",
    "null",
    "line\nbreak",
    "tab\there",
    "ünïcödé ✓",
    "a.b",
    "0x1F",
    "2026-11-21T10:00:00Z",
    "1.2.3",
    "-",
    "  ",
]


def test_tricky_strings_round_trip_and_plain_ones_stay_bare() -> None:
    rows = [{"s": s, "n": i} for i, s in enumerate(TRICKY)]
    text = render(rows)
    assert parse_table(text) == rows
    lines = text.split("\n")
    assert lines[0] == f"[table: {len(rows)} rows]" and lines[1] == "s,n"
    assert "2026-11-21T10:00:00Z,17" in lines and "a.b,15" in lines and '"123",8' in lines


def test_the_documented_example_is_what_the_writer_emits() -> None:
    from headroom.transforms import json_table

    doc = json_table.__doc__ or ""
    example = "\n".join(
        line.strip() for line in doc.split("::")[1].strip().split("\n\n")[0].split("\n")
    )
    rows = [
        {
            "id": 1,
            "name": "Ada Lovelace",
            "address": {"city": "London", "zip": "N1"},
            "tags": ["math"],
            "note": "",
        },
        {"id": 2, "name": "Grace, Rear Admiral", "tags": [], "note": "42"},
        {
            "id": 3,
            "name": "Linus",
            "address": {"city": "Helsinki", "zip": "00100"},
            "tags": None,
            "note": "true",
        },
    ]
    assert render(rows) == example
    assert parse_table(example) == rows


def test_missing_null_and_nested_values_are_distinct() -> None:
    rows = [
        {"id": 1, "geo": {"lat": 1.5, "lon": -2.0}, "tags": ["a", "b"], "x": None},
        {"id": 2, "tags": [], "extra": {"deep": {"k": [1, {"z": None}]}}},
        {"geo": {"lat": 0, "lon": 0}, "id": 3, "x": False},
    ]
    text = render(rows)
    assert text.split("\n")[1] == "id,geo.lat,geo.lon,tags,x,extra.deep"
    assert parse_table(text) == rows


def test_non_uniform_nested_objects_are_not_flattened() -> None:
    rows = [{"a": {"x": 1}}, {"a": {"y": 2}}, {"a": None}]
    text = render(rows)
    assert text.split("\n")[1] == "a"
    assert parse_table(text) == rows


def test_odd_column_names_are_quoted() -> None:
    rows = [{"a.b": 1, "with space": 2, "": 3, 'q"k': {"in": 4}, "ok": {"x.y": 5}}] * 3
    text = render(rows)
    assert parse_table(text) == rows


def test_malformed_tables_are_refused() -> None:
    with pytest.raises(ValueError):
        parse_table("id,name\n1,a")
    with pytest.raises(ValueError):
        parse_table("[table: 2 rows]\nid\n1")
    with pytest.raises(ValueError):
        parse_table("[table: 1 rows]\nid,name\n1")


def test_table_only_when_it_saves_15_percent() -> None:
    long_rows = [{"t": f"{i} " + "lorem ipsum dolor sit amet " * 8} for i in range(40)]
    crusher = SmartCrusher()
    result = crusher.compress(orjson.dumps(long_rows).decode(), CompressContext())
    assert not is_table(result.output)
    assert orjson.loads(result.output) == long_rows
    wide_rows = [{"identifier": i, "description": "ok", "category": "c"} for i in range(40)]
    text = orjson.dumps(wide_rows).decode()
    result = crusher.compress(text, CompressContext())
    assert is_table(result.output) and len(result.output) <= 0.85 * len(text)


scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
rows_strategy = st.lists(
    st.dictionaries(
        st.sampled_from(["id", "a", "b.c", "x y", "", "n"]) | st.text(max_size=4),
        values,
        max_size=5,
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(rows_strategy)
def test_any_rows_round_trip(rows: list[dict[str, Any]]) -> None:
    try:
        text = render(rows)
    except TypeError:  # orjson refuses lone surrogates; the crusher passes such input through
        return
    assert parse_table(text) == rows
