"""DiffCompressor on seeded multi-file diffs made by difflib from real-looking source files."""

from __future__ import annotations

import difflib
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.ccr.markers import find_keys, has_marker
from headroom.ccr.store import PendingWrites
from headroom.transforms.base import CompressContext
from headroom.transforms.diff import DiffCompressor, DiffConfig, parse
from headroom.transforms.lines import has_note
from headroom.transforms.tokens import estimate_tokens

WORDS = [
    "user",
    "order",
    "cache",
    "item",
    "price",
    "total",
    "config",
    "session",
    "token",
    "retry",
    "queue",
    "index",
    "value",
]


def source_file(rng: random.Random, funcs: int) -> list[str]:
    out = ['"""Module docstring."""', "", "import os", "import sys", ""]
    for f in range(funcs):
        name = f"{rng.choice(WORDS)}_{rng.choice(WORDS)}_{f}"
        out.append(f"def {name}(arg, other=None):")
        out.append(f'    """Handle {rng.choice(WORDS)} for the {rng.choice(WORDS)} path."""')
        for k in range(rng.randint(4, 12)):
            a, b = rng.choice(WORDS), rng.choice(WORDS)
            out.append(f"    {a}_{k} = compute_{b}(arg, {k}, other={rng.randint(0, 99)})")
        out.append(f"    return {rng.choice(WORDS)}_0")
        out.append("")
    return out


def mutate(rng: random.Random, lines: list[str], edits: int) -> list[str]:
    new = list(lines)
    for _ in range(edits):
        i = rng.randrange(5, len(new))
        kind = rng.random()
        if kind < 0.5:
            new[i] = new[i].replace("compute_", "calc_") + "  # changed"
        elif kind < 0.8:
            new.insert(i, f"    added_{rng.randint(0, 999)} = {rng.choice(WORDS)}(arg)")
        else:
            del new[i]
    return new


def file_diff(path: str, old: list[str], new: list[str], context: int) -> list[str]:
    body = list(difflib.unified_diff(old, new, f"a/{path}", f"b/{path}", lineterm="", n=context))
    if not body:
        return []
    return [f"diff --git a/{path} b/{path}", "index 3f2a1b4..9c8d7e6 100644", *body]


def multi_file_diff(
    seed: int, files: int = 8, context: int = 3, funcs: int = 12
) -> tuple[str, list[str]]:
    """Returns the diff and its changed lines (which must all survive)."""
    rng = random.Random(seed)
    out: list[str] = []
    for f in range(files):
        old = source_file(rng, funcs)
        new = mutate(rng, old, rng.randint(2, 6))
        out.extend(file_diff(f"src/pkg/module_{f}.py", old, new, context))
    out.extend(
        [
            "diff --git a/bin/tool b/bin/tool",
            "old mode 100644",
            "new mode 100755",
            "diff --git a/assets/logo.png b/assets/logo.png",
            "index 1111111..2222222 100644",
            "Binary files a/assets/logo.png and b/assets/logo.png differ",
        ]
    )
    changed = [x for x in out if x[:1] in "+-" and not x.startswith(("+++", "---"))]
    return "\n".join(out), changed


def big_diff(seed: int) -> tuple[str, list[str]]:
    """About 1 MB: many files with default context, plus a lockfile."""
    text, changed = multi_file_diff(seed, files=700, context=3, funcs=30)
    rng = random.Random(seed)
    lock_old = [f'    "pkg{i}": "1.{i}.0",' for i in range(400)]
    lock_new = [
        x.replace(".0", f".{rng.randint(1, 9)}") if i % 3 else x for i, x in enumerate(lock_old)
    ]
    lock = file_diff("package-lock.json", lock_old, lock_new, 3)
    return text + "\n" + "\n".join(lock), changed


def output_changes(out: str) -> list[str]:
    return [x for x in out.split("\n") if x[:1] in "+-" and not x.startswith(("+++", "---"))]


