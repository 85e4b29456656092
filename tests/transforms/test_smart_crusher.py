"""SmartCrusher on realistic generated tool outputs: what must survive does, the rest comes back."""

from __future__ import annotations

import base64
import itertools
import json
import os
import random
import subprocess
import sys
import uuid
from decimal import Decimal
from typing import Any

import orjson
import pytest

from headroom.ccr.markers import find_keys, opaque_marker, rows_marker
from headroom.ccr.store import PendingWrites
from headroom.transforms.base import CompressContext
from headroom.transforms.json_codec import Codec
from headroom.transforms.json_query import ItemTexts
from headroom.transforms.json_table import is_table, parse_table
from headroom.transforms.smart_crusher import SENTINEL_KEY, SmartCrusher, SmartCrusherConfig
from headroom.transforms.tokens import estimate_tokens

REGIONS = ("eu-west-1", "us-east-1", "ap-south-1")


def request_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """API access-log rows: ids, uuids, timestamps, categorical fields, a noisy latency."""
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        rows.append(
            {
                "id": 50_000 + i,
                "request_id": str(uuid.UUID(int=rnd.getrandbits(128))),
                "ts": f"2026-11-{1 + i * 28 // n:02d}T{rnd.randrange(24):02d}:{i % 60:02d}Z",
                "method": rnd.choice(("GET", "GET", "GET", "POST", "DELETE")),
                "path": rnd.choice(("/v1/users", "/v1/orders", "/v1/items")),
                "status": 200,
                "latency_ms": round(rnd.gauss(120.0, 12.0), 1),
                "region": REGIONS[i % 3],
                "client": {"name": rnd.choice(("web", "ios", "android")), "ver": "4.2"},
                "error": None,
                "note": rnd.choice(("served", "served from cache", "served after retry")),
            }
        )
    return rows


def db_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """Order rows from a database query."""
    rnd = random.Random(seed)
    return [
        {
            "order_id": 900_000 + i,
            "customer": rnd.choice(("Acme GmbH", "Globex", "Initech", "Umbrella")),
            "amount": round(rnd.uniform(10, 99), 2),
            "currency": "EUR",
            "state": rnd.choice(("paid", "shipped", "delivered")),
            "created": f"2026-10-{1 + i % 28:02d}",
        }
        for i in range(n)
    ]


def crush(
    value: Any,
    query: str = "",
    store: PendingWrites | None = None,
    config: SmartCrusherConfig | None = None,
    indent: bool = True,
) -> tuple[Any, Any]:
    text = orjson.dumps(value, option=orjson.OPT_INDENT_2 if indent else 0).decode()
    store = PendingWrites() if store is None else store
    result = SmartCrusher(config).compress(text, CompressContext(query=query, store=store))
    return result, text


def compact(value: Any) -> str:
    return orjson.dumps(value).decode()


def sentinel_of(items: list[Any]) -> tuple[str, int]:
    last = items[-1]
    assert set(last) == {SENTINEL_KEY}
    marker = last[SENTINEL_KEY]
    (key,) = find_keys(marker)
    dropped = int(marker.split(" ")[1].split("_")[0])
    assert marker == rows_marker(key, dropped)
    return key, dropped


def test_api_rows_keep_every_signal_and_drop_the_rest_retrievably() -> None:
    rows = request_rows(800, seed=1)
    must_keep = {}
    for i in (97, 410, 655):
        rows[i]["status"] = 503
        rows[i]["error"] = "upstream connect timeout"
        must_keep[i] = "error"
    rows[300]["latency_ms"] = 4200.0
    must_keep[300] = "outlier"
    rows[520]["region"] = "sa-east-1"
    must_keep[520] = "rare value"
    target = rows[733]["request_id"]
    must_keep[733] = "query anchor"
    store = PendingWrites()
    result, text = crush(rows, query=f'{{"request_id": "{target}"}}', store=store)
    assert result.strategy == "smart_crusher"
    out = orjson.loads(result.output)
    for i, why in must_keep.items():
        assert compact(rows[i]) in result.output, why
    key, dropped = sentinel_of(out)
    assert dropped == len(rows) - (len(out) - 1)
    assert result.keys == (key,)
    assert orjson.loads(store.get(key)) == rows
    assert store.get(key) == text.encode(), "a top-level array's original is the client's text"
    assert out[0] == rows[0] and out[-2] == rows[-1]
    assert 1 - result.tokens_after / result.tokens_before >= 0.8
    kept_ids = [r["id"] for r in out[:-1]]
    assert kept_ids == sorted(kept_ids)


