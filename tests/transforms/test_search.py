"""SearchCompressor on seeded grep/ripgrep results."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.ccr.markers import find_keys, has_marker
from headroom.ccr.store import PendingWrites
from headroom.transforms.base import CompressContext
from headroom.transforms.lines import has_note
from headroom.transforms.search import SearchCompressor, SearchConfig, parse
from headroom.transforms.tokens import estimate_tokens

DIRS = ["src/app/services", "src/app/models", "src/lib/http", "tests/unit", "tests/integration"]
CALLS = [
    "result = parse_config(path)",
    "cfg = parse_config(os.environ['APP_CONFIG'])",
    "return parse_config(raw, defaults=DEFAULTS)",
    "# parse_config is called once per worker",
    "settings = parse_config(fp.read())",
    "assert parse_config(sample) == expected",
]
TARGET = "cfg = parse_config(text, strict=True)  # raises on unknown keys"


def grep_output(
    seed: int, files: int = 40, per_file: tuple[int, int] = (3, 40), context: bool = False
) -> tuple[str, str, str]:
    """rg -n output for ``parse_config`` over a fake repo; one hit is the one the user is
    after. Returns (text, query, the must-keep row)."""
    rng = random.Random(seed)
    out: list[str] = []
    target_file = rng.randrange(files)
    must = ""
    for f in range(files):
        path = f"{rng.choice(DIRS)}/{rng.choice(['config', 'loader', 'worker', 'views'])}_{f}.py"
        numbers = sorted(rng.sample(range(1, 2000), rng.randint(*per_file)))
        target_at = rng.randrange(1, max(2, len(numbers) - 1)) if f == target_file else -1
        for k, n in enumerate(numbers):
            if context and rng.random() < 0.3:
                out.append(f"{path}-{n - 1}-    # setup for line {n}")
            content = TARGET if k == target_at else rng.choice(CALLS)
            line = f"{path}:{n}:    {content}"
            out.append(line)
            if k == target_at:
                must = line
            if context and rng.random() < 0.3:
                out.append("--")
    query = (
        '{"pattern": "parse_config", "path": "src"}\nwhere do we call parse_config in strict mode?'
    )
    return "\n".join(out), query, must


def big_search(seed: int) -> tuple[str, str, str]:
    return grep_output(seed, files=1100, per_file=(3, 30), context=True)


def rows_in(output: str) -> set[str]:
    """Reassemble ``path:line:content`` from the grouped output."""
    result: set[str] = set()
    path = ""
    for line in output.split("\n"):
        head, sep, _ = line.partition(":")
        if sep and head.isdigit():
            result.add(f"{path}:{line}")
        elif not line.startswith("["):
            path = line
    return result


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_searched_for_hit_survives_and_output_shrinks_60_percent(seed: int) -> None:
    text, query, must = grep_output(seed)
    store = PendingWrites()
    res = SearchCompressor().compress(text, CompressContext(query=query, store=store))
    assert must in rows_in(res.output)
    assert res.tokens_after <= 0.4 * res.tokens_before, (res.tokens_before, res.tokens_after)
    (key,) = find_keys(res.output)
    assert store.get(key) == text.encode()
    assert res.output.split("\n")[-1].startswith(f"[{text.count(chr(10)) + 1} matches")


def test_every_file_is_shown_or_listed_with_counts() -> None:
    text, query, must = grep_output(5, files=120, per_file=(3, 8))
    res = SearchCompressor().compress(text, CompressContext(query=query))
    parsed = parse(text)
    counts: dict[str, int] = {}
    for pid in parsed.path:
        path = parsed.paths[pid]
        counts[path] = counts.get(path, 0) + 1
    out_lines = res.output.split("\n")
    for path, count in counts.items():
        assert path in out_lines or f"{path} ({count})" in res.output, path
    assert must in rows_in(res.output)
    assert not has_marker(res.output) and has_note(res.output)


def test_grouped_rows_keep_first_and_last_of_each_file() -> None:
    text, query, _ = grep_output(6, files=10, per_file=(8, 20))
    res = SearchCompressor().compress(text, CompressContext(query=query))
    kept = rows_in(res.output)
    by_file: dict[str, list[str]] = {}
    for line in text.split("\n"):
        by_file.setdefault(line.split(":", 1)[0], []).append(line)
    for rows in by_file.values():
        assert rows[0] in kept and rows[-1] in kept


def test_context_rows_windows_paths_and_odd_lines() -> None:
    rows = [f"C:\\repo\\src\\a-1-b.py:{i}:    value = lookup({i})" for i in range(1, 30)]
    rows.insert(3, "C:\\repo\\src\\a-1-b.py-3-    # context line")
    rows.insert(10, "Binary file build/app.bin matches")
    rows.append("C:\\repo\\src\\a-1-b.py:99:    raise LookupError('missing key')")
    text = "\n".join(rows)
    res = SearchCompressor(SearchConfig(max_per_file=3)).compress(text, CompressContext())
    out = res.output.split("\n")
    assert "C:\\repo\\src\\a-1-b.py" in out
    assert "Binary file build/app.bin matches" in out
    assert "99:    raise LookupError('missing key')" in out
    assert "3-    # context line" in out  # next to the kept first match


def test_ripgrep_heading_form_is_understood() -> None:
    lines: list[str] = []
    for f in range(4):
        lines.append(f"src/mod_{f}.py")
        lines.extend(f"{i}:    call_{i % 3}(x)" for i in range(1, 15))
        lines.append("")
    text = "\n".join(lines)
    parsed = parse(text)
    assert len(parsed) == 56 and parsed.unparsed == 0
    res = SearchCompressor().compress(text, CompressContext())
    assert res.strategy == "search"
    assert "src/mod_3.py" in res.output.split("\n")


def test_ungrouped_output_never_bigger_than_flat_even_with_one_row_per_file() -> None:
    text = "\n".join(f"pkg/file_{i}.go:{i}:\tpanic(err)" for i in range(30))
    res = SearchCompressor().compress(text, CompressContext())
    assert estimate_tokens(res.output) <= estimate_tokens(text)


def test_deterministic_idempotent_small_untouched() -> None:
    text, query, _ = grep_output(8)
    a = SearchCompressor().compress(text, CompressContext(query=query, store=PendingWrites()))
    b = SearchCompressor().compress(text, CompressContext(query=query, store=PendingWrites()))
    assert a.output == b.output
    again = SearchCompressor().compress(a.output, CompressContext(query=query))
    assert again.output == a.output
    plain = SearchCompressor().compress(text, CompressContext(query=query))
    assert SearchCompressor().compress(plain.output, CompressContext(query=query)).output == (
        plain.output
    )
    small = "\n".join(text.split("\n")[:8])
    assert SearchCompressor().compress(small, CompressContext()).output == small


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(["a.py:1:x", "a.py-2-y", "--", "", "b/c.rs:10:5:err", "12:z", "src"])
        | st.text(max_size=30),
        max_size=150,
    ),
    st.booleans(),
    st.text(max_size=40),
)
def test_arbitrary_text_never_grows(parts: list[str], with_store: bool, query: str) -> None:
    text = "\n".join(parts)
    ctx = CompressContext(query=query, store=PendingWrites() if with_store else None)
    res = SearchCompressor(SearchConfig(min_matches=2)).compress(text, ctx)
    assert estimate_tokens(res.output) <= estimate_tokens(text)
    assert len(parse(text).line_starts) == text.count("\n") + 1


def test_lossless_only_regroups_every_row() -> None:
    text, _query, _must = grep_output(3, files=6, per_file=(5, 12), context=True)
    res = SearchCompressor(SearchConfig(lossless_only=True)).compress(
        text, CompressContext(store=PendingWrites())
    )
    assert not has_marker(res.output) and not has_note(res.output)
    expected = {x for x in text.split("\n") if x != "--"}
    got: set[str] = set()
    path = ""
    for line in res.output.split("\n"):
        head = line.split(":", 1)[0].split("-", 1)[0]
        if head.isdigit():
            got.add(f"{path}{':' if line[len(head)] == ':' else '-'}{line}")
        else:
            path = line
    assert got == expected
    assert res.tokens_after < res.tokens_before


def test_the_file_the_query_names_is_shown_even_when_its_path_names_it_twice() -> None:
    rows = [f"src/mod{i}/util.py:{k}:    x = helper_{i}({k})" for i in range(12) for k in range(8)]
    rows += [f"src/pool/pool.py:{k}:    y = pool_{k}()" for k in range(8)]
    rows += [f"src/net/pool/x.py:{k}:    z = call_{k}()" for k in range(8)]
    rows += [f"src/db/pool/y.py:{k}:    w = go_{k}()" for k in range(8)]
    text = "\n".join(rows)
    out = SearchCompressor().compress(text, CompressContext("what does the pool code do?")).output
    for k in range(8):
        assert f"{k}:    y = pool_{k}()" in out.split("\n")