@pytest.mark.parametrize(("seed", "context"), [(1, 3), (2, 3), (3, 5), (4, 8)])
def test_keeps_every_changed_line_and_header_and_saves_40_percent(seed: int, context: int) -> None:
    text, changed = multi_file_diff(seed, context=context)
    store = PendingWrites()
    res = DiffCompressor().compress(text, CompressContext(store=store))
    assert output_changes(res.output) == changed
    out_lines = res.output.split("\n")
    for header in [x for x in text.split("\n") if x.startswith(("diff --git", "---", "+++"))]:
        assert header in out_lines
    for line in ("old mode 100644", "new mode 100755"):
        assert line in out_lines
    assert "Binary files a/assets/logo.png and b/assets/logo.png differ" in out_lines
    assert not any(x.startswith("index ") for x in out_lines)
    assert res.tokens_after <= 0.6 * res.tokens_before, (res.tokens_before, res.tokens_after)
    (key,) = find_keys(res.output)
    assert store.get(key) == text.encode()


def _apply(old: list[str], diff_lines: list[str]) -> list[str]:
    """Apply a single-file unified diff by its hunk headers (checks recomputed headers)."""
    result: list[str] = []
    pos = 0
    i = 0
    while i < len(diff_lines):
        m = re.match(r"@@ -(\d+),(\d+) \+(\d+),(\d+) @@", diff_lines[i])
        if not m:
            i += 1
            continue
        start, length = int(m.group(1)), int(m.group(2))
        start = start - 1 if length else start
        result.extend(old[pos:start])
        pos = start
        i += 1
        while i < len(diff_lines) and diff_lines[i][:1] in (" ", "-", "+", "\\"):
            line = diff_lines[i]
            if line[:1] in (" ", "-"):
                assert old[pos] == line[1:], (pos, line)
                pos += 1
            if line[:1] in (" ", "+"):
                result.append(line[1:])
            i += 1
    result.extend(old[pos:])
    return result


def test_recomputed_hunk_headers_still_apply() -> None:
    rng = random.Random(9)
    old = source_file(rng, 20)
    new = mutate(rng, old, 8)
    text = "\n".join(file_diff("src/a.py", old, new, 6))
    res = DiffCompressor().compress(text, CompressContext())
    assert res.strategy == "diff"
    assert _apply(old, res.output.split("\n")) == new


def test_no_store_never_summarises_and_says_what_was_trimmed() -> None:
    text, changed = big_diff(2)
    res = DiffCompressor().compress(text, CompressContext())
    assert output_changes(res.output) == changed + output_changes(text)[len(changed) :]
    assert not has_marker(res.output)
    assert has_note(res.output)


def test_huge_diff_with_store_summarises_irrelevant_files_per_file() -> None:
    text, _ = big_diff(2)
    query = "why does module_17 break the retry logic"
    store = PendingWrites()
    res = DiffCompressor().compress(text, CompressContext(query=query, store=store))
    out_lines = res.output.split("\n")
    files = [f for f in parse(text.split("\n")) if f.path]
    target = next(f for f in files if f.path == "src/pkg/module_17.py")
    target_changes = [
        b for h in target.items if not isinstance(h, str) for b in h.body if b[:1] in "+-"
    ]
    for line in target_changes:
        assert line in out_lines
    summarised = [x for x in out_lines if "changed lines omitted in" in x]
    assert any("package-lock.json" in x for x in summarised)
    for f in files:
        if f.hunks and f"diff --git a/{f.path} b/{f.path}" in out_lines:
            full = all(
                b in out_lines
                for h in f.items
                if not isinstance(h, str)
                for b in h.body
                if b[:1] in "+-"
            )
            noted = any(f" in {f.path} (" in x for x in summarised)
            assert full or noted, f.path
    (key,) = find_keys(res.output)
    assert store.get(key) == text.encode()
    assert res.tokens_after < 0.3 * res.tokens_before


def test_removed_line_that_looks_like_a_header_is_a_change() -> None:
    old = [f"line {i}" for i in range(40)]
    old[20] = "-- sql comment"
    new = list(old)
    del new[20]
    text = "\n".join(file_diff("q.sql", old, new, 10))
    assert "--- sql comment" in text.split("\n")
    res = DiffCompressor(DiffConfig(min_lines=5)).compress(text, CompressContext())
    assert "--- sql comment" in res.output.split("\n")