def test_db_rows_reduce_by_at_least_80_percent() -> None:
    rows = db_rows(400, seed=2)
    result, _ = crush(rows, indent=False)
    assert 1 - result.tokens_after / result.tokens_before >= 0.8
    assert result.tokens_after == estimate_tokens(result.output)


def test_error_keyword_in_a_key_is_not_an_error_but_in_a_value_is() -> None:
    rows = request_rows(300, seed=3)
    rows[150]["note"] = "payment provider rejected the card"
    result, _ = crush(rows)
    out = orjson.loads(result.output)[:-1]
    assert rows[150] in out
    assert len(out) < 40  # every row has "error": null; none of those count


def test_an_error_word_in_most_rows_marks_none_but_a_rare_one_does() -> None:
    rows = db_rows(300, 28)
    for row in rows:
        row["check"] = "0 failed, 12 passed"
    rows[140]["check"] = "1 failed: timeout talking to ledger"
    result, _ = crush(rows)
    out = orjson.loads(result.output)[:-1]
    assert rows[140] in out and len(out) < 40
    everything, _ = crush(rows, config=SmartCrusherConfig(error_max_df=1.0))
    assert len(orjson.loads(everything.output)) > 100


def test_query_words_need_a_real_match_not_any_shared_token() -> None:
    rows = db_rows(300, seed=4)
    rows[222]["customer"] = "Zanzibar Spice Traders"
    result, _ = crush(rows, query="Which orders did Zanzibar Spice place last month?")
    out = orjson.loads(result.output)[:-1]
    assert rows[222] in out
    # "orders", "place", "last", "month" are in no row or in every row: they select nothing
    assert len(out) < 40


def test_query_identifier_and_long_number_anchor_rows() -> None:
    rows = db_rows(300, seed=5)
    rows[17]["customer"] = "cust_77f1"
    result, _ = crush(rows, query='get_orders(customer="cust_77f1") and order 900250')
    out = orjson.loads(result.output)[:-1]
    assert rows[17] in out and rows[250] in out


def test_an_anchor_found_in_most_rows_selects_nothing() -> None:
    rows = db_rows(300, 24)
    for row in rows:
        row["state"] = "paid"
    rows[99]["state"] = "refunded"
    result, _ = crush(rows, query='list_orders({"state": "paid", "currency": "EUR"})')
    out = orjson.loads(result.output)[:-1]
    assert rows[99] in out  # rare value
    assert len(out) < 40


def test_a_long_query_full_of_anchors_keeps_a_bounded_number_of_rows() -> None:
    rows = db_rows(600, 25)
    ids = " ".join(str(900_000 + i) for i in range(0, 600, 5))  # 120 anchors, one row each
    result, _ = crush(rows, query=f"reconcile these orders: {ids}")
    out = orjson.loads(result.output)[:-1]
    assert len(out) <= SmartCrusherConfig().max_anchor_rows + 30


def test_change_point_is_kept() -> None:
    rnd = random.Random(6)
    rows = [
        {"t": i, "queue_depth": 10 + rnd.randrange(3) + (60 if i >= 333 else 0)} for i in range(600)
    ]
    result, _ = crush(rows)
    out = orjson.loads(result.output)[:-1]
    assert rows[332] in out and rows[333] in out


def test_identical_items_are_kept_once() -> None:
    rows = [{"event": "heartbeat", "ok": True}] * 200
    result, _ = crush(rows)
    out = orjson.loads(result.output)
    assert out[0] == rows[0]
    assert sentinel_of(out)[1] == 199


