"""Arbitrary JSON: no crash, never larger, deterministic, idempotent, markers retrievable."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headroom.ccr.markers import find_keys
from headroom.ccr.store import PendingWrites
from headroom.transforms.base import CompressContext
from headroom.transforms.json_table import is_table, parse_table
from headroom.transforms.smart_crusher import SmartCrusher, SmartCrusherConfig

# Small thresholds so short generated arrays reach the lossy and table paths.
SMALL = SmartCrusherConfig(
    min_items_to_crush=3,
    min_table_rows=2,
    max_lossless_tokens=0,
    fill_min=1,
    fill_max=2,
    min_lossy_savings=0.0,
)
CRUSHERS = (SmartCrusher(), SmartCrusher(SMALL))

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["error: disk full", "timeout", "ok", "é"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=12)
        | st.dictionaries(
            st.sampled_from(["id", "error", "msg", "v", "n"]) | st.text(max_size=6),
            inner,
            max_size=5,
        )
    ),
    max_leaves=40,
)
row_arrays = st.lists(
    st.dictionaries(
        st.sampled_from(["id", "error", "msg", "v", "geo"]), scalars | json_values, max_size=4
    ),
    min_size=3,
    max_size=30,
)
documents = json_values | row_arrays | st.dictionaries(st.text(max_size=3), row_arrays, max_size=2)


def dump(value: Any, indent: int | None) -> str | None:
    try:
        return json.dumps(value, indent=indent, ensure_ascii=False)
    except (ValueError, RecursionError):
        return None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    documents,
    st.sampled_from([None, 1, 2]),
    st.sampled_from(CRUSHERS),
    st.sampled_from(["", "error 42", "id"]),
)
def test_arbitrary_json(value: Any, indent: int | None, crusher: SmartCrusher, query: str) -> None:
    text = dump(value, indent)
    if text is None:
        return
    store = PendingWrites()
    ctx = CompressContext(query=query, store=store)
    result = crusher.compress(text, ctx)
    assert result.tokens_after <= result.tokens_before
    if result.strategy == "passthrough":
        assert result.output == text and result.keys == ()
        return
    assert set(find_keys(result.output)) == set(result.keys)
    for key in result.keys:
        original = store.get(key)
        assert original is not None
        if f"<<ccr:{key} " in result.output:  # a row sentinel names a whole array
            assert isinstance(orjson.loads(original), list)
    assert crusher.compress(text, CompressContext(query=query, store=PendingWrites())) == result
    again = crusher.compress(result.output, CompressContext(query=query, store=PendingWrites()))
    assert again.output == result.output


def decode(value: Any) -> Any:
    """The JSON value back from SmartCrusher's output (table strings turned back into rows)."""
    if isinstance(value, str) and is_table(value):
        try:
            return [decode(row) for row in parse_table(value)]
        except ValueError:  # a string that only looks like a table
            return value
    if isinstance(value, list):
        return [decode(x) for x in value]
    if isinstance(value, dict):
        return {k: decode(x) for k, x in value.items()}
    return value


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents, st.sampled_from(CRUSHERS))
def test_without_a_store_nothing_is_lost(value: Any, crusher: SmartCrusher) -> None:
    text = dump(value, 1)
    if text is None:
        return
    result = crusher.compress(text, CompressContext())
    assert result.keys == ()
    out = parse_table(result.output) if is_table(result.output) else json.loads(result.output)
    assert decode(out) == json.loads(text)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes(text: str) -> None:
    for crusher in CRUSHERS:
        result = crusher.compress(text, CompressContext(store=PendingWrites()))
        assert result.tokens_after <= result.tokens_before
