"""LogCompressor on seeded, realistic build and test logs."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.ccr.markers import find_keys, has_marker
from headroom.ccr.store import PendingWrites
from headroom.transforms.base import CompressContext
from headroom.transforms.lines import has_note
from headroom.transforms.log import LogCompressor, LogConfig
from headroom.transforms.tokens import estimate_tokens

MODULES = ["api", "core", "db", "auth_utils", "render", "cache", "jobs", "models"]


def pytest_log(seed: int, tests: int = 1500) -> tuple[str, list[str]]:
    """A CI log: pip chatter, a long pytest run, one failure with its traceback, a summary.
    Returns the log and the lines that must survive verbatim."""
    rng = random.Random(seed)
    out = ["$ pip install -e '.[test]'"]
    for i in range(rng.randint(60, 120)):
        pkg = f"pkg{rng.randint(1, 400)}"
        ver = f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
        out.append(f"  Downloading {pkg}-{ver}-py3-none-any.whl ({rng.randint(10, 900)} kB)")
        if i % 7 == 0:
            out.append(f"Collecting {pkg}>={ver}")
    out.append("Successfully installed " + " ".join(f"p{i}-1.0" for i in range(30)))
    out.append("$ pytest -v")
    out.append("============================= test session starts ==============================")
    out.append("platform linux -- Python 3.11.9, pytest-8.2.0, pluggy-1.5.0")
    must: list[str] = []
    fail_at = rng.randrange(tests // 3, tests)
    for t in range(tests):
        mod = rng.choice(MODULES)
        name = f"tests/test_{mod}.py::test_case_{t}"
        pct = (t + 1) * 100 // tests
        if t == fail_at:
            line = f"{name} FAILED{' ' * 20}[{pct:3d}%]"
            must.append(line)
        else:
            line = f"{name} PASSED{' ' * 20}[{pct:3d}%]"
        out.append(line)
        if t % 250 == 249:
            warn = f"tests/test_{mod}.py:{rng.randint(1, 400)}: DeprecationWarning: old api"
            out.append(warn)
    tb = [
        "=================================== FAILURES ===================================",
        f"______________________________ test_case_{fail_at} ______________________________",
        "Traceback (most recent call last):",
        '  File "/src/app/core.py", line 88, in load',
        "    value = cache[key]",
        '  File "/src/app/cache.py", line 12, in __getitem__',
        "    return self._data[key]",
        "KeyError: 'user:42'",
    ]
    out.extend(tb)
    must.extend(tb[2:])
    bar = "=" * 25
    summary = f"{bar} 1 failed, {tests - 1} passed in 41.27s {bar}"
    out.append(f"FAILED tests/test_core.py::test_case_{fail_at} - KeyError: 'user:42'")
    must.append(out[-1])
    out.append(summary)
    must.append(summary)
    out.append("Error: Process completed with exit code 1.")
    must.append(out[-1])
    return "\n".join(out), must


def cargo_log(seed: int, crates: int = 400) -> tuple[str, list[str]]:
    rng = random.Random(seed)
    out = ["$ cargo test"]
    for i in range(crates):
        out.append(f"   Compiling dep{i} v0.{rng.randint(1, 9)}.{rng.randint(0, 20)}")
    must = [
        "warning: unused variable: `x`",
        "error[E0308]: mismatched types",
        "  --> src/lib.rs:42:17",
    ]
    out.insert(crates // 2, must[0])
    out.insert(crates // 2 + 1, "  --> src/util.rs:7:9")
    out.extend(must[1:])
    out.append("   |")
    out.append('42 |     let n: u32 = "x";')
    for i in range(300):
        out.append(f"test tests::case_{i} ... ok")
    out.append("thread 'tests::case_300' panicked at src/lib.rs:99:5:")
    must.append(out[-1])
    out.append("test result: FAILED. 300 passed; 1 failed; 0 ignored; 0 measured")
    must.append(out[-1])
    return "\n".join(out), must


def ctx_store() -> tuple[CompressContext, PendingWrites]:
    store = PendingWrites()
    return CompressContext(query="", store=store), store


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pytest_log_keeps_must_lines_and_shrinks_90_percent(seed: int) -> None:
    text, must = pytest_log(seed)
    ctx, store = ctx_store()
    res = LogCompressor().compress(text, ctx)
    out_lines = res.output.split("\n")
    for line in must:
        assert line in out_lines, line
    assert res.strategy == "log"
    assert res.tokens_after <= 0.1 * res.tokens_before
    keys = find_keys(res.output)
    assert keys == list(res.keys) and len(keys) == 1
    assert store.get(keys[0]) == text.encode()


def test_cargo_log_keeps_errors_locations_and_summary() -> None:
    text, must = cargo_log(5)
    res = LogCompressor().compress(text, ctx_store()[0])
    out_lines = res.output.split("\n")
    for line in must:
        assert line in out_lines, line
    assert res.tokens_after < 0.2 * res.tokens_before


def test_many_errors_are_all_kept_and_identical_ones_folded() -> None:
    lines = [f"INFO step {i} ok" for i in range(400)]
    distinct = [f"ERROR worker {i} lost connection to db-{i}" for i in range(30)]
    for k, err in enumerate(distinct):
        lines.insert(10 + k * 12, err)
    for k in range(50):
        lines.insert(5 + k * 7, "ERROR upstream timeout")
    text = "\n".join(lines)
    res = LogCompressor().compress(text, ctx_store()[0])
    out_lines = res.output.split("\n")
    for err in distinct:
        assert err in out_lines
    assert out_lines.count("ERROR upstream timeout") == 1
    assert "[... 49 identical error blocks omitted]" in out_lines


def test_no_store_keeps_the_same_lines_and_says_what_was_dropped() -> None:
    text, must = pytest_log(7)
    res = LogCompressor().compress(text, CompressContext())
    assert not has_marker(res.output) and res.keys == ()
    assert has_note(res.output)
    for line in must:
        assert line in res.output.split("\n")
    assert res.tokens_after < 0.1 * res.tokens_before


def test_deterministic_and_idempotent() -> None:
    text, _ = pytest_log(11)
    a = LogCompressor().compress(text, ctx_store()[0])
    b = LogCompressor().compress(text, ctx_store()[0])
    assert a.output == b.output
    again = LogCompressor().compress(a.output, ctx_store()[0])
    assert again.output == a.output and again.strategy == "passthrough"
    plain = LogCompressor().compress(text, CompressContext())
    assert LogCompressor().compress(plain.output, CompressContext()).output == plain.output


def test_small_log_untouched() -> None:
    text = "\n".join(f"INFO line {i}" for i in range(20)) + "\nERROR boom"
    res = LogCompressor().compress(text, ctx_store()[0])
    assert res.output == text and res.strategy == "passthrough"


def test_repeated_context_lines_fold_into_a_count() -> None:
    lines = [f"DEBUG poll {i} queue depth {i * 3}" for i in range(200)]
    lines[100] = "ERROR queue stalled"
    cfg = LogConfig(error_context=6)
    res = LogCompressor(cfg).compress("\n".join(lines), CompressContext())
    out = res.output.split("\n")
    assert "ERROR queue stalled" in out
    assert "[... 5 similar lines omitted]" in out


def test_rejected_result_writes_nothing_to_the_store() -> None:
    # Every line is an error: nothing can be dropped, so the store must stay empty.
    text = "\n".join(f"ERROR distinct failure number {i} in module m{i}" for i in range(60))
    ctx, store = ctx_store()
    res = LogCompressor().compress(text, ctx)
    assert res.output == text and len(store) == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=60), min_size=0, max_size=120), st.booleans())
def test_arbitrary_text_never_grows(parts: list[str], with_store: bool) -> None:
    text = "\n".join(parts)
    ctx = CompressContext(store=PendingWrites()) if with_store else CompressContext()
    res = LogCompressor(LogConfig(min_lines=5)).compress(text, ctx)
    assert estimate_tokens(res.output) <= estimate_tokens(text)
    if res.output == text:
        assert res.strategy == "passthrough"


def mixed_runner_log() -> tuple[str, list[str]]:
    """jest failure with its message, repeated Java traces, a Go panic, jest/npm summary."""
    lines = ["> app@1.0.0 test", "> jest --ci", ""]
    lines += [f"PASS src/components/Widget{i}.test.tsx ({i % 5 + 1}.{i % 10}s)" for i in range(60)]
    jest = [
        "FAIL src/api/client.test.ts",
        "  ● client › retries on 503",  # noqa: RUF001 (jest prints this glyph)
        "",
        "    expect(received).toBe(expected) // Object.is equality",
        "",
        "    Expected: 3",
        "    Received: 1",
        "",
        "      at Object.<anonymous> (src/api/client.test.ts:42:23)",
        "      at processTicksAndRejections (node:internal/process/task_queues:95:5)",
    ]
    lines += [*jest, ""]
    lines += [f"PASS src/util/u{i}.test.ts" for i in range(40)]
    java = [
        "java.lang.IllegalStateException: pool exhausted",
        "\tat com.acme.Pool.get(Pool.java:88)",
        "\tat com.acme.Svc.handle(Svc.java:12)",
        "\t... 42 more",
    ]
    for k in range(12):
        lines += java
        lines += [f"INFO request {k * 7 + j} served in {j * 3}ms" for j in range(5)]
    go = [
        "panic: runtime error: index out of range [5] with length 3",
        "",
        "goroutine 1 [running]:",
        "main.parse(...)",
        "\t/app/main.go:27 +0x1d",
        "main.main()",
        "\t/app/main.go:12 +0x25",
        "exit status 2",
    ]
    summary = [
        "Test Suites: 1 failed, 99 passed, 100 total",
        "Tests:       1 failed, 611 passed, 612 total",
        "npm ERR! Test failed.  See above for more details.",
    ]
    lines += go + summary
    return "\n".join(lines), [x for x in jest + java + go + summary if x]


def test_runner_traces_keep_their_messages_and_repeats_fold() -> None:
    text, must = mixed_runner_log()
    res = LogCompressor().compress(text, CompressContext())
    out = res.output.split("\n")
    for line in must:
        assert line in out, line
    assert out.count("\tat com.acme.Pool.get(Pool.java:88)") == 1
    assert "[... 11 identical traces omitted]" in out
    assert res.tokens_after < 0.3 * res.tokens_before


def test_lossless_only_folds_identical_runs_and_nothing_else() -> None:
    lines = [f"step {i}" for i in range(30)] + ["waiting for lock"] * 25 + ["ERROR x"] * 4
    text = "\n".join(lines)
    res = LogCompressor(LogConfig(lossless_only=True)).compress(
        text, CompressContext(store=PendingWrites())
    )
    out = res.output.split("\n")
    assert out[:31] == lines[:31]
    assert out[31] == "[... 24 identical lines omitted]"
    assert out[32:] == ["ERROR x"] * 4  # shorter than a note about them
    assert not has_marker(res.output)


def test_rustc_diagnostic_keeps_its_source_snippet() -> None:
    lines = [f"   Compiling dep{i} v0.{i % 9}.1" for i in range(80)]
    diag = [
        "error[E0308]: mismatched types",
        "  --> src/ledger.rs:88:21",
        "   |",
        "88 |     let total: u64 = entries.iter().map(|e| e.amount).sum::<i64>();",
        "   |                ---   ^^^^^^^^^^^ expected `u64`, found `i64`",
        "",
        'error: could not compile `ledger` (bin "ledger") due to 1 previous error',
    ]
    text = "\n".join(lines + diag)
    out = LogCompressor().compress(text, CompressContext()).output.split("\n")
    for line in diag:
        assert line in out, line


def test_lines_naming_a_rare_query_term_are_kept() -> None:
    lines = [f"INFO req-{i:05d} GET /api/orders 200 {i % 90}ms" for i in range(600)]
    lines[321] = "INFO req-00321 GET /api/orders/A-7731 200 18ms"
    text = "\n".join(lines)
    ctx = CompressContext(query="what happened to order A-7731 in the orders api?")
    out = LogCompressor().compress(text, ctx).output.split("\n")
    assert lines[321] in out
    assert len(out) < 30  # "orders" is in every line and keeps nothing by itself