def test_string_and_number_arrays_keep_errors_and_outliers() -> None:
    rnd = random.Random(8)
    lines = [f"worker {rnd.randrange(9)} processed batch {i}" for i in range(500)]
    lines[321] = "worker 3 crashed: segfault in decoder"
    lines[123] = "worker 5 dumped state: " + ";".join(f"slot{j}=busy" for j in range(40))
    result, _ = crush(lines)
    out = orjson.loads(result.output)
    assert lines[321] in out and lines[123] in out and sentinel_of(out)[1] > 400
    numbers = [round(rnd.gauss(50, 2), 2) for _ in range(500)]
    numbers[77] = 990.5
    result, _ = crush(numbers)
    out = orjson.loads(result.output)
    assert 990.5 in out


def test_mixed_arrays_keep_their_signals() -> None:
    rnd = random.Random(27)
    items: list[Any] = []
    for i in range(400):
        kind = i % 4
        if kind == 0:
            items.append({"tick": i, "ok": True})
        elif kind == 1:
            items.append(f"heartbeat {i}")
        elif kind == 2:
            items.append(round(rnd.gauss(10, 1), 2))
        else:
            items.append([i, "pair"])
    items[201] = "connection refused by 10.0.0.7:5432"
    items[202] = 7777.0
    store = PendingWrites()
    result, _ = crush(items, store=store)
    out = orjson.loads(result.output)
    assert items[201] in out and 7777.0 in out
    key, _ = sentinel_of(out)
    assert orjson.loads(store.get(key)) == items


def test_nested_arrays_get_their_own_sentinel() -> None:
    doc = {
        "meta": {"page": 1, "source": "orders-db"},
        "data": {"orders": db_rows(300, 9)},
        "requests": request_rows(300, 10),
    }
    store = PendingWrites()
    result, _ = crush(doc, store=store)
    out = orjson.loads(result.output)
    assert out["meta"] == doc["meta"]
    k1, _ = sentinel_of(out["data"]["orders"])
    k2, _ = sentinel_of(out["requests"])
    assert result.keys == (k1, k2)
    assert orjson.loads(store.get(k1)) == doc["data"]["orders"]
    assert orjson.loads(store.get(k2)) == doc["requests"]


def test_arrays_inside_rows_are_cut_before_the_rows_are_chosen() -> None:
    jobs = [
        {"job": f"build-{i}", "state": "ok", "steps": request_rows(120, 100 + i)} for i in range(20)
    ]
    jobs[7]["state"] = "failed"
    store = PendingWrites()
    result, _ = crush(jobs, store=store)
    out = orjson.loads(result.output)
    outer_key, dropped = sentinel_of(out)
    assert orjson.loads(store.get(outer_key)) == jobs  # the original, inner arrays whole
    kept = out[:-1]
    assert dropped == 20 - len(kept) and any(job["job"] == "build-7" for job in kept)
    for job in kept:
        inner_key, _ = sentinel_of(job["steps"])
        original = next(j for j in jobs if j["job"] == job["job"])
        assert orjson.loads(store.get(inner_key)) == original["steps"]
    assert result.keys[-1] == outer_key
    assert set(result.keys) == set(find_keys(result.output))


def test_a_cut_nested_array_is_stored_as_the_document_spelled_it() -> None:
    """Issue 16 point 2: a retrieval gives back bytes the client sent, not a re-spelling
    (here: indented JSON, a number written ``1.50``, an escaped slash)."""
    orders = db_rows(300, 9)
    doc = {"meta": {"page": 1}, "data": {"orders": orders}, "requests": request_rows(300, 10)}
    text = json.dumps(doc, indent=3).replace('"currency": "EUR"', '"currency": "E\\/R"', 1)
    text = text.replace('"page": 1', '"page": 1.50', 1)
    store = PendingWrites()
    result = SmartCrusher().compress(text, CompressContext(store=store))
    out = orjson.loads(result.output)
    k1, _ = sentinel_of(out["data"]["orders"])
    k2, _ = sentinel_of(out["requests"])
    for key in (k1, k2):
        stored = store.get(key)
        assert stored is not None and stored.decode() in text  # a span of the client's text
    assert store.get(k1).decode().startswith("[\n") and b"E\\/R" in store.get(k1)
    assert orjson.loads(store.get(k2)) == doc["requests"]


def test_json_inside_a_string_is_stored_as_that_string_spelled_it() -> None:
    inner = json.dumps(request_rows(300, 11), indent=2)
    store = PendingWrites()
    result, _ = crush({"tool": "http", "body": inner}, store=store)
    key, _ = sentinel_of(orjson.loads(orjson.loads(result.output)["body"]))
    assert store.get(key) == inner.encode()