def test_preamble_and_rename_kept() -> None:
    pre = ["commit 0123456789abcdef", "Author: A <a@b.c>", "", "    Fix the retry loop", ""]
    rng = random.Random(3)
    old = source_file(rng, 10)
    new = mutate(rng, old, 3)
    body = file_diff("src/new.py", old, new, 3)
    body[0] = "diff --git a/src/old.py b/src/new.py"
    body[1:2] = ["similarity index 91%", "rename from src/old.py", "rename to src/new.py"]
    text = "\n".join(pre + body)
    res = DiffCompressor().compress(text, CompressContext())
    out = res.output.split("\n")
    assert out[:5] == pre
    for line in body[1:4]:
        assert line in out


def test_deterministic_idempotent_and_small_untouched() -> None:
    text, _ = multi_file_diff(5)
    a = DiffCompressor().compress(text, CompressContext(store=PendingWrites()))
    b = DiffCompressor().compress(text, CompressContext(store=PendingWrites()))
    assert a.output == b.output
    again = DiffCompressor().compress(a.output, CompressContext(store=PendingWrites()))
    assert again.output == a.output and again.strategy == "passthrough"
    plain = DiffCompressor().compress(text, CompressContext())
    assert DiffCompressor().compress(plain.output, CompressContext()).output == plain.output
    small = "\n".join(text.split("\n")[:20])
    assert DiffCompressor().compress(small, CompressContext()).output == small


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "diff --git a/x b/x",
                "--- a/x",
                "+++ b/x",
                "@@ -1,3 +1,3 @@",
                "@@ -2 +2,0 @@",
                " ctx",
                "-old",
                "+new",
                "\\ No newline",
                "",
            ]
        )
        | st.text(max_size=30),
        max_size=150,
    ),
    st.booleans(),
)
def test_arbitrary_diffs_never_grow(parts: list[str], with_store: bool) -> None:
    text = "\n".join(parts)
    ctx = CompressContext(store=PendingWrites()) if with_store else CompressContext()
    res = DiffCompressor(DiffConfig(min_lines=3)).compress(text, ctx)
    assert estimate_tokens(res.output) <= estimate_tokens(text)


def _release_diff() -> str:
    """Twelve files, each one changed function with six lines of body changed."""
    out = []
    for f in range(12):
        name = f"handler_{f}" if f != 7 else "RetryPolicy.backoff"
        out += [
            f"diff --git a/pkg/mod{f}.py b/pkg/mod{f}.py",
            f"--- a/pkg/mod{f}.py",
            f"+++ b/pkg/mod{f}.py",
            f"@@ -10,12 +10,12 @@ def {name}(self):",
            *[f"     context line {k} of module {f}" for k in range(3)],
            *[f"-    value_{k} = compute_{f}({k}, timeout=30)" for k in range(6)],
            *[f"+    value_{k} = compute_{f}({k}, timeout=60, retries=3)" for k in range(6)],
            *[f"     trailing context {k} of module {f}" for k in range(3)],
        ]
    return "\n".join(out)


def test_big_diff_keeps_the_hunk_the_task_names_and_stubs_the_rest_with_symbols() -> None:
    text = _release_diff()
    cfg = DiffConfig(min_budget_chars=1000, budget_share=0.3)
    ctx = CompressContext("why did RetryPolicy.backoff change?", PendingWrites())
    out = DiffCompressor(cfg).compress(text, ctx).output.split("\n")
    assert "-    value_2 = compute_7(2, timeout=30)" in out  # removed lines count too
    assert "+    value_2 = compute_7(2, timeout=60, retries=3)" in out
    stubs = [line for line in out if "changed lines omitted" in line]
    assert stubs and all("def handler_" in s for s in stubs)
    assert not any("compute_0(" in line for line in out)


def test_without_a_store_no_hunk_is_stubbed() -> None:
    text = _release_diff()
    cfg = DiffConfig(min_budget_chars=1000, budget_share=0.3)
    out = DiffCompressor(cfg).compress(text, CompressContext("RetryPolicy")).output
    assert "changed lines omitted" not in out
    assert out.count("timeout=60, retries=3") == 72