def test_json_inside_a_string_is_compressed_and_re_embedded() -> None:
    inner = request_rows(300, 11)
    doc = {"tool": "http", "body": json.dumps(inner, indent=2)}
    store = PendingWrites()
    result, _ = crush(doc, store=store)
    out = orjson.loads(result.output)
    assert isinstance(out["body"], str)
    crushed = orjson.loads(out["body"])
    key, _ = sentinel_of(crushed)
    assert orjson.loads(store.get(key)) == inner


def test_small_arrays_are_only_minified() -> None:
    rows = db_rows(6, 12)
    result, text = crush({"rows": rows})
    assert result.keys == ()
    assert orjson.loads(result.output) == {"rows": rows}
    assert len(result.output) < len(text)


def test_without_store_nothing_is_dropped_and_the_table_round_trips() -> None:
    rows = request_rows(200, 13)
    text = orjson.dumps(rows).decode()
    result = SmartCrusher().compress(text, CompressContext())
    assert result.keys == () and "_ccr_dropped" not in result.output
    assert is_table(result.output)
    assert parse_table(result.output) == rows
    assert result.tokens_after <= 0.85 * result.tokens_before


def test_marker_disabled_means_no_store_write() -> None:
    store = PendingWrites()
    result, _ = crush(
        request_rows(300, 14), store=store, config=SmartCrusherConfig(enable_ccr_marker=False)
    )
    assert len(store) == 0 and result.keys == ()
    assert "_ccr_dropped" not in result.output


def test_lossless_only_keeps_all_rows() -> None:
    rows = db_rows(300, 15)
    result, _ = crush(rows, config=SmartCrusherConfig(lossless_only=True))
    assert parse_table(result.output) == rows


def test_arrays_within_the_lossless_budget_are_not_cut() -> None:
    rows = db_rows(20, 16)
    result, _ = crush({"rows": rows})
    out = orjson.loads(result.output)
    assert parse_table(out["rows"]) == rows and result.keys == ()


def test_deterministic_bytes() -> None:
    rows = request_rows(500, 17)
    a, _ = crush(rows, query="timeout on /v1/orders")
    b, _ = crush(rows, query="timeout on /v1/orders")
    assert a.output == b.output and a.keys == b.keys


@pytest.mark.parametrize("store", [True, False])
def test_idempotent(store: bool) -> None:
    doc = {"a": request_rows(300, 18), "b": db_rows(30, 19), "c": "x" * 10}
    text = orjson.dumps(doc).decode()
    crusher = SmartCrusher()
    ctx = CompressContext(store=PendingWrites() if store else None)
    first = crusher.compress(text, ctx)
    again = crusher.compress(first.output, ctx)
    assert again.output == first.output
    assert again.strategy == "passthrough"


@pytest.mark.parametrize("copies", [1, 4])
def test_unicode_is_kept_unescaped(copies: int) -> None:
    names = ("Åsa", "Øyvind", "Zoë") * copies
    rows = [{"name": n, "city": "Zürich", "note": "naïve café ✓ 日本 \u2028"} for n in names]
    result, _ = crush({"people": rows})
    assert "日本" in result.output and "\\u00" not in result.output
    people = orjson.loads(result.output)["people"]
    assert (parse_table(people) if copies > 1 else people) == rows


@pytest.mark.parametrize("copies", [1, 5])
def test_huge_numbers_and_floats_are_written_back_exactly(copies: int) -> None:
    rows = (
        '{"id": 123456789012345678901234567890, "v": 0.1000000000000000055511151231257827, '
        '"e": 1E+2, "big": 1e400, "one": 1.0, "neg": -0.0},\n'
        ' {"id": 2, "v": 2.5, "e": 3e-7, "big": 1, "one": 2.0, "neg": 0}'
    )
    text = "[" + ",".join([rows] * copies) + "]"
    result = SmartCrusher().compress(text, CompressContext())
    assert result.strategy == "smart_crusher"
    # digits a double cannot hold are written back as they came; the rest as orjson writes
    # them (1E+2 → 100.0), so a later pass that takes the fast path gives the same bytes
    for literal in (
        "123456789012345678901234567890",
        "0.1000000000000000055511151231257827",
        "100.0",
        "1e400",
        "1.0",
        "-0.0",
        "3e-7",
        "2.0",
    ):
        assert literal in result.output
    decimal = json.JSONDecoder(parse_float=Decimal)
    rebuilt = parse_table(result.output, decimal) if copies > 1 else decimal.decode(result.output)
    assert rebuilt == decimal.decode(text)


@pytest.mark.parametrize(
    "literal", ["1e-400", "-2.5E+999", "0.12345678901234567890", "-98765432109876543210"]
)
def test_numbers_a_double_cannot_hold_survive_among_many_plain_ones(literal: str) -> None:
    rnd = random.Random(26)
    plain = [round(rnd.gauss(0, 1), 3) for _ in range(40)] + [rnd.random() for _ in range(400)]
    text = json.dumps({"pad": "   ", "xs": [*plain[:20], literal, *plain[20:]]}, indent=1)
    text = text.replace(f'"{literal}"', literal)
    result = SmartCrusher().compress(text, CompressContext())
    assert literal in result.output


def test_float_one_point_zero_stays_a_float() -> None:
    result, _ = crush({"ratio": [1.0, 2.0, 0.5], "pad": " " * 50})
    assert '"ratio":[1.0,2.0,0.5]' in result.output


def test_lossy_output_with_huge_numbers_stores_exact_original() -> None:
    rows = [{"id": 10**25 + i, "x": "1.50"} for i in range(300)]
    text = json.dumps(rows, indent=1)
    store = PendingWrites()
    result = SmartCrusher().compress(text, CompressContext(store=store))
    (key,) = result.keys
    stored = store.get(key).decode()
    assert "10000000000000000000000299" in stored
    assert json.loads(stored) == rows


def test_not_json_and_scalars_pass_through() -> None:
    crusher = SmartCrusher()
    for text in ("hello world", "[1, 2", '"just a string"', "42", "", "{'a': 1}", "[NaN]"):
        result = crusher.compress(text, CompressContext(store=PendingWrites()))
        assert result.strategy == "passthrough" and result.output == text


def test_duplicate_keys_are_never_merged() -> None:
    rows = db_rows(300, 29)
    text = (
        orjson.dumps(rows)
        .decode()
        .replace('"currency":"EUR"', '"currency":"EUR","currency":"USD"', 1)
    )
    crusher = SmartCrusher()
    result = crusher.compress(text, CompressContext(store=PendingWrites()))
    assert result.strategy == "passthrough" and result.output == text
    inner = json.dumps({"body": text, "pad": " " * 200})
    result = crusher.compress(inner, CompressContext(store=PendingWrites()))
    assert json.loads(result.output)["body"] == text
    spaced = orjson.dumps(rows).decode().replace('":', '" :')  # legal spacing, no duplicate
    assert crusher.compress(spaced, CompressContext(store=PendingWrites())).keys


def test_compress_value_matches_compress() -> None:
    rows = request_rows(300, 20)
    text = orjson.dumps(rows).decode()
    crusher = SmartCrusher()
    a = crusher.compress(text, CompressContext(store=PendingWrites()))
    b = crusher.compress_value(orjson.loads(text), text, CompressContext(store=PendingWrites()))
    assert a == b


def test_same_bytes_under_any_hash_seed(tmp_path: Any) -> None:
    """Set/dict order of strings varies with PYTHONHASHSEED; the output must not."""
    rows = request_rows(400, 21)
    rows[5]["error"] = "denied"
    source = tmp_path / "in.json"
    source.write_text(orjson.dumps(rows).decode())
    script = (
        "import sys, hashlib\n"
        "from headroom.ccr.store import PendingWrites\n"
        "from headroom.transforms.base import CompressContext\n"
        "from headroom.transforms.smart_crusher import SmartCrusher\n"
        "text = open(sys.argv[1]).read()\n"
        "for store in (PendingWrites(), None):\n"
        "    ctx = CompressContext(query='POST /v1/orders GET android', store=store)\n"
        "    out = SmartCrusher().compress(text, ctx).output\n"
        "    print(hashlib.sha256(out.encode()).hexdigest())\n"
    )
    digests = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run(
            [sys.executable, "-c", script, str(source)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        digests.add(run.stdout)
    assert len(digests) == 1


def test_compress_parsed_is_the_pipeline_entry() -> None:
    rows = db_rows(300, 22)
    text = orjson.dumps(rows).decode()
    crusher = SmartCrusher()
    ctx = CompressContext(store=PendingWrites())
    assert crusher.compress_parsed(text, rows, ctx) == crusher.compress(text, ctx)


def test_base64_blobs_are_offloaded_whole_only_with_a_store() -> None:
    rnd = random.Random(23)
    blobs = [base64.b64encode(rnd.randbytes(1500)).decode() for _ in range(3)]
    doc = {
        "attachments": [{"name": f"scan{i}.png", "data": b} for i, b in enumerate(blobs)],
        "thumb": "data:image/png;base64," + blobs[0],
        "note": "x" * 2000,
    }
    store = PendingWrites()
    result, _ = crush(doc, store=store)
    out = orjson.loads(result.output)
    assert out["note"] == doc["note"]
    assert len(result.keys) == 4
    for row, blob in zip(out["attachments"], blobs, strict=True):
        (key,) = find_keys(row["data"])
        assert row["data"] == opaque_marker(key, "base64", len(blob))
        assert store.get(key) == blob.encode()
    (key,) = find_keys(out["thumb"])
    assert store.get(key) == doc["thumb"].encode()
    plain = SmartCrusher().compress(orjson.dumps(doc).decode(), CompressContext())
    assert plain.keys == () and orjson.loads(plain.output) == doc


@pytest.mark.parametrize("size", [1, 7, 50, 10_000])
def test_scan_pieces_cover_the_text_and_cut_only_between_items(size: int) -> None:
    texts = [compact(x) for x in ["a" * 30, 1, {"k": "v" * 80}, [], "z", 22.5, "q" * 5]]
    rows = ItemTexts("[" + ",".join(texts) + "]", map(len, texts))
    spans = list(rows.spans(size))
    assert spans[0][0] == 0 and spans[-1][1] == len(rows.joined)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert all(hi in rows.starts for _, hi in spans[:-1])
    assert all(lo < hi for lo, hi in spans)


def test_item_texts_cut_each_item_out_and_find_its_first_twin() -> None:
    items = ["a" * 30, 1, {"k": "v"}, "a" * 30, [], 1, {"k": "v"}, "z"]
    texts = [compact(x) for x in items]
    rows = ItemTexts("[" + ",".join(texts) + "]", map(len, texts))
    assert [rows.text(i) for i in range(rows.count)] == texts
    assert rows.joined == "[" + ",".join(texts) + "]"
    assert rows.first_of_each() == [0, 1, 2, 0, 4, 1, 2, 7]


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="lossless_min_savings"):
        SmartCrusherConfig(lossless_min_savings=1.5)
    with pytest.raises(ValueError, match="fill_min"):
        SmartCrusherConfig(fill_min=30, fill_max=20)
    with pytest.raises(ValueError, match="keep_"):
        SmartCrusherConfig(keep_last=-1)


def test_no_positional_anchors_when_configured_off() -> None:
    rows = [{"n": i, "kind": "tick"} for i in range(400)]
    config = SmartCrusherConfig(keep_first=0, keep_last=0, fill_min=1, fill_max=1)
    result, _ = crush(rows, config=config)
    out = orjson.loads(result.output)
    assert len(out) <= 6 and sentinel_of(out)[1] >= 394


@pytest.mark.parametrize(
    "text",
    [
        "[1,2.5,-0.0,1e16,3]",
        "[1,100000000000000000000,0.10000000000000000001]",  # precise numbers
        '["a",{"k":[1,2]},null,true,7.25]',
        "[]",
    ],
)
def test_each_items_length_is_its_compact_texts(text: str) -> None:
    """What a crush's row index is built from: the all-number fast path (one dump, split)
    gives the same lengths as writing each item."""
    codec = Codec.for_text(text)
    items = codec.loads(text)
    assert list(codec.lengths_each(items)) == [len(codec.dumps(x)) for x in items]
